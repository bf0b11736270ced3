"""mpx.futures.ProcessPoolExecutor: concurrent.futures semantics (submit, map, shutdown,
cancel, wait, as_completed) with real workers; a dead worker fails only its future."""

import concurrent.futures as cf
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

from _support import mpx, wait_until, subprocess_env
from mpx.futures import ProcessPoolExecutor, BrokenProcessPool
from test_pool import PoolCase, _square, _add, _sleep_then, _raise_value_error, _exit3, _pid, \
    _report_pid_and_sleep


def _fail_init():
    raise RuntimeError("initializer failed (expected by the test)")


class ExecutorCase(PoolCase):

    def executor(self, *args, **kwargs):
        kwargs.setdefault("mp_context", self.ctx)
        ex = ProcessPoolExecutor(*args, **kwargs)
        self.addCleanup(ex.shutdown, wait=True, cancel_futures=True)
        return ex


class Executor(ExecutorCase):

    def test_submit_and_result(self):
        ex = self.executor(2)
        f = ex.submit(_add, 2, b=3)
        self.assertIsInstance(f, cf.Future)
        self.assertEqual(f.result(timeout=10), 5)
        self.assertTrue(f.done())
        self.assertIsNone(f.exception())
        g = ex.submit(_raise_value_error, 3)
        with self.assertRaisesRegex(ValueError, "bad item 3"):
            g.result(timeout=10)
        self.assertIsInstance(g.exception(), ValueError)
        self.assertIsInstance(g.exception().__cause__, multiprocessing.pool.RemoteTraceback)

    def test_result_with_a_timeout(self):
        ex = self.executor(1)
        f = ex.submit(_sleep_then, 0.5, "late")
        with self.assertRaises(cf.TimeoutError):
            f.result(timeout=0.05)
        self.assertEqual(f.result(timeout=10), "late")

    def test_map(self):
        ex = self.executor(2)
        self.assertEqual(list(ex.map(_square, range(20))), [x * x for x in range(20)])
        self.assertEqual(list(ex.map(_add, range(20), range(20), chunksize=6)), [2 * x for x in range(20)])
        self.assertEqual(list(ex.map(_square, [])), [])
        it = ex.map(_sleep_then, [0.6], timeout=0.1)
        with self.assertRaises(cf.TimeoutError):
            list(it)
        with self.assertRaisesRegex(ValueError, "chunksize must be >= 1"):
            ex.map(_square, [1], chunksize=0)
        with self.assertRaisesRegex(ValueError, "bad item 3"):
            list(ex.map(_raise_value_error, range(5), chunksize=2))

    def test_wait_and_as_completed(self):
        ex = self.executor(2)
        fs = [ex.submit(_sleep_then, 0.05 * (5 - i), i) for i in range(5)]
        done, not_done = cf.wait(fs, timeout=10)
        self.assertEqual(len(done), 5)
        self.assertFalse(not_done)
        fs = [ex.submit(_sleep_then, 0.02, i) for i in range(8)]
        self.assertEqual(sorted(f.result() for f in cf.as_completed(fs, timeout=10)), list(range(8)))
        fs = [ex.submit(_square, 2), ex.submit(_raise_value_error, 3)]
        done, _ = cf.wait(fs, timeout=10, return_when=cf.FIRST_EXCEPTION)
        self.assertTrue(any(f.exception() for f in done))

    def test_cancel_works_for_futures_not_yet_handed_to_a_worker(self):
        ex = self.executor(1)
        first = ex.submit(_sleep_then, 0.5, "first")
        queued = [ex.submit(_square, i) for i in range(6)]
        self.assertFalse(first.cancel())      # running
        # One runs, one waits in the pool (EXTRA_QUEUED_CALLS); the rest can be cancelled.
        cancelled = [f.cancel() for f in queued]
        self.assertEqual(cancelled, [False] + [True] * 5)
        self.assertEqual(first.result(10), "first")
        self.assertEqual(queued[0].result(10), 0)
        for f in queued[1:]:
            self.assertTrue(f.cancelled())
            with self.assertRaises(cf.CancelledError):
                f.result(0)

    def test_a_dead_worker_fails_only_its_future(self):
        ex = self.executor(2)
        q = mpx.Queue()
        doomed = ex.submit(_report_pid_and_sleep, q, 30)
        others = [ex.submit(_sleep_then, 0.02, i) for i in range(10)]
        pid = q.get(timeout=10)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with self.assertRaises(mpx.WorkerDiedError):
            doomed.result(timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual([f.result(10) for f in others], list(range(10)))
        self.assertIsInstance(ex.submit(_exit3).exception(10), mpx.WorkerDiedError)
        self.assertEqual(ex.submit(_square, 8).result(10), 64)

    def test_shutdown(self):
        ex = self.executor(2)
        fs = [ex.submit(_sleep_then, 0.05, i) for i in range(6)]
        ex.shutdown(wait=True)
        self.assertEqual([f.result(0) for f in fs], list(range(6)))
        with self.assertRaisesRegex(RuntimeError, "cannot schedule new futures after shutdown"):
            ex.submit(_square, 1)
        ex.shutdown()       # again: nothing

    def test_shutdown_without_waiting_lets_the_work_finish(self):
        ex = self.executor(2)
        fs = [ex.submit(_sleep_then, 0.05, i) for i in range(6)]
        t0 = time.monotonic()
        ex.shutdown(wait=False)
        self.assertLess(time.monotonic() - t0, 0.2)
        self.assertEqual([f.result(10) for f in fs], list(range(6)))

    def test_shutdown_cancel_futures(self):
        ex = self.executor(1)
        running = ex.submit(_sleep_then, 0.3, "ran")
        fs = [ex.submit(_square, i) for i in range(10)]
        ex.shutdown(wait=True, cancel_futures=True)
        self.assertEqual(running.result(0), "ran")
        self.assertTrue(all(f.done() for f in fs))
        self.assertGreaterEqual(sum(f.cancelled() for f in fs), 8)

    def test_the_context_manager_waits(self):
        with self.executor(2) as ex:
            fs = [ex.submit(_sleep_then, 0.05, i) for i in range(4)]
        self.assertTrue(all(f.done() for f in fs))

    def test_max_tasks_per_child(self):
        ex = self.executor(2, max_tasks_per_child=1)
        pids = [f.result(10) for f in [ex.submit(_pid) for _ in range(8)]]
        self.assertEqual(len(set(pids)), 8)

    def test_an_initializer_that_raises_breaks_the_executor(self):
        ex = self.executor(1, initializer=_fail_init)
        f = ex.submit(_square, 2)
        with self.assertRaises(BrokenProcessPool):
            f.result(timeout=10)
        with self.assertRaises(BrokenProcessPool):
            ex.submit(_square, 3)

    def test_work_submitted_is_finished_at_exit(self):
        code = textwrap.dedent("""
            import time, mpx.futures
            def slow(x):
                time.sleep(0.1)
                return x
            if __name__ == "__main__":
                ex = mpx.futures.ProcessPoolExecutor(2, mp_context=mpx.get_context("fork"))
                for i in range(4):
                    ex.submit(slow, i).add_done_callback(lambda f: print("done", f.result(), flush=True))
                print("exiting", flush=True)
            """)
        out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), timeout=30,
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(sorted(out.stdout.split("\n")),
                         ["", "done 0", "done 1", "done 2", "done 3", "exiting"])

    def test_invalid_arguments(self):
        with self.assertRaisesRegex(ValueError, "max_workers must be greater than 0"):
            ProcessPoolExecutor(0)
        with self.assertRaisesRegex(TypeError, "initializer must be a callable"):
            ProcessPoolExecutor(1, initializer=1)
        with self.assertRaisesRegex(TypeError, "max_tasks_per_child must be an integer"):
            ProcessPoolExecutor(1, max_tasks_per_child=1.5)
        with self.assertRaisesRegex(ValueError, "max_tasks_per_child must be >= 1"):
            ProcessPoolExecutor(1, max_tasks_per_child=0)
        self.assertTrue(issubclass(ProcessPoolExecutor, cf.Executor))
        self.assertIs(mpx.futures.ProcessPoolExecutor, ProcessPoolExecutor)

    def test_a_task_timeout(self):
        ex = self.executor(1, task_timeout=0.3)
        with self.assertRaises(mpx.TaskTimeoutError):
            ex.submit(_sleep_then, 30).result(10)
        self.assertEqual(ex.submit(_square, 3).result(10), 9)


class SpawnExecutor(ExecutorCase):
    method = "spawn"

    def test_submit_and_map(self):
        ex = self.executor(2)
        self.assertEqual(ex.submit(_square, 5).result(30), 25)
        self.assertEqual(list(ex.map(_square, range(10), chunksize=3)), [x * x for x in range(10)])


if __name__ == "__main__":
    unittest.main()
