"""``concurrent.futures.ProcessPoolExecutor`` over mpx's pool.

``ProcessPoolExecutor(max_workers=None, mp_context=None, initializer=None, initargs=(),
max_tasks_per_child=None)`` is a ``concurrent.futures.Executor`` whose futures are
``concurrent.futures.Future`` objects: ``submit``, ``map(timeout, chunksize)``,
``shutdown(wait, cancel_futures)``, the context manager, and ``concurrent.futures.wait`` and
``as_completed`` on its futures all behave as the standard library's.

What differs:

* A worker that dies (SIGKILL, a segfault, ``os._exit``) fails only the future it was
  running, with ``mpx.WorkerDiedError`` (a ``RuntimeError``, as ``BrokenProcessPool`` is);
  the worker is replaced and every other future goes on. The standard library's executor
  instead breaks: every pending future fails with ``BrokenProcessPool`` and the executor
  accepts no more work. (An initializer that raises still breaks the executor, with
  ``concurrent.futures.process.BrokenProcessPool``, as in the standard library.)
* ``max_tasks_per_child`` works with every start method, 'fork' included, and does not
  change the default context.
* Extras: ``task_timeout=`` (seconds: a call running longer fails with
  ``mpx.TaskTimeoutError`` and its worker is replaced) and ``max_memory_per_child=``
  (bytes), as on ``mpx.Pool``.

As in the standard library, at most ``max_workers + 1`` calls are handed to the workers at
a time; the others wait in the executor, where ``Future.cancel()`` can still cancel them.
"""

import collections
import itertools
import os
import threading
import weakref
from concurrent.futures import _base
from concurrent.futures.process import BrokenProcessPool

from . import pool as _pool
from ._lib import WorkerDiedError

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool", "WorkerDiedError"]

# Calls handed to the pool beyond one per worker (concurrent.futures.process's
# EXTRA_QUEUED_CALLS): a worker that finishes finds its next call waiting.
EXTRA_QUEUED_CALLS = 1


def _process_chunk(fn, chunk):
    """Run fn over a chunk of argument tuples (a worker's part of map with chunksize > 1)."""
    return [fn(*args) for args in chunk]


def _chunks(iterables, chunksize):
    it = zip(*iterables)
    while True:
        chunk = tuple(itertools.islice(it, chunksize))
        if not chunk:
            return
        yield chunk


def _chain_from_iterable_of_lists(iterable):
    # As concurrent.futures.process's: yield the items, freeing each list as it goes.
    for element in iterable:
        element.reverse()
        while element:
            yield element.pop()


_global_shutdown = False
_executors = weakref.WeakSet()


def _python_exit():
    # As the standard library's: at exit (before the pools' finalizers terminate them), the
    # work already submitted to executors is finished.
    global _global_shutdown
    _global_shutdown = True
    me = os.getpid()
    for ex in list(_executors):
        if ex._owner_pid != me:
            continue        # a forked child's copy (a worker at its exit): not its to finish
        try:
            ex._finish_at_exit()
        except Exception:  # noqa: BLE001 - exit goes on
            pass


threading._register_atexit(_python_exit)


