"""Process pools: ``multiprocessing.pool.Pool`` over libmpx's pool.

``Pool(processes=None, initializer=None, initargs=(), maxtasksperchild=None, context=None)``
has the surface, results and exceptions of ``multiprocessing.Pool``: ``apply``,
``apply_async`` (callback, error_callback), ``map``, ``map_async``, ``imap``,
``imap_unordered``, ``starmap``, ``starmap_async``, the automatic chunksize, ``close``,
``terminate``, ``join``, the context manager (whose exit terminates). Results are
multiprocessing's own classes (``AsyncResult``, ``MapResult``, ``IMapIterator``), so
``get(timeout)`` raises ``multiprocessing.TimeoutError`` and re-raises a task's exception with
the remote traceback as its ``__cause__`` (``multiprocessing.pool.RemoteTraceback``).

What differs, because libmpx's pool (in its external-workers mode: the workers are mpx
Processes of the pool's context, "ForkPoolWorker-1"...) tracks every task:

* A worker that dies (SIGKILL, a segfault, ``os._exit``) is replaced and only the task it
  held fails, with ``mpx.WorkerDiedError`` whose message says which worker died and how;
  ``get``, ``map`` and ``join`` never hang on a dead worker (multiprocessing's wait forever).
* ``task_timeout=`` (seconds; on the Pool as a default, and on ``apply_async``,
  ``map_async``, ``imap``... per call): a task that runs longer fails with
  ``mpx.TaskTimeoutError`` (a ``multiprocessing.TimeoutError`` and an ``mpx.MpxTimeoutError``)
  and its worker is killed and replaced.
* ``max_memory_per_child=`` (bytes): a worker whose resident size grows past it retires
  after its task and is replaced.
* ``terminate()`` fails every task not yet ended with ``mpx.TaskCancelledError`` (their
  ``get`` returns at once instead of hanging).
* ``map``, ``imap``, ``imap_unordered`` (and the starmaps) take ``progress=True`` (or a file):
  a one-line progress bar (done/total, rate, ETA) on stderr (that file), drawn only when it
  is a terminal.
* ``imap`` and ``imap_unordered`` take their input lazily: a feeder thread keeps a bounded
  number of chunks in flight instead of consuming the whole iterable first.
* An argument that cannot be pickled fails its call (its result's ``get`` raises, as in
  multiprocessing); an argument or result that cannot be unpickled fails its task only.

Tasks cross in batches: ``map`` packs many chunks into one ``mpx_pool_submit`` call, a
result thread takes many results per ``mpx_pool_collect`` call, and workers keep the
functions they have unpickled.
"""

import itertools
import math
import os
import pickle
import re
import select
import struct
import sys
import threading
import time
import traceback
import types
import warnings
import weakref

from multiprocessing import TimeoutError
from multiprocessing.pool import (ApplyResult, AsyncResult, MapResult, IMapIterator,
                                  IMapUnorderedIterator, RemoteTraceback, ExceptionWithTraceback,
                                  MaybeEncodingError)

from . import _lib
from ._lib import (C, MpxError, MpxTimeoutError, WorkerDiedError, c_int, c_int64, c_size_t,
                   c_void_p, byref, error)
from .reduction import dumps as _dumps

__all__ = ["Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator",
           "IMapUnorderedIterator", "TimeoutError", "WorkerDiedError", "TaskTimeoutError",
           "TaskCancelledError", "RemoteTraceback", "MaybeEncodingError"]

_ffi = _lib.pool_ffi()
if not _ffi.have:
    raise ImportError(f"mpx.pool: {_lib.library_path} has no pool API (mpx_pool_*)")

INIT = "INIT"
RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"


class TaskTimeoutError(MpxTimeoutError, TimeoutError):
    """A task ran longer than its task_timeout; its worker was killed and replaced.

    Both ``mpx.MpxTimeoutError`` (the builtin ``TimeoutError``) and
    ``multiprocessing.TimeoutError``. Attribute ``exitcode``: the killed worker's."""

    def __str__(self):
        return self.strerror or super().__str__()


TaskTimeoutError.__module__ = "mpx"


class TaskCancelledError(MpxError):
    """The task was cancelled before it ended (the pool was terminated)."""


TaskCancelledError.__module__ = "mpx"

# ---- the wire format ------------------------------------------------------------------------
#
# A task's payload: u8 kind, 3 bytes padding, u32 n, then n bytes of the pickled function,
# then the pickled argument (what it is depends on the kind). A result's payload: the
# pickled value (status 0), or the pickled exception (a nonzero status from the worker:
# MPX_ETASK here).

_CALL = 0       # arg (args, kwds): func(*args, **kwds)
_CALL1 = 1      # arg x: func(x)                         (imap, chunksize 1)
_MAP = 2        # arg chunk: list(map(func, chunk))       (map and imap chunks)
_MAP1 = 3       # arg x: [func(x)]                        (map, chunksize 1)
_STARMAP = 4    # arg chunk: list(starmap(func, chunk))
_STARMAP1 = 5   # arg args: [func(*args)]

_NAME = b"py"
_PREFIX = struct.Struct("<BxxxI")
_HEADER = struct.Struct("<QQiiII")
_HSIZE = _HEADER.size
_PADS = tuple(b"\0" * ((8 - r) % 8) for r in range(8))
_MASK = 0xFFFFFFFF
_MAX_INDEX = _MASK

