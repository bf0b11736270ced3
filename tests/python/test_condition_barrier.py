"""Condition and Barrier."""

import multiprocessing
import os
import pickle
import signal
import threading
import time
import unittest
import warnings

from _support import TestCase, mpx, wait_until

mp = multiprocessing.get_context("fork")


class ConditionBasics(TestCase):

    def test_wait_and_notify_need_the_lock(self):
        for cond in (mpx.Condition(), mp.Condition(), mpx.Condition(mpx.Lock())):
            with self.assertRaises(AssertionError):
                cond.wait(0.01)
            with self.assertRaises(AssertionError):
                cond.notify()
            with self.assertRaises(AssertionError):
                cond.notify_all()
        with self.assertRaises(RuntimeError):
            mpx.Condition().wait(0.01)

    def test_wait_times_out_and_holds_the_lock_again(self):
        for lock in (None, mpx.Lock(), mpx.RLock()):
            cond = mpx.Condition(lock)
            with cond:
                with self.assertTakes(0.1):
                    self.assertIs(cond.wait(0.1), False)
                self.assertTrue(cond._lock.locked())
                if isinstance(cond._lock, mpx.Lock):
                    self.assertFalse(cond.acquire(False))
            self.assertFalse(cond._lock.locked())

    def test_wait_restores_the_rlock_depth(self):
        cond = mpx.Condition()
        for _ in range(3):
            cond.acquire()
        self.assertFalse(cond.wait(0.01))
        self.assertEqual(repr(cond._lock), "<RLock(MainProcess, 3)>")
        for _ in range(3):
            cond.release()
        with self.assertRaises(AssertionError):
            cond.release()

    def test_another_thread_takes_the_lock_during_the_wait(self):
        cond = mpx.Condition()
        cond.acquire()
        cond.acquire()

        def other():
            with cond:
                with cond:
                    cond.notify()

        t = threading.Thread(target=other)
        t.start()
        self.assertTrue(cond.wait(10))
        t.join()
        self.assertTrue(cond._lock._is_mine())
        cond.release()
        cond.release()
        self.assertFalse(cond._lock.locked())

    def test_lock_must_be_an_mpx_lock(self):
        with self.assertRaises(TypeError):
            mpx.Condition(threading.Lock())

    def test_acquire_release_and_repr(self):
        cond = mpx.Condition(mpx.Lock())
        self.assertTrue(cond.acquire())
        self.assertFalse(cond.acquire(False))
        cond.release()
        self.assertEqual(repr(cond), "<Condition(<Lock(owner=None)>)>")

    def test_notify_with_no_waiters_is_fine(self):
        cond = mpx.Condition()
        with cond:
            cond.notify()
            cond.notify(5)
            cond.notify_all()
        with self.assertRaises(ValueError):
            with cond:
                cond.notify(-1)

    def test_wait_for(self):
        cond = mpx.Condition()
        with cond:
            self.assertEqual(cond.wait_for(lambda: 42), 42)
            with self.assertTakes(0.1):
                self.assertFalse(cond.wait_for(lambda: 0, timeout=0.1))

    def test_pickle_keeps_condition_and_lock_together(self):
        lock = mpx.Lock()
        cond = mpx.Condition(lock)
        c2, l2 = pickle.loads(pickle.dumps((cond, lock)))
        self.assertIs(c2._lock, l2)
        with c2:
            self.assertTrue(lock.locked())
        c3 = pickle.loads(pickle.dumps(cond))
        self.assertIs(type(c3._lock), mpx.Lock)
        self.assertEqual(c3._lock.token, lock.token)


