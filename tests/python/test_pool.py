"""mpx.Pool: multiprocessing.Pool's surface and semantics with real workers, and what mpx adds:
a dead worker's task fails (and only it) instead of hanging the pool, task timeouts, memory
caps, terminate with thousands pending, the three start methods; no process, thread or
descriptor is left behind by any test."""

import ctypes
import faulthandler
import gc
import io
import itertools
import multiprocessing
import multiprocessing.pool
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest
import warnings

from _support import TestCase, mpx, wait_until, subprocess_env
from mpx.pool import Pool, TaskTimeoutError, TaskCancelledError


# ---- targets: module level, so that spawn and forkserver workers unpickle them --------------

def _square(x):
    return x * x


def _add(a, b):
    return a + b


def _identity(x):
    return x


def _pid(_=None):
    return os.getpid()


def _kwargs(a, b=0, *, c=0):
    return (a, b, c)


def _sleep_then(secs, value=None):
    time.sleep(secs)
    return value


def _raise_value_error(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def _report_pid_and_sleep(q, secs):
    q.put(os.getpid())
    time.sleep(secs)
    return "slept"


def _segfault():
    faulthandler.disable()
    ctypes.string_at(0)


def _exit3():
    os._exit(3)


def _return_lock():
    return threading.Lock()


_hog = []


def _hog_memory(mib):
    _hog.append(bytearray(mib << 20))   # touched: resident
    for i in range(0, mib << 20, 4096):
        _hog[-1][i] = 1
    return os.getpid()


_initialized = None


def _init(value):
    global _initialized
    _initialized = value


def _get_initialized():
    return _initialized, multiprocessing.current_process().name


class _FailsToUnpickle:
    def __reduce__(self):
        return (_raise_value_error, (3,))


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


# ---- support -----------------------------------------------------------------------------------

def fds():
    return sorted(os.listdir("/proc/self/fd"))


def child_pids():
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                out.append(int(entry))
    return sorted(out)


def pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("mpx-pool")]