_ETIMEDOUT = _lib.ETIMEDOUT
_ECLOSED = _lib.ECLOSED
_ENOBUFS = _lib.ENOBUFS
_ETASK = _lib.ETASK
_EWORKERDIED = _lib.EWORKERDIED
_ECANCELED = _lib.ECANCELED

# mpx_pool_submit never waits (the tasks go to a backlog in memory): a small batch is
# submitted keeping the GIL (handing it to the result thread and back costs more than the
# call), a large one (a copy of many bytes) releasing it.
_submit_gil = _lib.raw_gil("mpx_pool_submit")
_submit = _lib.raw("mpx_pool_submit")
_SUBMIT_GIL_MAX = 64 << 10
_collect = _lib.raw("mpx_pool_collect")
_next = _lib.raw("mpx_worker_next")
_reply = _lib.raw("mpx_worker_reply")
_wanted = _lib.raw_gil("mpx_pool_wanted")
_add_worker = _lib.raw_gil("mpx_pool_add_worker")
_worker_exited = _lib.raw_gil("mpx_pool_worker_exited")

_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_pack_prefix = _PREFIX.pack
_unpack_prefix = _PREFIX.unpack_from
_loads = pickle.loads
_pickle_dumps = pickle.dumps
_ATOMIC = frozenset([bytes, str, int, float, bool, type(None)])
_monotonic = time.monotonic

# Functions whose pickle names them (by module and name): the parent keeps their pickled
# bytes and a worker the unpickled object, keyed by those bytes. Anything else (a bound
# method, a partial, a callable instance) is pickled for each task and unpickled fresh, as
# multiprocessing does, so that state a task changes does not leak into the next.
_BY_NAME = frozenset([types.FunctionType, types.BuiltinFunctionType, type])
_FUNC_CACHE_MAX = 256


def _func_prefix(func, kind, cache):
    """The payload prefix (kind, the pickled function) for `func`."""
    key = None
    if type(func) in _BY_NAME:
        key = (func, kind)
        try:
            return cache[key]
        except (KeyError, TypeError):
            pass
    fb = _dumps(func)
    prefix = _pack_prefix(kind, len(fb)) + fb
    if key is not None:
        if len(cache) >= _FUNC_CACHE_MAX:
            cache.clear()
        try:
            cache[key] = prefix
        except TypeError:
            pass
    return prefix


def _dumps_arg(obj):
    return _pickle_dumps(obj) if type(obj) in _ATOMIC else _dumps(obj)


def _timeout_ms(task_timeout, what="task_timeout"):
    """Seconds -> the ms of mpx_pool_submit: None -> 0 (the pool's), inf -> -1 (none)."""
    if task_timeout is None:
        return 0
    if task_timeout != task_timeout or task_timeout <= 0:
        raise ValueError(f"{what} must be a positive number of seconds or None")
    return _lib.ms_from_timeout(task_timeout)


# The library names a worker "<prefix>-<n> (pid <pid>)" by its own count; the message shown
# names it as Python does (ForkPoolWorker-7, ...).
_WORKER_IN_MESSAGE = re.compile(r"[\w.:-]+ \(pid (\d+)\)")


def _python_names(message, names):
    def sub(m):
        name = names.get(int(m.group(1)))
        return f"{name} (pid {m.group(1)})" if name else m.group(0)
    return _WORKER_IN_MESSAGE.sub(sub, message)


def _task_error(status, code, message):
    """The exception for a task that ended with an mpx error (not its own exception)."""
    if status == _EWORKERDIED:
        cls = WorkerDiedError
    elif status == _ETIMEDOUT:
        cls = TaskTimeoutError
    elif status == _ECANCELED:
        cls = TaskCancelledError
    else:
        cls = None
    exc = error(status, cls=cls, detail=message, text=message or None)
    exc.exitcode = code
    return exc


def _cancelled(text="the pool was terminated before the task ended"):
    exc = TaskCancelledError(text)
    exc.code = _ECANCELED
    exc.name = "MPX_ECANCELED"
    exc.message = text
    exc.exitcode = 0
    return exc


# ---- the worker's side ------------------------------------------------------------------------

# The exit status of a worker whose initializer raised (multiprocessing's is 1; this one
# tells the pool, so that an executor can break as the standard library's does).
INIT_FAILED_EXITCODE = 121


def _worker_main(token, initializer=None, initargs=(), wrap_exception=True):
    """A pool worker's loop: run the initializer, attach, run tasks until the pool lets it
    go (closed and drained, terminated, or this worker retired)."""
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception:
            # As multiprocessing's worker, whose exception ends the process: the traceback
            # as Process._bootstrap prints it, then the exit.
            from .process import current_process
            sys.stderr.write('Process %s:\n' % current_process().name)
            traceback.print_exc()
            sys.exit(INIT_FAILED_EXITCODE)
    w = c_void_p()
    rc = C.mpx_worker_attach(token, byref(w))
    if rc < 0:
        raise error(rc, "attach to the pool")
    try:
        _serve(w, wrap_exception)
    finally:
        C.mpx_worker_detach(w)


