"""Nothing leaks: handles, descriptors and /dev/shm names are released with their objects."""

import gc
import os
import pickle
import unittest

from _support import TestCase, mpx
from mpx.shared_memory import SharedMemory, ShareableList


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def shm_names():
    return set(os.listdir("/dev/shm"))


class Resources(TestCase):

    def churn(self, make, rounds=2000):
        for _ in range(50):          # warm up: the arena may grow once
            make()
        gc.collect()
        fds, names = fd_count(), shm_names()
        for _ in range(rounds):
            make()
        gc.collect()
        self.assertLessEqual(fd_count(), fds + 1)
        self.assertEqual(shm_names() - names, set())

    def test_sync_objects(self):
        def make():
            lock = mpx.Lock()
            rlock = pickle.loads(pickle.dumps(mpx.RLock()))
            cond = mpx.Condition(lock)
            mpx.Semaphore(2), mpx.BoundedSemaphore(1), mpx.Event(), mpx.Barrier(2)
            with cond:
                cond.notify()
            with rlock:
                pass
        self.churn(make)

    def test_values_and_arrays(self):
        def make():
            v = mpx.Value("i", 1)
            with v.get_lock():
                v.value += 1
            mpx.Array("c", b"abc").value
            mpx.RawArray("d", 8)[3]
            pickle.loads(pickle.dumps(mpx.RawValue("q", 5))).value
        self.churn(make)

    def test_large_arrays_have_their_own_segments_and_free_them(self):
        self.churn(lambda: mpx.RawArray("d", 1 << 17), rounds=100)

    def test_shared_memory(self):
        def make():
            shm = SharedMemory(create=True, size=4096)
            shm.buf[0] = 1
            again = SharedMemory(shm.name)
            again.close()
            shm.close()
            shm.unlink()
            sl = ShareableList([1, "a"])
            sl.shm.close()
            sl.shm.unlink()
        self.churn(make, rounds=300)

    def test_forked_children_leave_no_zombies(self):
        lock = mpx.Lock()
        for _ in range(20):
            self.assertChildOk(self.fork(lambda: lock.acquire() and lock.release()))
        with self.assertRaises(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)


if __name__ == "__main__":
    unittest.main()
