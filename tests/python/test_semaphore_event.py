"""Semaphore, BoundedSemaphore and Event."""

import multiprocessing
import pickle
import time
import unittest

from _support import TestCase, mpx

mp = multiprocessing.get_context("fork")


class SemaphoreBasics(TestCase):

    def test_counts_like_multiprocessing(self):
        for sem in (mpx.Semaphore(2), mp.Semaphore(2)):
            self.assertEqual(sem.get_value(), 2)
            self.assertTrue(sem.acquire())
            self.assertTrue(sem.acquire(False))
            self.assertFalse(sem.acquire(False))
            self.assertFalse(sem.acquire(timeout=0))
            self.assertEqual(sem.get_value(), 0)
            sem.release()
            sem.release()
            sem.release()     # an unbounded semaphore may go above its start
            self.assertEqual(sem.get_value(), 3)

    def test_default_value_is_one(self):
        self.assertEqual(mpx.Semaphore().get_value(), 1)
        self.assertEqual(mpx.BoundedSemaphore().get_value(), 1)

    def test_repr(self):
        self.assertEqual(repr(mpx.Semaphore(3)), repr(mp.Semaphore(3)))
        self.assertEqual(repr(mpx.BoundedSemaphore(2)), repr(mp.BoundedSemaphore(2)))
        self.assertEqual(repr(mpx.BoundedSemaphore(2)), "<BoundedSemaphore(value=2, maxvalue=2)>")

    def test_zero_semaphore_timed_acquire_times_out(self):
        sem = mpx.Semaphore(0)
        with self.assertTakes(0.1):
            self.assertFalse(sem.acquire(timeout=0.1))
        with self.assertTakes(0, 0.05):
            self.assertFalse(sem.acquire(False))

    def test_bounded_over_release_is_valueerror_and_value_unchanged(self):
        for sem in (mpx.BoundedSemaphore(2), mp.BoundedSemaphore(2)):
            with self.assertRaises(ValueError) as cm:
                sem.release()
            self.assertEqual(str(cm.exception), "semaphore or lock released too many times")
            self.assertEqual(sem.get_value(), 2)
            sem.acquire()
            sem.release()
            self.assertEqual(sem.get_value(), 2)

    def test_bad_initial_values(self):
        with self.assertRaises(ValueError):
            mpx.Semaphore(-1)
        with self.assertRaises(OverflowError):
            mpx.Semaphore(2 ** 31)
        with self.assertRaises(TypeError):
            mpx.Semaphore(1.5)
        s = mpx.Semaphore(2 ** 31 - 1)
        with self.assertRaises(ValueError):     # past the maximum value
            s.release()

    def test_context_manager(self):
        sem = mpx.Semaphore(1)
        with sem as got:
            self.assertIs(got, True)
            self.assertEqual(sem.get_value(), 0)
        self.assertEqual(sem.get_value(), 1)

    def test_pickles_by_token(self):
        for cls in (mpx.Semaphore, mpx.BoundedSemaphore):
            sem = cls(3)
            other = pickle.loads(pickle.dumps(sem))
            self.assertIs(type(other), cls)
            other.acquire()
            self.assertEqual(sem.get_value(), 2)


class SemaphoreAcrossProcesses(TestCase):

    def test_a_child_release_wakes_the_parent(self):
        sem = mpx.Semaphore(0)

        def child():
            time.sleep(0.1)
            sem.release()

        pid = self.fork(child)
        with self.assertTakes(0.09, 5):
            self.assertTrue(sem.acquire(timeout=10))
        self.assertChildOk(pid)

    def test_bounds_concurrency(self):
        sem = mpx.Semaphore(2)
        inside = mpx.RawValue("i", 0)
        peak = mpx.RawValue("i", 0)
        guard = mpx.Lock()

        def child(i):
            for _ in range(30):
                with sem:
                    with guard:
                        inside.value += 1
                        peak.value = max(peak.value, inside.value)
                    time.sleep(0.001)
                    with guard:
                        inside.value -= 1

        self.run_children(child, 5)
        self.assertEqual(inside.value, 0)
        self.assertEqual(peak.value, 2)
        self.assertEqual(sem.get_value(), 2)

    def test_producer_consumer_counts(self):
        sem = mpx.Semaphore(0)
        n = 500

        def producer(i):
            for _ in range(n):
                sem.release()

        pids = [self.fork(producer, i) for i in range(2)]
        for _ in range(2 * n):
            self.assertTrue(sem.acquire(timeout=10))
        for pid in pids:
            self.assertChildOk(pid)
        self.assertEqual(sem.get_value(), 0)


class EventTests(TestCase):

    def test_set_clear_is_set_wait(self):
        for ev in (mpx.Event(), mp.Event()):
            self.assertFalse(ev.is_set())
            self.assertFalse(ev.wait(0))
            ev.set()
            self.assertTrue(ev.is_set())
            self.assertIs(ev.wait(), True)
            self.assertIs(ev.wait(0), True)
            ev.set()
            ev.clear()
            self.assertFalse(ev.is_set())

    def test_wait_times_out(self):
        ev = mpx.Event()
        for t in (0.05, 0.15):
            with self.assertTakes(t):
                self.assertIs(ev.wait(t), False)
        with self.assertTakes(0, 0.05):
            self.assertIs(ev.wait(-1), False)

    def test_repr(self):
        ev = mpx.Event()
        self.assertRegex(repr(ev), r"^<Event at 0x[0-9a-f]+ unset>$")
        ev.set()
        self.assertRegex(repr(ev), r"^<Event at 0x[0-9a-f]+ set>$")

    def test_many_processes_wake_on_one_set(self):
        ev = mpx.Event()
        started = mpx.Semaphore(0)
        woke = mpx.RawValue("i", 0)
        lock = mpx.Lock()

        def child(i):
            started.release()
            if not ev.wait(10):
                return 2
            with lock:
                woke.value += 1

        pids = [self.fork(child, i) for i in range(12)]
        for _ in pids:
            self.assertTrue(started.acquire(timeout=10))
        time.sleep(0.05)
        ev.set()
        for pid in pids:
            self.assertChildOk(pid)
        self.assertEqual(woke.value, 12)

    def test_child_sets_parent_waits(self):
        ev = mpx.Event()
        pid = self.fork(lambda: (time.sleep(0.1), ev.set()))
        with self.assertTakes(0.09, 5):
            self.assertTrue(ev.wait())
        self.assertChildOk(pid)

    def test_pickles_by_token(self):
        ev = mpx.Event()
        other = pickle.loads(pickle.dumps(ev))
        other.set()
        self.assertTrue(ev.is_set())


if __name__ == "__main__":
    unittest.main()