def _serve(w, wrap_exception):
    task = _ffi.WorkerTask()
    task.size = _lib.ctypes.sizeof(task)
    ptask = byref(task)
    slice_ = _lib.SLICE
    string_at = _lib.ctypes.string_at
    ok_status = c_int(0)
    fail_status = c_int(1)
    next_, reply = _next, _reply
    unpack_prefix, loads, dumps, pdumps, atomic = _unpack_prefix, _loads, _dumps, _pickle_dumps, _ATOMIC
    funcs = {}
    starmap = itertools.starmap
    while True:
        rc = next_(w, slice_, ptask)
        if rc:
            if rc == _ETIMEDOUT:
                continue
            if rc == _ECLOSED:
                return
            raise error(rc, "take a task")
        data = string_at(task.arg, task.arg_size)
        try:
            kind, n = unpack_prefix(data)
            fb = data[8:8 + n]
            func = funcs.get(fb)
            if func is None:
                func = loads(fb)
                if type(func) in _BY_NAME:
                    if len(funcs) >= _FUNC_CACHE_MAX:
                        funcs.clear()
                    funcs[fb] = func
            arg = loads(memoryview(data)[8 + n:])
            data = None
            if kind == _MAP1:
                result = [func(arg)]
            elif kind == _MAP:
                result = list(map(func, arg))
            elif kind == _CALL:
                result = func(*arg[0], **arg[1])
            elif kind == _CALL1:
                result = func(arg)
            elif kind == _STARMAP1:
                result = [func(*arg)]
            elif kind == _STARMAP:
                result = list(starmap(func, arg))
            else:
                raise ValueError(f"mpx pool worker: unknown task kind {kind}")
        except Exception as e:
            if wrap_exception:
                e = ExceptionWithTraceback(e, e.__traceback__)
            try:
                out = dumps(e)
            except Exception as e2:
                out = dumps(MaybeEncodingError(e2, e))
            status = fail_status
        else:
            try:
                out = pdumps(result) if type(result) in atomic else dumps(result)
                status = ok_status
            except Exception as e:
                out = dumps(MaybeEncodingError(e, result))
                status = fail_status
        func = arg = result = e = None
        rc = reply(w, status, out, c_size_t(len(out)), None)
        out = None
        if rc:
            if rc == _ECLOSED:
                return
            raise error(rc, "reply")


# ---- the parent's side -------------------------------------------------------------------------

class _PoolCache(dict):
    """``pool._cache``, where multiprocessing's result classes register by job id. It also
    keeps them by the id's low 32 bits (the high half of their tasks' tags), and tells the
    pool when it empties."""

    def __init__(self, on_empty):
        super().__init__()
        self.by_key = {}
        self.on_empty = on_empty

    def __setitem__(self, job, obj):
        dict.__setitem__(self, job, obj)
        self.by_key[job & _MASK] = obj

    def __delitem__(self, job):
        dict.__delitem__(self, job)
        self.by_key.pop(job & _MASK, None)
        if not self:
            self.on_empty()


def _mpx_context(context):
    from . import context as _context
    if context is None:
        return _context.get_context()
    if isinstance(context, _context.BaseContext):
        return context
    # A multiprocessing context (or anything with get_start_method): the mpx one of that method.
    try:
        method = context.get_start_method()
    except AttributeError:
        raise TypeError(f"context must be an mpx or multiprocessing context, not "
                        f"{type(context).__name__}") from None
    return _context.get_context(method)