class PoolCase(TestCase):
    """A test whose pools (made with self.pool) are terminated and joined at its end, and
    that then checks that no process, pool thread or descriptor is left."""

    method = "fork"
    deadline = 40

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Warm up: a forkserver starts once, the library opens what it keeps (also what a
        # replacement worker, forked from the pool's handler thread, needs).
        with mpx.get_context(cls.method).Pool(1) as p:
            p.apply(_square, (2,))
            try:
                p.apply(_exit3)
            except mpx.WorkerDiedError:
                pass
            p.apply(_square, (2,))
        p.join()

    def setUp(self):
        super().setUp()
        self.ctx = mpx.get_context(self.method)
        self._fds = fds()
        self._kids = child_pids()
        self.addCleanup(self._check_leaks)

    def _check_leaks(self):
        def settled():
            # A descriptor held by an object in a reference cycle (a worker's Process, its
            # sentinel) is closed when the collector frees the cycle: collect before judging.
            gc.collect()
            # New descriptors only: one an earlier test left to the collector may close meanwhile.
            return child_pids() == self._kids and not pool_threads() and not set(fds()) - set(self._fds)
        ok = wait_until(settled, 5.0, 0.05)
        if not ok:
            self.assertEqual(child_pids(), self._kids, "processes left behind")
            self.assertEqual(pool_threads(), [], "pool threads left behind")
            extra = sorted(set(fds()) - set(self._fds))
            what = {}
            for fd in extra:
                try:
                    what[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    pass
            self.assertEqual(extra, [], f"descriptors left behind: {what}")

    def pool(self, *args, **kwargs):
        p = Pool(*args, **kwargs) if "context" in kwargs else self.ctx.Pool(*args, **kwargs)

        def end():
            p.terminate()
            p.join()
        self.addCleanup(end)
        return p


# ---- the surface -------------------------------------------------------------------------------

class PoolApi(PoolCase):

    def test_apply_and_apply_async(self):
        p = self.pool(2)
        self.assertEqual(p.apply(_square, (7,)), 49)
        self.assertEqual(p.apply(_kwargs, (1,), {"b": 2, "c": 3}), (1, 2, 3))
        r = p.apply_async(_add, (2, 3))
        self.assertIsInstance(r, multiprocessing.pool.AsyncResult)
        self.assertEqual(r.get(timeout=10), 5)
        self.assertTrue(r.ready())
        self.assertTrue(r.successful())
        r.wait()

    def test_get_with_a_timeout_raises_multiprocessing_timeout_error(self):
        p = self.pool(1)
        r = p.apply_async(_sleep_then, (0.5, "done"))
        t0 = time.monotonic()
        with self.assertRaises(multiprocessing.TimeoutError):
            r.get(timeout=0.05)
        self.assertLess(time.monotonic() - t0, 0.4)
        self.assertFalse(r.ready())
        with self.assertRaisesRegex(ValueError, "not ready"):
            r.successful()
        self.assertEqual(r.get(timeout=10), "done")

    def test_callbacks_and_error_callbacks(self):
        p = self.pool(2)
        got, errors = [], []
        done = threading.Event()
        r1 = p.apply_async(_square, (4,), callback=got.append, error_callback=errors.append)
        r2 = p.apply_async(_raise_value_error, (3,), callback=got.append, error_callback=errors.append)
        r3 = p.map_async(_square, range(5), callback=got.append)
        r4 = p.map_async(_raise_value_error, range(5), error_callback=lambda e: (errors.append(e), done.set()))
        r5 = p.starmap_async(_add, [(1, 2), (3, 4)], callback=got.append)
        for r in (r1, r2, r3, r4, r5):
            r.wait(10)
        self.assertTrue(done.wait(10))
        self.assertIn(16, got)
        self.assertIn([0, 1, 4, 9, 16], got)
        self.assertIn([3, 7], got)
        self.assertEqual(len(errors), 2)
        self.assertTrue(all(isinstance(e, ValueError) for e in errors))
        self.assertFalse(r2.successful())
        self.assertFalse(r4.successful())

    def test_map_and_starmap(self):
        p = self.pool(2)
        self.assertEqual(p.map(_square, range(100)), [x * x for x in range(100)])
        self.assertEqual(p.map(_square, range(100), chunksize=1), [x * x for x in range(100)])
        self.assertEqual(p.map(_square, range(100), 7), [x * x for x in range(100)])
        self.assertEqual(p.map(_square, (x for x in range(10))), [x * x for x in range(10)])
        self.assertEqual(p.starmap(_add, [(i, i) for i in range(50)]), [2 * i for i in range(50)])
        self.assertEqual(p.starmap(_add, [(i, i) for i in range(50)], 1), [2 * i for i in range(50)])
        self.assertEqual(p.map_async(_square, [1, 2, 3]).get(10), [1, 4, 9])
        self.assertEqual(p.starmap_async(_add, [(1, 2)]).get(10), [3])

    def test_the_automatic_chunksize_is_multiprocessings(self):
        p = self.pool(2)
        for n in (1, 7, 8, 100, 1001):
            r = p.map_async(_identity, range(n))
            chunksize, extra = divmod(n, 2 * 4)
            self.assertEqual(r._chunksize, chunksize + bool(extra))
            self.assertEqual(r.get(10), list(range(n)))

    def test_an_empty_map_returns_at_once(self):
        p = self.pool(2)
        t0 = time.monotonic()
        self.assertEqual(p.map(_square, []), [])
        self.assertEqual(p.starmap(_add, iter([])), [])
        self.assertEqual(p.map_async(_square, ()).get(0), [])
        self.assertEqual(list(p.imap(_square, [])), [])
        self.assertEqual(list(p.imap_unordered(_square, [], chunksize=5)), [])
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_imap_and_imap_unordered(self):
        p = self.pool(2)
        self.assertEqual(list(p.imap(_square, range(100))), [x * x for x in range(100)])
        self.assertEqual(list(p.imap(_square, range(100), chunksize=7)), [x * x for x in range(100)])
        self.assertEqual(sorted(p.imap_unordered(_square, range(100))), [x * x for x in range(100)])
        self.assertEqual(sorted(p.imap_unordered(_square, range(100), 9)), [x * x for x in range(100)])
        it = p.imap(_sleep_then, [0.5])
        with self.assertRaises(multiprocessing.TimeoutError):
            it.next(timeout=0.05)
        self.assertIsNone(it.next(timeout=10))
        with self.assertRaises(StopIteration):
            it.next()
        with self.assertRaisesRegex(ValueError, "Chunksize must be 1"):
            p.imap(_square, range(3), chunksize=0)

    def test_imap_takes_a_generator_lazily(self):
        p = self.pool(2)
        pulled = [0]

        def numbers():
            for i in itertools.count():
                pulled[0] += 1
                yield i
        out = []
        for x in p.imap(_square, numbers()):
            out.append(x)
            if len(out) == 20:
                break
        self.assertEqual(out, [x * x for x in range(20)])
        self.assertLess(pulled[0], 1000)

    def test_imap_goes_on_after_close(self):
        p = self.pool(2)
        it = p.imap(_square, iter(range(1000)))
        itu = p.imap_unordered(_square, iter(range(1000)), chunksize=3)
        p.close()
        self.assertEqual(list(it), [x * x for x in range(1000)])
        self.assertEqual(sorted(itu), [x * x for x in range(1000)])
        p.join()

    def test_an_iterable_that_raises_fails_imap_at_that_item(self):
        p = self.pool(2)

        def items():
            yield 1
            yield 2
            raise KeyError("from the iterable")
        it = p.imap(_square, items())
        self.assertEqual(next(it), 1)
        self.assertEqual(next(it), 4)
        with self.assertRaises(KeyError):
            next(it)
        with self.assertRaises(StopIteration):
            next(it)

    def test_a_remote_exception_is_reraised_with_its_traceback(self):
        p = self.pool(2)
        with self.assertRaisesRegex(ValueError, "bad item 3") as cm:
            p.apply(_raise_value_error, (3,))
        self.assertIsInstance(cm.exception.__cause__, multiprocessing.pool.RemoteTraceback)
        self.assertIn("_raise_value_error", str(cm.exception.__cause__))
        with self.assertRaisesRegex(ValueError, "bad item 3"):
            p.map(_raise_value_error, range(10))
        with self.assertRaisesRegex(ValueError, "bad item 3"):
            list(p.imap(_raise_value_error, range(10)))
        it = p.imap(_raise_value_error, range(5))
        self.assertEqual([next(it) for _ in range(3)], [0, 1, 2])
        with self.assertRaises(ValueError):
            next(it)
        self.assertEqual(list(it), [4])
        self.assertEqual(p.apply(_square, (3,)), 9)

    def test_initializer_and_worker_names(self):
        p = self.pool(2, initializer=_init, initargs=(42,))
        value, name = p.apply(_get_initialized)
        self.assertEqual(value, 42)
        prefix = {"fork": "ForkPoolWorker-", "spawn": "SpawnPoolWorker-",
                  "forkserver": "ForkServerPoolWorker-"}[self.method]
        self.assertTrue(name.startswith(prefix), name)
        self.assertEqual(len(p._pool), 2)
        self.assertTrue(all(w.daemon for w in p._pool))

    def test_close_join_and_the_pool_not_running(self):
        p = self.pool(2)
        r = p.map_async(_sleep_then, [0.05] * 6, chunksize=1)
        with self.assertRaisesRegex(ValueError, "Pool is still running"):
            p.join()
        p.close()
        for call in (lambda: p.apply(_square, (1,)), lambda: p.apply_async(_square, (1,)),
                     lambda: p.map(_square, [1]), lambda: p.imap(_square, [1]),
                     lambda: p.imap_unordered(_square, [1]), lambda: p.starmap(_add, [(1, 2)])):
            with self.assertRaisesRegex(ValueError, "Pool not running"):
                call()
        p.join()
        self.assertEqual(r.get(0), [None] * 6)
        self.assertEqual(p._pool, [])

    def test_the_context_manager_terminates(self):
        with self.ctx.Pool(2) as p:
            self.assertEqual(p.map(_square, [1, 2]), [1, 4])
            r = p.apply_async(_sleep_then, (30,))
        with self.assertRaises(TaskCancelledError):
            r.get(5)
        with self.assertRaisesRegex(ValueError, "Pool not running"):
            p.apply(_square, (1,))
        with self.assertRaisesRegex(ValueError, "Pool not running"):
            with p:
                pass
        p.join()

    def test_invalid_sizes_are_value_errors(self):
        for kwargs, message in (({"processes": 0}, "Number of processes must be at least 1"),
                                ({"processes": -1}, "Number of processes must be at least 1"),
                                ({"maxtasksperchild": 0}, "maxtasksperchild must be a positive int"),
                                ({"maxtasksperchild": -1}, "maxtasksperchild must be a positive int"),
                                ({"maxtasksperchild": 1.5}, "maxtasksperchild must be a positive int"),
                                ({"max_memory_per_child": 0}, "max_memory_per_child"),
                                ({"task_timeout": 0}, "task_timeout"),
                                ({"task_timeout": -1}, "task_timeout")):
            with self.assertRaisesRegex(ValueError, message):
                Pool(**kwargs)
        with self.assertRaisesRegex(TypeError, "initializer must be a callable"):
            Pool(1, initializer=3)

    def test_names_reach_the_pool(self):
        self.assertIs(mpx.Pool, Pool)
        self.assertIs(mpx.pool.Pool, Pool)
        self.assertIs(mpx.WorkerDiedError, mpx._lib.WorkerDiedError)
        self.assertTrue(issubclass(TaskTimeoutError, multiprocessing.TimeoutError))
        self.assertTrue(issubclass(TaskTimeoutError, TimeoutError))
        with self.assertRaises(NotImplementedError):
            pickle.dumps(self.pool(1))
        # A multiprocessing context is taken as the mpx context of its start method.
        p = self.pool(1, context=multiprocessing.get_context(self.method))
        self.assertEqual(p.apply(_square, (5,)), 25)
        self.assertIn("state=RUN", repr(p))

    def test_a_callback_that_raises_does_not_stop_the_pool(self):
        p = self.pool(1)

        def bad(_):
            raise RuntimeError("callback failed (expected by the test)")
        r = p.apply_async(_square, (3,), callback=bad)
        self.assertEqual(r.get(10), 9)
        self.assertEqual(p.apply(_square, (4,)), 16)

    def test_terminate_from_a_callback(self):
        p = self.pool(2)
        done = threading.Event()

        def stop(_):
            p.terminate()
            done.set()
        slow = p.apply_async(_sleep_then, (30,))
        p.apply_async(_square, (2,), callback=stop)
        self.assertTrue(done.wait(10))
        with self.assertRaises(TaskCancelledError):
            slow.get(5)
        p.join()

    def test_an_unreferenced_pool_is_terminated(self):
        def use():
            p = self.ctx.Pool(2)
            return p.map(_square, range(4)), [w.pid for w in p._pool]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            out, pids = use()
            gc.collect()
        self.assertEqual(out, [0, 1, 4, 9])
        self.assertTrue(wait_until(lambda: not set(pids) & set(child_pids()), 5))

    def test_an_open_pool_is_terminated_at_exit(self):
        code = textwrap.dedent("""
            import time, mpx
            if __name__ == "__main__":
                p = mpx.get_context("%s").Pool(2)
                r = p.apply_async(time.sleep, (60,))
                print(p.map(abs, [-1, -2]), [w.pid for w in p._pool], flush=True)
            """ % self.method)
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=subprocess_env(),
                             timeout=30, capture_output=True, text=True)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith("[1, 2] ["), out.stdout)
        pids = eval(out.stdout.split("] ", 1)[1])
        self.assertTrue(wait_until(lambda: all(not os.path.exists(f"/proc/{pid}") for pid in pids), 5))

    def test_progress_is_drawn_on_a_terminal_only(self):
        p = self.pool(2)
        tty = _FakeTTY()
        self.assertEqual(p.map(_square, range(50), progress=tty), [x * x for x in range(50)])
        self.assertIn("50/50", tty.getvalue())
        tty = _FakeTTY()
        self.assertEqual(list(p.imap(_square, range(20), progress=tty)), [x * x for x in range(20)])
        self.assertIn("20/20", tty.getvalue())
        tty = _FakeTTY()
        self.assertEqual(sorted(p.imap_unordered(_square, iter(range(5)), progress=tty)),
                         [0, 1, 4, 9, 16])
        self.assertIn("5 done", tty.getvalue())
        plain = io.StringIO()
        self.assertEqual(p.map(_square, range(5), progress=plain), [0, 1, 4, 9, 16])
        self.assertEqual(list(p.imap(_square, range(5), progress=plain)), [0, 1, 4, 9, 16])
        self.assertEqual(plain.getvalue(), "")

    def test_stats(self):
        p = self.pool(2)
        p.map(_square, range(10), chunksize=1)
        s = p.stats()
        self.assertGreaterEqual(s["tasks_submitted"], 10)
        self.assertGreaterEqual(s["tasks_succeeded"], 10)
        self.assertEqual(s["workers_started"], 2)