class ConditionAcrossProcesses(TestCase):

    def test_notify_wakes_a_child(self):
        cond = mpx.Condition()
        ready = mpx.Event()

        def child():
            with cond:
                ready.set()
                return 0 if cond.wait(10) else 2

        pid = self.fork(child)
        self.assertTrue(ready.wait(10))
        with cond:
            cond.notify()
        self.assertChildOk(pid)

    def test_notify_n_wakes_exactly_n_then_notify_all_the_rest(self):
        cond = mpx.Condition(mpx.Lock())
        waiting = mpx.RawValue("i", 0)
        woke = mpx.RawValue("i", 0)

        def child(i):
            with cond:
                waiting.value += 1
                ok = cond.wait(20)
                woke.value += 1
            return 0 if ok else 2

        pids = [self.fork(child, i) for i in range(5)]

        def all_waiting():
            with cond:
                return waiting.value == 5

        self.assertTrue(wait_until(all_waiting, 10))
        with cond:
            cond.notify(2)
        self.assertTrue(wait_until(lambda: woke.value == 2, 5))
        time.sleep(0.2)
        self.assertEqual(woke.value, 2)
        with cond:
            cond.notify_all()
        for pid in pids:
            self.assertChildOk(pid)
        self.assertEqual(woke.value, 5)

    def test_wait_for_a_predicate_changed_by_a_child(self):
        cond = mpx.Condition()
        value = mpx.Value("i", 0, lock=cond._lock)

        def child():
            for _ in range(5):
                time.sleep(0.01)
                with cond:
                    value.value += 1
                    cond.notify_all()

        pid = self.fork(child)
        with cond:
            self.assertTrue(cond.wait_for(lambda: value.value == 5, timeout=10))
        self.assertChildOk(pid)

    def test_capacity_one_handoff_stress(self):
        # Boost #9221: senders and receivers through a one-slot buffer.
        cond = mpx.Condition(mpx.Lock())
        slot = mpx.RawArray("i", 2)    # [full, value]
        got = mpx.RawValue("q", 0)
        per = 100

        def sender(i):
            for k in range(per):
                with cond:
                    while slot[0]:
                        if not cond.wait(10):
                            return 3
                    slot[0], slot[1] = 1, k + 1
                    cond.notify_all()

        def receiver(i):
            for _ in range(per):
                with cond:
                    while not slot[0]:
                        if not cond.wait(10):
                            return 4
                    got.value += slot[1]
                    slot[0] = 0
                    cond.notify_all()

        pids = [self.fork(sender, i) for i in range(3)] + [self.fork(receiver, i) for i in range(3)]
        for pid in pids:
            self.assertChildOk(pid, 60)
        self.assertEqual(got.value, 3 * per * (per + 1) // 2)

    def test_a_notification_goes_to_a_waiter_that_was_waiting_not_a_later_one(self):
        # The waiter is stopped when notified; the notifier then waits itself. The
        # notification belongs to the stopped child: the notifier must time out and the
        # child must wake (a token any later waiter may take is a lost wakeup).
        cond = mpx.Condition(mpx.Lock())
        waiting = mpx.RawValue("i", 0)

        def child():
            with cond:
                waiting.value = 1
                return 0 if cond.wait(5) else 12

        pid = self.fork(child)

        def child_waiting():
            with cond:
                return waiting.value == 1

        self.assertTrue(wait_until(child_waiting, 10))
        os.kill(pid, signal.SIGSTOP)
        try:
            with cond:
                cond.notify()
                late = cond.wait(0.2)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertChildOk(pid, 10)
        self.assertFalse(late, "a waiter that arrived after notify() took the notification")

    def test_waiter_killed_inside_wait_does_not_block_notify(self):
        cond = mpx.Condition()
        waiting = mpx.RawValue("i", 0)

        def child(i):
            with cond:
                waiting.value += 1
                return 0 if cond.wait(20) else 2

        victim = self.fork(child, 0)
        survivor = self.fork(child, 1)

        def both_waiting():
            with cond:
                return waiting.value == 2

        self.assertTrue(wait_until(both_waiting, 10))
        self.kill(victim)
        t0 = time.monotonic()
        with cond:
            cond.notify_all()
        self.assertLess(time.monotonic() - t0, 0.05)
        self.assertChildOk(survivor, 10)

    def test_lock_owner_dies_while_we_wait(self):
        cond = mpx.Condition(mpx.Lock())
        ready = mpx.Event()

        def child():
            ready.wait(10)
            cond.acquire()      # we are waiting: the lock is free
            cond.notify()
            os._exit(0)         # dies holding the lock

        pid = self.fork(child)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with cond:
                ready.set()
                self.assertTrue(cond.wait(10))
                self.assertTrue(cond._lock.locked())
        self.assertEqual([x.category for x in w], [mpx.OwnerDiedWarning])
        self.assertEqual(w[0].filename, __file__)
        self.join(pid)
        self.assertFalse(cond._lock.locked())


class BarrierBasics(TestCase):

    def test_attributes(self):
        b = mpx.Barrier(3)
        self.assertEqual(b.parties, 3)
        self.assertEqual(b.n_waiting, 0)
        self.assertFalse(b.broken)
        self.assertRegex(repr(b), r"^<mpx\.synchronize\.Barrier at 0x[0-9a-f]+: waiters=0/3>$")
        b.abort()
        self.assertTrue(b.broken)
        self.assertRegex(repr(b), r": broken>$")

    def test_bad_parties(self):
        for bad in (0, -1):
            with self.assertRaises(ValueError):
                mpx.Barrier(bad)
        with self.assertRaises(TypeError):
            mpx.Barrier(1.5)

    def test_one_party_passes_at_once_and_runs_the_action(self):
        runs = []
        b = mpx.Barrier(1, action=lambda: runs.append(1))
        self.assertEqual(b.wait(), 0)
        self.assertEqual(b.wait(), 0)
        self.assertEqual(runs, [1, 1])

    def test_timeout_breaks_the_barrier(self):
        b = mpx.Barrier(2)
        with self.assertTakes(0.1):
            with self.assertRaises(threading.BrokenBarrierError) as cm:
                b.wait(0.1)
        self.assertIsInstance(cm.exception, mpx.MpxError)
        self.assertTrue(b.broken)
        with self.assertTakes(0, 0.05):
            with self.assertRaises(threading.BrokenBarrierError):
                b.wait(5)
        b.reset()
        self.assertFalse(b.broken)

    def test_default_timeout(self):
        b = mpx.Barrier(2, timeout=0.1)
        with self.assertTakes(0.1):
            with self.assertRaises(mpx.BrokenBarrierError):
                b.wait()

    def test_an_action_slower_than_a_waiters_timeout(self):
        b = mpx.Barrier(2, action=lambda: time.sleep(0.3))
        errors = []

        def other():
            try:
                b.wait(0.1)
            except threading.BrokenBarrierError as e:
                errors.append(e)

        t = threading.Thread(target=other)
        t.start()
        self.assertTrue(wait_until(lambda: b.n_waiting == 1, 5))
        with self.assertRaises(threading.BrokenBarrierError):
            b.wait(5)
        t.join()
        self.assertEqual(len(errors), 1)
        self.assertTrue(b.broken)

    def test_threads(self):
        b = mpx.Barrier(3)
        out = []
        ts = [threading.Thread(target=lambda: out.append(b.wait(10))) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(out), [0, 1, 2])


class BarrierAcrossProcesses(TestCase):

    def test_indices_are_unique_per_pass(self):
        b = mpx.Barrier(4)
        seen = mpx.RawArray("i", 4 * 3)

        def child(i):
            for k in range(3):
                seen[k * 4 + b.wait(10)] += 1

        pids = [self.fork(child, i) for i in range(3)]
        for k in range(3):
            seen[k * 4 + b.wait(10)] += 1
        for pid in pids:
            self.assertChildOk(pid)
        self.assertEqual(list(seen), [1] * 12)

    def test_five_processes_stay_in_lockstep(self):
        parties, passes = 5, 300
        b = mpx.Barrier(parties)
        progress = mpx.RawArray("i", parties)

        def child(i):
            for k in range(passes):
                progress[i] = k
                b.wait(20)
                if min(progress) < k:
                    return 5

        self.run_children(child, parties, timeout=60)

    def test_action_runs_once_per_pass_before_anyone_passes(self):
        parties, passes = 3, 20
        count = mpx.RawValue("i", 0)

        def action():
            time.sleep(0.001)
            count.value += 1

        b = mpx.Barrier(parties, action=action)

        def child(i):
            for k in range(passes):
                b.wait(10)
                if count.value < k + 1:
                    return 6

        self.run_children(child, parties)
        self.assertEqual(count.value, passes)

    def test_action_raising_breaks_the_barrier(self):
        def boom():
            raise ZeroDivisionError("boom")

        b = mpx.Barrier(2, action=boom)
        ready = mpx.Event()

        def child():
            ready.set()
            try:
                b.wait(10)
            except threading.BrokenBarrierError:
                return 0
            return 7

        pid = self.fork(child)
        self.assertTrue(ready.wait(10))
        self.assertTrue(wait_until(lambda: b.n_waiting == 1, 5))
        with self.assertRaises(ZeroDivisionError):
            b.wait(10)
        self.assertChildOk(pid)
        self.assertTrue(b.broken)

    def test_abort_breaks_waiters(self):
        b = mpx.Barrier(3)

        def child(i):
            try:
                b.wait(10)
            except threading.BrokenBarrierError:
                return 0
            return 8

        pids = [self.fork(child, i) for i in range(2)]
        self.assertTrue(wait_until(lambda: b.n_waiting == 2, 5))
        b.abort()
        for pid in pids:
            self.assertChildOk(pid, 5)

    def test_reset_breaks_waiters_and_makes_it_reusable(self):
        b = mpx.Barrier(2)

        def child():
            try:
                b.wait(10)
            except threading.BrokenBarrierError:
                pass
            else:
                return 9
            return 0 if b.wait(10) in (0, 1) else 10

        pid = self.fork(child)
        self.assertTrue(wait_until(lambda: b.n_waiting == 1, 5))
        b.reset()
        self.assertTrue(wait_until(lambda: b.n_waiting == 1, 5))
        b.wait(10)
        self.assertChildOk(pid)

    def test_a_killed_party_leaves_the_others_broken_at_the_timeout(self):
        b = mpx.Barrier(3)

        def child(i):
            try:
                b.wait(0.3)
            except threading.BrokenBarrierError:
                return 0
            return 11

        victim = self.fork(lambda: time.sleep(60))
        pids = [self.fork(child, i) for i in range(2)]
        self.kill(victim)
        for pid in pids:
            self.assertChildOk(pid, 5)
        self.assertTrue(b.broken)

    def test_pickle_carries_action_and_timeout(self):
        b = mpx.Barrier(2, action=print, timeout=3)
        c = pickle.loads(pickle.dumps(b))
        self.assertIs(c._action, print)
        self.assertEqual(c._timeout, 3)
        self.assertEqual(c.parties, 2)
        self.assertEqual(c.token, b.token)


if __name__ == "__main__":
    unittest.main()
