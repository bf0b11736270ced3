"""Lock and RLock: multiprocessing's semantics, across fork()ed processes."""

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import unittest
import warnings

from _support import TestCase, mpx, subprocess_env, TIMING_SLACK

mp = multiprocessing.get_context("fork")


class LockBasics(TestCase):

    def test_acquire_returns_true_and_a_try_on_a_held_lock_false(self):
        for lock in (mpx.Lock(), mp.Lock()):
            self.assertIs(lock.acquire(), True)
            self.assertIs(lock.acquire(False), False)
            self.assertIs(lock.acquire(block=False), False)
            self.assertIs(lock.acquire(True, 0), False)
            self.assertIs(lock.acquire(timeout=-1), False)   # negative: do not wait
            self.assertIsNone(lock.release())
            self.assertIs(lock.acquire(False), True)
            lock.release()

    def test_block_false_ignores_the_timeout(self):
        lock = mpx.Lock()
        lock.acquire()
        with self.assertTakes(0, 0.05):
            self.assertFalse(lock.acquire(False, 5))
        lock.release()

    def test_timed_acquire_times_out_within_the_deadline(self):
        lock = mpx.Lock()
        lock.acquire()
        for t in (0.05, 0.1, 0.25):
            with self.assertTakes(t):
                self.assertIs(lock.acquire(timeout=t), False)
        lock.release()

    def test_a_long_timeout_is_sliced_yet_exact(self):
        lock = mpx.Lock()
        lock.acquire()
        with self.assertTakes(0.35):
            self.assertFalse(lock.acquire(True, 0.35))
        lock.release()

    def test_release_of_an_unlocked_lock_raises_valueerror(self):
        for lock in (mpx.Lock(), mp.Lock()):
            with self.assertRaises(ValueError) as cm:
                lock.release()
            self.assertEqual(str(cm.exception), "semaphore or lock released too many times")
        with self.assertRaises(mpx.OverReleaseError):
            mpx.Lock().release()

    def test_context_manager(self):
        lock = mpx.Lock()
        with lock as got:
            self.assertIs(got, True)
            self.assertFalse(lock.acquire(False))
        self.assertTrue(lock.acquire(False))
        lock.release()
        with self.assertRaises(KeyError):
            with lock:
                raise KeyError
        self.assertFalse(lock.locked())

    def test_any_thread_may_release_a_lock(self):
        lock = mpx.Lock()
        lock.acquire()
        t = threading.Thread(target=lock.release)
        t.start()
        t.join()
        self.assertTrue(lock.acquire(False))
        lock.release()

    def test_repr_like_multiprocessing(self):
        lock = mpx.Lock()
        self.assertEqual(repr(lock), "<Lock(owner=None)>")
        lock.acquire()
        self.assertEqual(repr(lock), "<Lock(owner=MainProcess)>")
        lock.release()

    def test_timeout_types(self):
        lock = mpx.Lock()
        lock.acquire()
        self.assertFalse(lock.acquire(True, 0))
        self.assertFalse(lock.acquire(True, 0.01))
        with self.assertRaises(TypeError):
            lock.acquire(True, "x")
        lock.release()


class LockAcrossProcesses(TestCase):

    def test_another_process_may_release_it(self):
        lock = mpx.Lock()
        lock.acquire()
        self.assertChildOk(self.fork(lock.release))
        self.assertTrue(lock.acquire(timeout=1))
        lock.release()

    def test_a_child_blocks_until_the_parent_releases(self):
        lock = mpx.Lock()
        ev = mpx.Event()
        lock.acquire()

        def child():
            ev.set()
            t0 = time.monotonic()
            assert lock.acquire(timeout=10)
            waited = time.monotonic() - t0
            lock.release()
            return 0 if waited >= 0.15 else 3

        pid = self.fork(child)
        self.assertTrue(ev.wait(5))
        time.sleep(0.2)
        lock.release()
        self.assertChildOk(pid)

    def test_contention_between_processes_keeps_a_count_exact(self):
        lock = mpx.Lock()
        counter = mpx.RawValue("q", 0)
        n = 2000

        def child(i):
            for _ in range(n):
                with lock:
                    counter.value += 1

        self.run_children(child, 4)
        self.assertEqual(counter.value, 4 * n)

    def test_child_timed_acquire_on_a_lock_the_parent_holds(self):
        lock = mpx.Lock()
        lock.acquire()

        def child():
            t0 = time.monotonic()
            ok = lock.acquire(timeout=0.2)
            took = time.monotonic() - t0
            return 0 if (not ok and 0.199 <= took <= 0.2 + TIMING_SLACK) else 4

        self.assertChildOk(self.fork(child))
        lock.release()