# ---- failures fail their task only -------------------------------------------------------------

class PoolFailures(PoolCase):

    def test_a_worker_killed_mid_task_fails_that_task_and_the_pool_recovers(self):
        p = self.pool(2)
        q = mpx.Queue()
        r = p.apply_async(_report_pid_and_sleep, (q, 30))
        others = p.map_async(_sleep_then, [0.01] * 20, chunksize=1)
        pid = q.get(timeout=10)
        names = {w.pid: w.name for w in p._pool}
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        with self.assertRaises(mpx.WorkerDiedError) as cm:
            r.get(timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIn(str(pid), str(cm.exception))
        self.assertIn(f"{names[pid]} (pid {pid})", str(cm.exception))
        self.assertEqual(cm.exception.exitcode, -signal.SIGKILL)
        self.assertEqual(others.get(10), [None] * 20)
        self.assertEqual(p.map(_square, range(20)), [x * x for x in range(20)])
        self.assertTrue(wait_until(lambda: len(p._pool) == 2, 5))
        self.assertNotIn(pid, [w.pid for w in p._pool])

    def test_a_segfault_fails_that_task(self):
        p = self.pool(2)
        r = p.apply_async(_segfault)
        with self.assertRaises(mpx.WorkerDiedError) as cm:
            r.get(timeout=10)
        self.assertEqual(cm.exception.exitcode, -signal.SIGSEGV)
        self.assertRegex(str(cm.exception), "SIGSEGV|signal 11")
        self.assertEqual(p.apply(_square, (5,)), 25)

    def test_os_exit_fails_that_task_with_its_status(self):
        p = self.pool(1)
        with self.assertRaises(mpx.WorkerDiedError) as cm:
            p.apply(_exit3)
        self.assertEqual(cm.exception.exitcode, 3)
        self.assertRegex(str(cm.exception), r"\b3\b")
        self.assertEqual(p.apply(_square, (6,)), 36)
        with self.assertRaises(mpx.WorkerDiedError):
            p.map(_exit3_or_square, range(8), chunksize=1)
        self.assertEqual(p.map(_square, range(8)), [x * x for x in range(8)])

    def test_a_task_timeout_kills_its_worker(self):
        p = self.pool(2)
        t0 = time.monotonic()
        r = p.apply_async(_sleep_then, (30,), task_timeout=0.3)
        fine = p.apply_async(_sleep_then, (0.5, "fine"), task_timeout=5)
        with self.assertRaises(TaskTimeoutError) as cm:
            r.get(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, 3.0)
        self.assertIsInstance(cm.exception, multiprocessing.TimeoutError)
        self.assertIn("timeout", str(cm.exception))
        self.assertFalse(str(cm.exception).startswith("[Errno"), str(cm.exception))
        self.assertEqual(fine.get(10), "fine")
        self.assertEqual(p.apply(_square, (2,)), 4)

    def test_the_pools_task_timeout_is_the_default(self):
        p = self.pool(2, task_timeout=0.3)
        with self.assertRaises(TaskTimeoutError):
            p.apply(_sleep_then, (30,))
        with self.assertRaises(TaskTimeoutError):
            p.map(_sleep_then, [0, 0, 30, 0], chunksize=1)
        self.assertEqual(p.apply(_sleep_then, (0.6, 1), task_timeout=5), 1)
        self.assertEqual(p.apply(_sleep_then, (0.6, 2), task_timeout=float("inf")), 2)
        self.assertEqual(p.imap(_sleep_then, [0.01]).next(10), None)

    def test_maxtasksperchild_one_with_many_pending(self):
        p = self.pool(2, maxtasksperchild=1)
        results = [p.apply_async(_pid) for _ in range(30)]
        m = p.map_async(_pid, range(10), chunksize=1)
        p.close()
        p.join()
        pids = [r.get(0) for r in results] + m.get(0)
        self.assertEqual(len(set(pids)), 40)

    def test_max_memory_per_child_replaces_a_grown_worker(self):
        # A fork worker starts with this process's resident size (its mappings are shared).
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        p = self.pool(1, max_memory_per_child=rss + (48 << 20))
        first = p.apply(_pid)
        self.assertEqual(p.apply(_pid), first)
        self.assertEqual(p.apply(_hog_memory, (100,)), first)
        self.assertNotEqual(p.apply(_pid), first)

    def test_terminate_with_ten_thousand_pending_returns_at_once(self):
        p = self.pool(2)
        results = [p.apply_async(_sleep_then, (0.2,)) for _ in range(5000)]
        m = p.map_async(_sleep_then, [0.2] * 5000, chunksize=1)
        it = p.imap(_sleep_then, iter([0.2] * 1000))
        time.sleep(0.1)
        workers = [w.pid for w in p._pool]
        t0 = time.monotonic()
        p.terminate()
        self.assertLess(time.monotonic() - t0, 2.0)
        p.join()
        self.assertLess(time.monotonic() - t0, 2.0)
        for pid in workers:
            self.assertNotIn(pid, child_pids())
        with self.assertRaises(TaskCancelledError):
            results[-1].get(0)
        with self.assertRaises(TaskCancelledError):
            m.get(0)
        with self.assertRaises(TaskCancelledError):
            list(it)

    def test_unpicklable_arguments_fail_only_their_call(self):
        p = self.pool(2)
        r = p.apply_async(_identity, (threading.Lock(),))
        with self.assertRaises((TypeError, pickle.PicklingError)):
            r.get(5)
        with self.assertRaises((TypeError, pickle.PicklingError)):
            p.map(_identity, [1, threading.Lock(), 3], chunksize=1)
        with self.assertRaises((TypeError, pickle.PicklingError, AttributeError)):
            p.apply(lambda: 1)
        with self.assertRaises((TypeError, pickle.PicklingError, AttributeError)):
            p.map(lambda x: x, [1, 2])
        with self.assertRaises((TypeError, pickle.PicklingError, AttributeError)):
            list(p.imap(lambda x: x, [1, 2]))
        with self.assertRaisesRegex(ValueError, "bad item 3"):
            p.apply(_identity, (_FailsToUnpickle(),))
        self.assertEqual(p.map(_square, [1, 2, 3]), [1, 4, 9])

    def test_unpicklable_results_fail_only_their_task(self):
        p = self.pool(2)
        with self.assertRaises(multiprocessing.pool.MaybeEncodingError):
            p.apply(_return_lock)
        r = p.map_async(_identity, range(10))
        self.assertEqual(r.get(10), list(range(10)))
        self.assertEqual(p.apply(_square, (9,)), 81)


def _exit3_or_square(x):
    if x == 5:
        os._exit(3)
    return x * x


# ---- the three start methods --------------------------------------------------------------------

class _Methods:

    def test_map_and_apply(self):
        p = self.pool(2)
        self.assertEqual(p.map(_square, range(50)), [x * x for x in range(50)])
        self.assertEqual(p.apply(_add, (2, 3)), 5)
        self.assertEqual(sorted(p.imap_unordered(_square, range(5))), [0, 1, 4, 9, 16])
        value, name = p.apply(_get_initialized)
        self.assertIn("PoolWorker-", name)

    def test_a_dead_worker_is_replaced(self):
        p = self.pool(1, initializer=_init, initargs=("set",))
        with self.assertRaises(mpx.WorkerDiedError):
            p.apply(_exit3)
        self.assertEqual(p.apply(_get_initialized)[0], "set")


class ForkMethod(_Methods, PoolCase):
    method = "fork"


class SpawnMethod(_Methods, PoolCase):
    method = "spawn"


class ForkServerMethod(_Methods, PoolCase):
    method = "forkserver"


if __name__ == "__main__":
    unittest.main()