class _Core:
    """What the pool's threads share (they hold this, never the Pool, so that a pool
    nobody references is collected and its finalizer runs, as multiprocessing's)."""

    def __init__(self, ctx, processes, initializer, initargs, maxtasksperchild, task_timeout_ms,
                 max_memory):
        self.ctx = ctx
        self.processes = processes
        self.initializer = initializer
        self.initargs = initargs
        self.state = INIT
        self.workers = []                 # the worker Process objects (pool._pool)
        self.cache = _PoolCache(self._cache_emptied)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # feeders wait here for room
        self.feeders = 0                  # imap feeder threads still submitting
        self.c_closed = False
        self.funcs = {}
        self.handler = self.results = None
        self.on_init_failure = None       # called (handler thread) when an initializer raised
        self.names = {}                   # pid -> name of the workers started (the latest)
        self.destroyed = False
        self.cancel_lock = threading.Lock()
        self.pid = os.getpid()
        self.ended = threading.Event()    # the result thread has ended
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        opts = _ffi.PoolOptions()
        rc = C.mpx_pool_options_init(byref(opts), _lib.ctypes.sizeof(opts))
        if rc < 0:
            raise error(rc, "pool options")
        opts.workers = processes
        opts.flags = _lib.MPX_POOL_EXTERNAL
        opts.method = {"fork": _lib.MPX_START_FORK, "spawn": _lib.MPX_START_SPAWN,
                       "forkserver": _lib.MPX_START_FORKSERVER}.get(ctx.get_start_method(), 0)
        opts.maxtasksperchild = maxtasksperchild or 0
        opts.max_worker_memory = max_memory or 0
        opts.task_timeout_ms = task_timeout_ms
        prefix = {"fork": b"ForkPoolWorker", "spawn": b"SpawnPoolWorker",
                  "forkserver": b"ForkServerPoolWorker"}.get(ctx.get_start_method(), b"PoolWorker")
        opts.name = prefix
        h = c_void_p()
        rc = C.mpx_pool_create(byref(h), byref(opts))
        if rc < 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise error(rc, "create the pool")
        self.h = h
        self.token = _lib.get_string(C.mpx_pool_token, h).encode("utf-8")

    # ---- workers ----

    def start_worker(self):
        p = self.ctx.Process(target=_worker_main, args=(self.token, self.initializer, self.initargs))
        p.name = p.name.replace('Process', 'PoolWorker')
        p.daemon = True
        p.start()
        self.workers.append(p)
        names = self.names
        names[p.pid] = p.name
        if len(names) > 4096:
            del names[next(iter(names))]
        rc = _add_worker(self.h, c_int64(p.pid))
        if rc == _ECLOSED:
            # Terminated while this worker started: it will never be given a task. Stop it;
            # the handler reaps it with the others (reporting it is then a harmless ENOENT).
            try:
                p.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
            return p
        if rc < 0:
            raise error(rc, "add the worker")
        return p

    def start_wanted(self):
        """Start the workers the pool wants; False once it wants none ever again."""
        n = c_size_t()
        rc = _wanted(self.h, byref(n))
        if rc == _ECLOSED:
            return False
        if rc < 0:
            raise error(rc, "workers wanted")
        for _ in range(n.value):
            if self.state == TERMINATE:
                break
            self.start_worker()
        return True

    def reap(self):
        """Report the workers that have ended; True if any had."""
        ended = False
        for p in list(self.workers):
            code = p.exitcode
            if code is None:
                continue
            ended = True
            self.workers.remove(p)
            _worker_exited(self.h, c_int64(p.pid), c_int(code))
            if code == INIT_FAILED_EXITCODE and self.on_init_failure is not None:
                self.on_init_failure()
            try:
                p.join()
                p.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        return ended

    def wake(self):
        with self.lock:     # not once destroy() has closed the pipe (its number may be reused)
            if self.destroyed:
                return
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _cache_emptied(self):
        if self.state != RUN:
            self.wake()

    def handle_workers(self):
        """The worker handler thread: report ended workers, start the ones the pool wants,
        until it wants none and every worker has ended."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watched = {}
        wanting = True
        killed_at = None
        errors = 0
        while True:
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - keep watching the others
                errors += 1
                if errors <= 3:
                    traceback.print_exc()
            if wanting:
                try:
                    wanting = self.start_wanted()
                    errors = 0
                except Exception:  # noqa: BLE001 - a worker that cannot start: try again soon
                    errors += 1
                    if errors <= 3:
                        traceback.print_exc()
            workers = self.workers
            if not wanting and not workers:
                break
            if self.state == TERMINATE and workers:
                # The library sends the workers SIGTERM; any still alive 200 ms later gets SIGKILL.
                now = _monotonic()
                if killed_at is None:
                    killed_at = now
                elif now - killed_at > 0.2:
                    for p in workers:
                        try:
                            p.kill()
                        except Exception:  # noqa: BLE001
                            pass
                    killed_at = now
            fds = {}
            for p in workers:
                try:
                    fds[p.sentinel] = p
                except Exception:  # noqa: BLE001
                    pass
            for fd in list(watched):
                if fd not in fds:
                    poller.unregister(fd)
                    del watched[fd]
            for fd in fds:
                if fd not in watched:
                    poller.register(fd, select.POLLIN)
                    watched[fd] = True
            try:
                events = poller.poll(100)
            except InterruptedError:
                events = ()
            for fd, _ in events:
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass

    # ---- results ----

    def handle_results(self):
        """The result thread: take results in batches and complete their jobs."""
        size = 1 << 16
        buf = bytearray(size)
        anchor = _lib.ctypes.c_char.from_buffer(buf)
        ptr = c_void_p(_lib.ctypes.addressof(anchor))
        mv = memoryview(buf)
        used = c_size_t()
        count = c_size_t()
        pused, pcount = byref(used), byref(count)
        h = self.h
        cap = c_size_t(size)
        run_ms, end_ms = _lib.SLICE, c_int64(10)
        failures = 0
        try:
            while True:
                rc = _collect(h, ptr, cap, pused, pcount, run_ms if self.state == RUN else end_ms)
                if rc == 0:
                    self.dispatch(mv, count.value)
                    if self.feeders:
                        with self.changed:
                            self.changed.notify_all()
                    continue
                if rc == _ETIMEDOUT:
                    state = self.state
                    if state == TERMINATE or (state != RUN and not self.cache):
                        return
                    continue
                if rc == _ENOBUFS:
                    need = used.value
                    size = max(size * 2, 1 << max(12, (need - 1).bit_length()))
                    mv.release()
                    del anchor
                    buf = bytearray(size)
                    anchor = _lib.ctypes.c_char.from_buffer(buf)
                    ptr = c_void_p(_lib.ctypes.addressof(anchor))
                    mv = memoryview(buf)
                    cap = c_size_t(size)
                    continue
                if rc == _ECLOSED or rc == _lib.EBADHANDLE or self.destroyed:
                    return
                # Not expected: say so once, and keep collecting.
                if not failures:
                    sys.stderr.write(f"mpx pool: {error(rc, 'collect results')}\n")
                failures += 1
                time.sleep(0.01)
        finally:
            self.ended.set()
            with self.changed:
                self.changed.notify_all()

    def dispatch(self, mv, count):
        by_key = self.cache.by_key
        loads = _loads
        off = 0
        for _ in range(count):
            tag, size, status, code, mlen, _r = _unpack_header(mv, off)
            p = off + _HSIZE
            end = p + size + mlen
            off = end + (-end & 7)
            job = by_key.get(tag >> 32)
            if job is None:
                continue
            if status == 0:
                try:
                    obj = (True, loads(mv[p:p + size]))
                except Exception as e:  # noqa: BLE001 - the task fails, not the pool
                    obj = (False, e)
            elif status == _ETASK:
                try:
                    obj = (False, loads(mv[p:p + size]))
                except Exception as e:  # noqa: BLE001
                    obj = (False, e)
            else:
                msg = _python_names(bytes(mv[p + size:end]).decode("utf-8", "replace"), self.names)
                obj = (False, _task_error(status, code, msg))
            try:
                job._set(tag & _MASK, obj)
            except Exception:  # noqa: BLE001 - a callback raised
                _callback_failed(job)

    # ---- submitting ----

    def submit(self, parts, count, timeout_ms):
        """Submit `count` records (parts joined); the error code (0: queued)."""
        data = b"".join(parts)
        n = len(data)
        fn = _submit_gil if n <= _SUBMIT_GIL_MAX else _submit
        return fn(self.h, _NAME, data, c_size_t(n), c_size_t(count), c_int64(timeout_ms))

    def submit_failed(self, rc):
        if rc == _ECLOSED or self.state == TERMINATE:
            return _cancelled()
        return error(rc, "submit")

    # ---- the end ----

    def close(self):
        with self.lock:
            if self.state != RUN:
                return
            self.state = CLOSE
            self._close_c()
        self.wake()

    def _close_c(self):
        # With self.lock held: close the C pool once no feeder still submits.
        if not self.c_closed and self.feeders == 0 and not self.destroyed:
            self.c_closed = True
            C.mpx_pool_close(self.h)

    def feeder_done(self):
        with self.lock:
            self.feeders -= 1
            if self.state == CLOSE:
                self._close_c()
            self.changed.notify_all()

    def terminate(self):
        with self.lock:
            if self.state == TERMINATE:
                already = True
            else:
                already = False
                self.state = TERMINATE
            self.changed.notify_all()
        if not already and not self.destroyed:
            self.wake()
            _lib.raw("mpx_pool_terminate")(self.h)
        self.wake()

    def in_pool_thread(self):
        me = threading.current_thread()
        return me is self.handler or me is self.results

    def end(self):
        """After close or terminate: join the threads, fail what terminate left pending, free
        the C pool. From one of the pool's own threads (a callback), a helper thread does it."""
        if self.in_pool_thread():
            threading.Thread(target=self.end, name="mpx-pool-end", daemon=True).start()
            return
        self.join_threads()
        if self.state == TERMINATE:
            # Feeders stop at their next look at the state (one blocked in its iterable is
            # not waited for long).
            deadline = _monotonic() + 1.0
            with self.changed:
                while self.feeders and _monotonic() < deadline:
                    self.changed.wait(0.05)
            self.cancel_leftovers()
        self.destroy()

    def join_threads(self):
        me = threading.current_thread()
        for t in (self.handler, self.results):
            if t is not None and t is not me and t.ident is not None:
                t.join()

    def cancel_leftovers(self):
        """Fail what is still pending once the result thread has ended (terminate)."""
        if self.results is not None and not self.ended.is_set():
            return
        with self.cancel_lock:
            for job in list(self.cache.values()):
                try:
                    _fail_job(job, _cancelled())
                except Exception:  # noqa: BLE001 - a callback raised
                    _callback_failed(job)

    def destroy(self):
        with self.lock:
            if self.destroyed:
                return
            self.destroyed = True
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        C.mpx_pool_destroy(self.h)