class RLockBasics(TestCase):

    def test_recursion_counts(self):
        for r in (mpx.RLock(), mp.RLock()):
            self.assertTrue(r.acquire())
            self.assertTrue(r.acquire())
            self.assertTrue(r.acquire(False))
            self.assertTrue(r.acquire(timeout=0))
            for _ in range(4):
                r.release()
            with self.assertRaises(AssertionError):
                r.release()

    def test_thousand_deep_recursion_balances(self):
        r = mpx.RLock()
        for _ in range(1000):
            r.acquire()
        self.assertEqual(repr(r), "<RLock(MainProcess, 1000)>")
        for _ in range(1000):
            r.release()
        self.assertFalse(r.locked())
        self.assertEqual(repr(r), "<RLock(None, 0)>")

    def test_release_of_an_unowned_rlock_raises_like_multiprocessing(self):
        for r in (mpx.RLock(), mp.RLock()):
            with self.assertRaises(AssertionError) as cm:
                r.release()
            self.assertEqual(str(cm.exception), "attempt to release recursive lock not owned by thread")
        with self.assertRaises(RuntimeError):   # what threading.RLock raises
            mpx.RLock().release()

    def test_release_by_another_thread_fails(self):
        r = mpx.RLock()
        r.acquire()
        errors = []

        def other():
            try:
                r.release()
            except AssertionError as e:
                errors.append(e)
            errors.append(r.acquire(False))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        self.assertIsInstance(errors[0], mpx.NotOwnedError)
        self.assertIs(errors[1], False)
        r.release()

    def test_threads_contend(self):
        r = mpx.RLock()
        box = [0]

        def work():
            for _ in range(2000):
                with r:
                    with r:
                        box[0] += 1

        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(box[0], 8000)

    def test_exit_by_a_non_owner_raises(self):
        r = mpx.RLock()
        with self.assertRaises(mpx.NotOwnedError):
            r.__exit__(None, None, None)

    def test_timed_acquire_of_an_rlock_held_elsewhere(self):
        r = mpx.RLock()
        got = []
        t = threading.Thread(target=lambda: (r.acquire(), got.append(1), time.sleep(0.5), r.release()))
        t.start()
        self.assertTrue(wait_for(lambda: got))
        with self.assertTakes(0.1):
            self.assertFalse(r.acquire(timeout=0.1))
        t.join()
        self.assertTrue(r.acquire(False))
        r.release()


def wait_for(pred, timeout=5):
    from _support import wait_until
    return wait_until(pred, timeout)


class RLockAcrossProcesses(TestCase):

    def test_a_child_does_not_own_an_rlock_the_parent_held_at_fork(self):
        r = mpx.RLock()
        r.acquire()

        def child():
            try:
                r.release()
            except AssertionError:
                pass
            else:
                return 2
            return 0 if r.acquire(timeout=0.05) is False else 3

        self.assertChildOk(self.fork(child))
        r.release()

    def test_contention(self):
        r = mpx.RLock()
        counter = mpx.RawValue("i", 0)

        def child(i):
            for _ in range(1000):
                with r:
                    with r:
                        counter.value += 1

        self.run_children(child, 3)
        self.assertEqual(counter.value, 3000)