class ProcessPoolExecutor(_base.Executor):
    """An Executor that runs calls in mpx pool worker processes."""

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, task_timeout=None, max_memory_per_child=None):
        ctx = _pool._mpx_context(mp_context)
        if max_workers is None:
            self._max_workers = ctx.cpu_count() or 1
        else:
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            self._max_workers = max_workers
        self._mp_context = ctx
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer = initializer
        self._initargs = initargs
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            elif max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._max_tasks_per_child = max_tasks_per_child
        _pool._timeout_ms(task_timeout)          # checked now
        self._task_timeout = task_timeout
        if max_memory_per_child is not None and (
                not isinstance(max_memory_per_child, int) or max_memory_per_child <= 0):
            raise ValueError("max_memory_per_child must be a positive int (bytes) or None")
        self._max_memory_per_child = max_memory_per_child
        self._pool = None                        # the mpx.Pool, made on first submit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = collections.deque()      # (future, fn, args, kwargs) not yet handed over
        self._running = {}                       # future -> None, handed to the pool
        self._limit = self._max_workers + EXTRA_QUEUED_CALLS
        self._shutdown_thread = False
        self._broken = False
        self._closed = False
        self._owner_pid = os.getpid()
        _executors.add(self)

    @property
    def _processes(self):
        """{pid: Process} of the live workers (as the standard library's attribute)."""
        p = self._pool
        return {w.pid: w for w in p._pool} if p is not None else {}

    def _start_pool(self):
        # self._lock held
        if self._pool is None:
            self._pool = _pool.Pool(self._max_workers, self._initializer, self._initargs,
                                    self._max_tasks_per_child, self._mp_context,
                                    task_timeout=self._task_timeout,
                                    max_memory_per_child=self._max_memory_per_child)
            self._pool._core.on_init_failure = self._initializer_failed

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._shutdown_thread:
                raise RuntimeError('cannot schedule new futures after shutdown')
            if _global_shutdown:
                raise RuntimeError('cannot schedule new futures after interpreter shutdown')
            f = _base.Future()
            self._pending.append((f, fn, args, kwargs))
            self._start_pool()
            batch = self._take()
        self._hand_over(batch)
        return f
    submit.__doc__ = _base.Executor.submit.__doc__

    def _take(self):
        """With the lock held: the pending calls that may be handed to the pool now."""
        batch = []
        pending, running = self._pending, self._running
        while pending and len(running) < self._limit:
            item = pending.popleft()
            if not item[0].set_running_or_notify_cancel():
                continue        # cancelled while it waited
            running[item[0]] = None
            batch.append(item)
        return batch

    def _hand_over(self, batch):
        pool = self._pool
        for f, fn, args, kwargs in batch:
            try:
                pool.apply_async(fn, args, kwargs, callback=_Done(self, f, True),
                                 error_callback=_Done(self, f, False))
            except Exception as e:  # noqa: BLE001 - the pool was terminated under us
                self._finished(f, False, e)

    def _finished(self, f, ok, value):
        with self._lock:
            self._running.pop(f, None)
            batch = self._take() if not self._broken else []
            idle = not self._running and not self._pending
            close = idle and self._shutdown_thread and not self._closed and self._pool is not None
            if close:
                self._closed = True
            if idle:
                self._idle.notify_all()
        _settle(f, ok, value)
        if batch:
            self._hand_over(batch)
        if close:
            self._pool.close()

    def _initializer_failed(self):
        """A worker's initializer raised: the executor is broken (as the standard library's)."""
        exc_text = ('A child process terminated abruptly, the process pool is not usable '
                    'anymore (a worker initializer raised)')
        with self._lock:
            if self._broken:
                return
            self._broken = exc_text
            victims = [item[0] for item in self._pending] + list(self._running)
            self._pending.clear()
            self._running.clear()
            self._idle.notify_all()
        for f in victims:
            _settle(f, False, BrokenProcessPool(exc_text))
        # Stop the pool from another thread (this runs in the pool's worker handler).
        threading.Thread(target=self._pool.terminate, daemon=True).start()

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Returns an iterator equivalent to map(fn, iter)."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        results = super().map(_chunk_runner(fn), _chunks(iterables, chunksize), timeout=timeout)
        return _chain_from_iterable_of_lists(results)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown_thread = True
            if cancel_futures:
                for f, *_ in self._pending:
                    f.cancel()
                self._pending.clear()
            pool = self._pool
            idle = not self._running and not self._pending
            close = idle and pool is not None and not self._closed
            if close:
                self._closed = True
        if close:
            pool.close()
        if wait and pool is not None:
            with self._lock:
                while (self._running or self._pending) and not self._broken:
                    self._idle.wait(0.1)
            if self._broken:
                pool.terminate()
            else:
                pool.close()
            pool.join()
    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    def _finish_at_exit(self):
        with self._lock:
            self._shutdown_thread = True
            pool = self._pool
        if pool is not None and pool._state != _pool.TERMINATE:
            self.shutdown(wait=True)


def _settle(f, ok, value):
    # Once: a broken executor may have failed the future already.
    try:
        if ok:
            f.set_result(value)
        else:
            f.set_exception(value)
    except _base.InvalidStateError:
        pass


class _Done:
    """A pool callback that completes a future."""

    __slots__ = ("ex", "f", "ok")

    def __init__(self, ex, f, ok):
        self.ex, self.f, self.ok = ex, f, ok

    def __call__(self, value):
        self.ex._finished(self.f, self.ok, value)


def _chunk_runner(fn):
    import functools
    return functools.partial(_process_chunk, fn)