def _fail_job(job, exc):
    """End every item of `job` not yet ended with (False, exc)."""
    cache = job._cache
    if isinstance(job, IMapIterator):
        with job._cond:
            if job._length is None:
                job._length = getattr(job, "_mpx_submitted", job._index + len(getattr(job, "_unsorted", ())))
        if isinstance(job, IMapUnorderedIterator):
            while job._job in cache and job._index < job._length:
                job._set(job._index, (False, exc))
        else:
            for i in range(job._index, job._length):
                if i not in job._unsorted and job._job in cache:
                    job._set(i, (False, exc))
        with job._cond:
            if job._job in cache and job._index >= job._length:
                job._cond.notify_all()
                del cache[job._job]
                job._pool = None
    elif isinstance(job, MapResult):
        while job._job in cache:
            job._set(0, (False, exc))
    else:
        if job._job in cache:
            job._set(0, (False, exc))


def _callback_failed(job):
    """A callback raised in the result thread: print it (as threading's excepthook would)
    and make sure the result is still ready (multiprocessing's would never be)."""
    try:
        sys.stderr.write("Exception in a pool callback:\n")
        traceback.print_exc()
    except Exception:  # noqa: BLE001
        pass
    ev = getattr(job, "_event", None)
    if ev is not None and not ev.is_set():
        number_left = getattr(job, "_number_left", 0)
        if number_left <= 0:
            job._cache.pop(job._job, None)
            job._event.set()
            job._pool = None


def _start_thread(target, name):
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    return t


def _finalize(core):
    """Terminate and free a pool that was not (at exit, or when collected)."""
    if core.destroyed or core.pid != os.getpid():
        return          # (a forked child's copy is not its to stop)
    core.terminate()
    core.end()