class OwnerDeath(TestCase):

    def _die_holding(self, lock, how, depth=1):
        ready = mpx.Event()

        def child():
            for _ in range(depth):
                lock.acquire()
            ready.set()
            if how == "exit":
                os._exit(0)
            time.sleep(60)

        pid = self.fork(child)
        self.assertTrue(ready.wait(10))
        if how == "kill":
            self.assertEqual(self.kill(pid), -signal.SIGKILL)
        else:
            self.assertEqual(self.join(pid), 0)

    def _assert_owner_died_on(self, acquire, lock):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertIs(acquire(), True)
        died = [x for x in w if issubclass(x.category, mpx.OwnerDiedWarning)]
        self.assertEqual(len(died), 1, [str(x.message) for x in w])
        self.assertEqual(died[0].filename, __file__)   # blamed on the caller's line
        self.assertIn("died", str(died[0].message))
        return died[0]

    def test_lock_holder_exits_then_acquire_returns_true_with_a_warning(self):
        lock = mpx.Lock()
        self._die_holding(lock, "exit")
        self._assert_owner_died_on(lock.acquire, lock)
        lock.release()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with lock:       # consistent again: no warning, no error
                pass

    def test_lock_holder_sigkilled_then_timed_and_try_acquire(self):
        for acquire in (lambda l: l.acquire(timeout=5), lambda l: l.acquire(False),
                        lambda l: l.__enter__()):
            lock = mpx.Lock()
            self._die_holding(lock, "kill")
            self._assert_owner_died_on(lambda: acquire(lock), lock)
            self.assertFalse(lock.acquire(False))
            lock.release()

    def test_with_statement_keeps_working(self):
        lock = mpx.Lock()
        self._die_holding(lock, "kill")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with lock:
                self.assertTrue(lock.locked())
        self.assertEqual(len(w), 1)
        self.assertIs(w[0].category, mpx.OwnerDiedWarning)
        self.assertFalse(lock.locked())

    def test_rlock_owner_dies_at_depth_three_gives_exactly_one_warning(self):
        r = mpx.RLock()
        self._die_holding(r, "kill", depth=3)
        self._assert_owner_died_on(r.acquire, r)
        self.assertEqual(repr(r), "<RLock(MainProcess, 1)>")
        r.release()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r.acquire()
            r.release()

    def test_a_parent_waiting_in_acquire_gets_the_lock_when_the_holder_dies(self):
        lock = mpx.Lock()
        ready = mpx.Event()

        def child():
            lock.acquire()
            ready.set()
            time.sleep(0.3)
            os._exit(0)

        pid = self.fork(child)
        self.assertTrue(ready.wait(10))
        t0 = time.monotonic()
        self._assert_owner_died_on(lambda: lock.acquire(timeout=10), lock)
        self.assertLess(time.monotonic() - t0, 3)
        lock.release()
        self.join(pid)

    def test_manual_consistency(self):
        lock = mpx.Lock()
        lock.auto_consistent = False
        self._die_holding(lock, "kill")
        self._assert_owner_died_on(lock.acquire, lock)
        lock.consistent()
        lock.release()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            self.assertTrue(lock.acquire(False))
        lock.release()

    def test_release_without_consistent_makes_the_lock_unusable(self):
        lock = mpx.Lock()
        lock.auto_consistent = False
        self._die_holding(lock, "exit")
        self._assert_owner_died_on(lock.acquire, lock)
        lock.release()
        for attempt in (lambda: lock.acquire(), lambda: lock.acquire(False),
                        lambda: lock.acquire(timeout=0.1)):
            with self.assertRaises(mpx.NotRecoverableError) as cm:
                attempt()
            self.assertEqual(cm.exception.name, "MPX_ENOTRECOVERABLE")

    def test_consistent_on_a_normal_lock_is_an_error(self):
        lock = mpx.Lock()
        lock.acquire()
        with self.assertRaises(mpx.InvalidArgumentError):
            lock.consistent()
        lock.release()

    def test_warning_as_error_releases_the_lock(self):
        lock = mpx.Lock()
        self._die_holding(lock, "kill")
        with warnings.catch_warnings():
            warnings.simplefilter("error", mpx.OwnerDiedWarning)
            with self.assertRaises(mpx.OwnerDiedWarning):
                with lock:
                    self.fail("the body must not run")
        self.assertFalse(lock.locked())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with lock:
                pass

    def test_rlock_warning_as_error_releases_too(self):
        r = mpx.RLock()
        self._die_holding(r, "kill")
        with warnings.catch_warnings():
            warnings.simplefilter("error", mpx.OwnerDiedWarning)
            with self.assertRaises(mpx.OwnerDiedWarning):
                r.acquire()
        self.assertFalse(r.locked())
        r.acquire()
        r.release()