class Pool:
    """A pool of worker processes: ``multiprocessing.Pool`` over libmpx (see the module's
    documentation for what differs).

    ``task_timeout`` (seconds): the default time a task may run before its worker is killed
    and it fails with ``mpx.TaskTimeoutError``. ``max_memory_per_child`` (bytes): a worker
    whose resident size grows past it is replaced after its task."""

    _wrap_exception = True

    @staticmethod
    def Process(ctx, *args, **kwds):
        return ctx.Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, task_timeout=None, max_memory_per_child=None):
        self._core = None
        self._ctx = _mpx_context(context)
        if processes is None:
            processes = self._ctx.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')
        if max_memory_per_child is not None:
            if not isinstance(max_memory_per_child, int) or max_memory_per_child <= 0:
                raise ValueError("max_memory_per_child must be a positive int (bytes) or None")
        timeout_ms = _timeout_ms(task_timeout)
        if timeout_ms < 0:
            timeout_ms = 0
        self._processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasksperchild = maxtasksperchild
        self._task_timeout = task_timeout
        self._max_memory_per_child = max_memory_per_child
        core = _Core(self._ctx, processes, initializer, initargs, maxtasksperchild, timeout_ms,
                     max_memory_per_child)
        self._core = core
        try:
            core.start_wanted()
        except BaseException:
            for p in core.workers:
                if p.exitcode is None:
                    p.terminate()
            for p in core.workers:
                p.join()
            core.reap()
            core.state = TERMINATE
            _lib.raw("mpx_pool_terminate")(core.h)
            core.destroy()
            raise
        core.state = RUN
        core.handler = _start_thread(core.handle_workers, "mpx-pool-workers")
        core.results = _start_thread(core.handle_results, "mpx-pool-results")
        self._finalizer = weakref.finalize(self, _finalize, core)

    # multiprocessing's attribute names, for code that looks at them
    @property
    def _state(self):
        core = self._core
        return INIT if core is None else core.state

    @property
    def _cache(self):
        return self._core.cache

    @property
    def _pool(self):
        return self._core.workers if self._core is not None else []

    def __del__(self, _warn=warnings.warn, RUN=RUN):
        core = self.__dict__.get("_core")
        if core is not None and core.state == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)

    def __repr__(self):
        cls = self.__class__
        return (f'<{cls.__module__}.{cls.__qualname__} '
                f'state={self._state} '
                f'pool_size={len(self._pool)}>')

    def __reduce__(self):
        raise NotImplementedError('pool objects cannot be passed between processes or pickled')

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    # ---- apply ----

    def apply(self, func, args=(), kwds={}, *, task_timeout=None):
        '''Equivalent of `func(*args, **kwds)`. Pool must be running.'''
        return self.apply_async(func, args, kwds, task_timeout=task_timeout).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None, *,
                    task_timeout=None):
        '''Asynchronous version of `apply()` method.'''
        self._check_running()
        timeout_ms = _timeout_ms(task_timeout)
        core = self._core
        result = ApplyResult(self, callback, error_callback)
        try:
            payload = _func_prefix(func, _CALL, core.funcs) + _dumps((args, kwds))
        except Exception as e:  # noqa: BLE001 - fails this call only, as multiprocessing
            result._set(0, (False, e))
            return result
        n = len(payload)
        rc = core.submit((_pack_header((result._job & _MASK) << 32, n, 0, 0, 0, 0), payload,
                          _PADS[n & 7]), 1, timeout_ms)
        if rc:
            result._set(0, (False, core.submit_failed(rc)))
        return result

    # ---- map ----

    def map(self, func, iterable, chunksize=None, *, task_timeout=None, progress=None):
        '''Apply `func` to each element in `iterable`, collecting the results in a list.'''
        result = self._map_async(func, iterable, False, chunksize, task_timeout=task_timeout)
        return _wait_with_progress(result, progress)

    def starmap(self, func, iterable, chunksize=None, *, task_timeout=None, progress=None):
        '''Like `map()`, but the elements of `iterable` are argument tuples: func(*args).'''
        result = self._map_async(func, iterable, True, chunksize, task_timeout=task_timeout)
        return _wait_with_progress(result, progress)

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None, *,
                  task_timeout=None):
        '''Asynchronous version of `map()` method.'''
        return self._map_async(func, iterable, False, chunksize, callback, error_callback,
                               task_timeout=task_timeout)

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None,
                      *, task_timeout=None):
        '''Asynchronous version of `starmap()` method.'''
        return self._map_async(func, iterable, True, chunksize, callback, error_callback,
                               task_timeout=task_timeout)

    def _map_async(self, func, iterable, star, chunksize=None, callback=None, error_callback=None,
                   *, task_timeout=None):
        self._check_running()
        timeout_ms = _timeout_ms(task_timeout)
        if not hasattr(iterable, '__len__'):
            iterable = list(iterable)
        length = len(iterable)
        if chunksize is None:
            chunksize, extra = divmod(length, self._processes * 4)
            if extra:
                chunksize += 1
        if length == 0:
            chunksize = 0
        result = MapResult(self, chunksize, length, callback, error_callback=error_callback)
        result._mpx_length = length
        if chunksize <= 0:
            return result       # as multiprocessing's: ready at once, [None] * length
        n_chunks = result._number_left
        if n_chunks > _MAX_INDEX:
            raise OverflowError("too many chunks for one map: use a larger chunksize")
        core = self._core
        if chunksize == 1:
            kind = _STARMAP1 if star else _MAP1
        else:
            kind = _STARMAP if star else _MAP
        try:
            prefix = _func_prefix(func, kind, core.funcs)
        except Exception as e:  # noqa: BLE001 - every chunk fails, as multiprocessing's
            for i in range(n_chunks):
                result._set(i, (False, e))
            return result
        _feed_all(core, result, prefix, iterable, chunksize, n_chunks, timeout_ms)
        return result

    # ---- imap ----

    def imap(self, func, iterable, chunksize=1, *, task_timeout=None, progress=None):
        '''Equivalent of `map()` -- can be MUCH slower than `Pool.map()`.'''
        return self._imap(IMapIterator, func, iterable, chunksize, task_timeout, progress,
                          "Chunksize must be 1+, not {0:n}")

    def imap_unordered(self, func, iterable, chunksize=1, *, task_timeout=None, progress=None):
        '''Like `imap()` method but ordering of results is arbitrary.'''
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize, task_timeout, progress,
                          "Chunksize must be 1+, not {0!r}")

    def _imap(self, cls, func, iterable, chunksize, task_timeout, progress, message):
        self._check_running()
        if chunksize != 1 and chunksize < 1:
            raise ValueError(message.format(chunksize))
        timeout_ms = _timeout_ms(task_timeout)
        total = len(iterable) if hasattr(iterable, '__len__') else None
        core = self._core
        result = cls(self)
        result._mpx_submitted = 0
        kind = _CALL1 if chunksize == 1 else _MAP
        try:
            prefix = _func_prefix(func, kind, core.funcs)
        except Exception as e:  # noqa: BLE001
            prefix = e
        with core.lock:
            core.feeders += 1
        try:
            threading.Thread(target=_feed_lazily, name="mpx-pool-feeder", daemon=True,
                             args=(core, result, prefix, iterable, chunksize, timeout_ms)).start()
        except BaseException:
            core.feeder_done()
            raise
        if chunksize == 1:
            out = result
        else:
            out = (item for chunk in result for item in chunk)
        bar = _progress_bar(progress, total)
        if bar is not None:
            return _iter_with_progress(out, bar)
        return out

    # ---- the end ----

    def close(self):
        '''No more tasks; the workers exit once every task submitted has ended.'''
        core = self._core
        if core is not None and core.pid == os.getpid():
            core.close()

    def terminate(self):
        '''Stop the workers now; tasks not yet ended fail with TaskCancelledError.'''
        core = self._core
        if core is None or core.pid != os.getpid():
            return
        core.terminate()
        core.end()
        self._finalizer.detach()

    def join(self):
        '''Wait for the workers to exit (after close() or terminate()).'''
        state = self._state
        if state == RUN:
            raise ValueError("Pool is still running")
        elif state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        core = self._core
        if core.in_pool_thread():
            raise RuntimeError("cannot join the pool from one of its own threads (a callback)")
        core.end()
        self._finalizer.detach()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()

    # ---- extras ----

    def stats(self):
        """The pool's counters (a dict: tasks_submitted, tasks_succeeded, tasks_failed,
        workers_started, workers_died, workers_retired)."""
        core = self._core
        if core is None or core.destroyed:
            raise ValueError("Pool is closed")
        s = _ffi.PoolStats()
        s.size = _lib.ctypes.sizeof(s)
        _lib.check(C.mpx_pool_stats_get(core.h, byref(s)), "pool stats")
        return {name: getattr(s, name) for name, _ in _ffi.PoolStats._fields_[2:]}