class Interruptible(TestCase):
    """Blocking forever stays interruptible: a signal handler's exception gets out."""

    class Interrupted(Exception):
        pass

    def _interrupt_after(self, seconds, blocking_call):
        def handler(signum, frame):
            raise self.Interrupted()
        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            t0 = time.monotonic()
            with self.assertRaises(self.Interrupted):
                blocking_call()
            return time.monotonic() - t0
        finally:
            signal.setitimer(signal.ITIMER_REAL, self.deadline)
            signal.signal(signal.SIGALRM, old)

    def test_blocked_waits_raise_the_handlers_exception(self):
        lock, rlock, sem, ev = mpx.Lock(), mpx.RLock(), mpx.Semaphore(0), mpx.Event()
        lock.acquire()
        held, done = threading.Event(), threading.Event()
        holder = threading.Thread(target=lambda: (rlock.acquire(), held.set(), done.wait(30),
                                                  rlock.release()))
        holder.start()
        self.addCleanup(holder.join)
        self.addCleanup(done.set)
        held.wait(5)
        for call in (lock.acquire, lambda: lock.acquire(timeout=30), lambda: lock.__enter__(),
                     rlock.acquire, sem.acquire, ev.wait, lambda: ev.wait(30)):
            took = self._interrupt_after(0.2, call)
            self.assertLess(took, 0.2 + 0.1 + TIMING_SLACK)
        self.assertTrue(lock.locked())
        lock.release()


class Tokens(TestCase):

    def test_pickle_round_trip_is_the_same_lock(self):
        for cls in (mpx.Lock, mpx.RLock):
            lock = cls()
            other = pickle.loads(pickle.dumps(lock))
            self.assertIs(type(other), cls)
            self.assertEqual(other.token, lock.token)
            lock.acquire()
            self.assertTrue(other.locked())
            if cls is mpx.Lock:
                self.assertFalse(other.acquire(False))
            lock.release()
            self.assertFalse(other.locked())

    def test_from_token_checks_the_kind(self):
        with self.assertRaises(TypeError):
            mpx.Lock.from_token(mpx.RLock().token)
        self.assertIs(type(mpx.RLock.from_token(mpx.RLock().token)), mpx.RLock)

    def test_an_unrelated_process_attaches_by_pickle(self):
        lock = mpx.Lock()
        lock.acquire()
        data = pickle.dumps(lock).hex()
        code = ("import pickle, sys, mpx\n"
                "l = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
                "assert l.acquire(False) is False\n"
                "l.release()\n"
                "assert l.acquire(timeout=5)\n"
                "print('ok')\n")
        out = subprocess.run([sys.executable, "-c", code, data], env=subprocess_env(),
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "ok")
        self.assertTrue(lock.locked())   # the other process took it and exited holding it
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertTrue(lock.acquire(timeout=5))
        self.assertEqual([x.category for x in w], [mpx.OwnerDiedWarning])
        lock.release()


if __name__ == "__main__":
    unittest.main()