# ---- feeding tasks --------------------------------------------------------------------------

# Records per mpx_pool_submit call: the first batches are small so that the workers start
# while the rest is pickled, then they double up to _BATCH records (fewer calls), or fewer
# when they reach _BATCH_BYTES.
_BATCH = 2048
_BATCH_BYTES = 256 << 10


def _feed_all(core, result, prefix, iterable, chunksize, n_chunks, timeout_ms):
    """map: submit every chunk now, in batches."""
    key = (result._job & _MASK) << 32
    plen = len(prefix)
    pack, pads, dumps_arg = _pack_header, _PADS, _dumps_arg
    it = iter(iterable)
    if chunksize == 1:
        chunks = it
    else:
        islice = itertools.islice
        chunks = (tuple(islice(it, chunksize)) for _ in range(n_chunks))
    parts = []
    append = parts.append
    count = nbytes = 0
    limit = max(1, core.processes // 2)
    first = 0
    failed = []
    for i, chunk in enumerate(chunks):
        try:
            a = dumps_arg(chunk)
        except Exception as e:  # noqa: BLE001 - fails this chunk only
            failed.append((i, e))
            continue
        n = plen + len(a)
        append(pack(key | i, n, 0, 0, 0, 0))
        append(prefix)
        append(a)
        append(pads[n & 7])
        count += 1
        nbytes += n
        if count >= limit or nbytes >= _BATCH_BYTES:
            _submit_batch(core, result, parts, count, timeout_ms, first, i + 1, failed)
            parts.clear()
            count = nbytes = 0
            limit = min(limit * 2, _BATCH)
            first = i + 1
    if count or failed:
        _submit_batch(core, result, parts, count, timeout_ms, first, n_chunks, failed)


def _submit_batch(core, result, parts, count, timeout_ms, first, end, failed):
    """Submit the records for chunks [first, end) (minus those in `failed`, which fail)."""
    if count:
        rc = core.submit(parts, count, timeout_ms)
        if rc:
            exc = core.submit_failed(rc)
            bad = {i for i, _ in failed}
            for i in range(first, end):
                if i not in bad:
                    result._set(i, (False, exc))
    for i, e in failed:
        result._set(i, (False, e))
    failed.clear()


def _imap_window(core):
    return max(64, 8 * core.processes)


def _feed_lazily(core, result, prefix, iterable, chunksize, timeout_ms):
    """imap's feeder thread: keep at most a window of chunks in flight."""
    submitted = 0
    try:
        if isinstance(prefix, BaseException):
            # The function cannot be pickled: every item fails (as multiprocessing's).
            exc = prefix
            for x in iterable:
                result._set(submitted, (False, exc))
                submitted += 1
                result._mpx_submitted = submitted
            return
        key = (result._job & _MASK) << 32
        plen = len(prefix)
        pack, pads, dumps_arg = _pack_header, _PADS, _dumps_arg
        window = _imap_window(core)
        low = window // 2
        it = src = iter(iterable)
        if chunksize != 1:
            islice = itertools.islice
            it = iter(lambda: tuple(islice(src, chunksize)), ())
        parts = []
        done = False
        unordered = isinstance(result, IMapUnorderedIterator)
        while not done:
            # Wait for room: in flight = submitted - ended.
            with core.changed:
                while True:
                    if core.state == TERMINATE or core.ended.is_set():
                        return
                    ended = result._index if unordered else result._index + len(result._unsorted)
                    room = window - (submitted - ended)
                    if submitted == 0 or room >= window - low:
                        break
                    core.changed.wait(0.1)
            count = 0
            failed = []
            first = submitted
            while count + len(failed) < room:
                try:
                    x = next(it)
                except StopIteration:
                    done = True
                    break
                except Exception as e:  # noqa: BLE001 - the iterable raised: that item fails
                    if submitted + 1 > _MAX_INDEX:
                        raise OverflowError("too many chunks for one imap") from e
                    failed.append((submitted, e))
                    submitted += 1
                    done = True
                    break
                if submitted + 1 > _MAX_INDEX:
                    raise OverflowError("too many chunks for one imap")
                try:
                    a = dumps_arg(x)
                except Exception as e:  # noqa: BLE001
                    failed.append((submitted, e))
                    submitted += 1
                    continue
                x = None
                n = plen + len(a)
                parts += (pack(key | submitted, n, 0, 0, 0, 0), prefix, a, pads[n & 7])
                count += 1
                submitted += 1
            result._mpx_submitted = submitted
            _submit_batch(core, result, parts, count, timeout_ms, first, submitted, failed)
            parts.clear()
    except BaseException as e:  # noqa: BLE001 - as multiprocessing: the next item raises it
        result._set(submitted, (False, e))
        submitted += 1
        result._mpx_submitted = submitted
    finally:
        try:
            if core.state != TERMINATE:
                result._set_length(submitted)
            else:
                result._mpx_submitted = submitted
        finally:
            core.feeder_done()


# ---- progress ----------------------------------------------------------------------------------

class _ProgressBar:
    """One line, redrawn at most every 0.1 s: [#####.....] done/total pct rate ETA."""

    WIDTH = 30

    def __init__(self, stream, total):
        self.stream = stream
        self.total = total
        self.t0 = _monotonic()
        self.last = 0.0
        self.done = 0
        self.closed = False

    def update(self, done, force=False):
        self.done = done
        now = _monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        total = self.total
        if total:
            frac = min(1.0, done / total)
            filled = int(frac * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            eta = (total - done) / rate if rate > 0 else float("nan")
            text = f"[{bar}] {done}/{total} {frac * 100:3.0f}% {rate:.1f}/s ETA {_fmt_secs(eta)}"
        else:
            text = f"{done} done {rate:.1f}/s {_fmt_secs(elapsed)}"
        try:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        except (OSError, ValueError):
            self.closed = True

    def close(self):
        if self.closed:
            return
        self.update(self.done, force=True)
        self.closed = True
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _fmt_secs(s):
    if s != s or s == math.inf:
        return "--:--"
    s = int(s + 0.5)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _progress_bar(progress, total):
    """A progress bar on stderr (progress=True) or on the given file, or None when it is
    not wanted or the file is not a terminal."""
    if not progress:
        return None
    stream = sys.stderr if progress is True else progress
    try:
        if stream is None or not stream.isatty():
            return None
    except (AttributeError, ValueError, OSError):
        return None
    return _ProgressBar(stream, total)


def _wait_with_progress(result, progress):
    bar = _progress_bar(progress, result._mpx_length)
    if bar is None:
        return result.get()
    try:
        total = bar.total
        while not result.ready():
            result.wait(0.1)
            left = result._number_left
            done = total - left * result._chunksize if left > 0 else total
            bar.update(max(0, done))
        bar.update(total, force=True)
    finally:
        bar.close()
    return result.get()


def _iter_with_progress(it, bar):
    done = 0
    try:
        for x in it:
            done += 1
            bar.update(done)
            yield x
    finally:
        bar.close()
