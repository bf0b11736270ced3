"""Queues in shared memory: ``multiprocessing.Queue``, ``SimpleQueue`` and ``JoinableQueue``
over libmpx's queue.

The API, results and exceptions are Python's: ``put(obj, block=True, timeout=None)`` raises
``queue.Full``, ``get(block=True, timeout=None)`` raises ``queue.Empty``; ``put_nowait``,
``get_nowait``, ``qsize``, ``empty``, ``full``, ``close``, ``join_thread``,
``cancel_join_thread``; ``JoinableQueue.task_done`` / ``join`` (ValueError "task_done() called
too many times"). Items are pickled as ``multiprocessing.reduction.ForkingPickler`` pickles
them.

What differs, because there is no feeder thread (the item is in shared memory when ``put``
returns):

* Nothing is lost when a producer exits right after ``put`` (even by ``os._exit``), and
  ``put`` reports errors itself: an object that cannot be pickled raises in ``put``.
* ``put`` blocks while the queue is full: ``maxsize`` items, or no room left in the ring of
  bytes that holds them (1 MiB by default, ``capacity=``), even with ``maxsize=0``. An item
  larger than the ring still goes through, streamed in pieces. ``put_nowait`` on a full
  ring raises ``queue.Full``.
* ``join_thread()`` and ``cancel_join_thread()`` have nothing to do (``join_thread`` still
  asserts that the queue was closed, as multiprocessing's does).
* ``close()`` is per process, as in multiprocessing ("no more data will be put on this queue
  by the current process"): this process's handle is released and later calls here raise
  ``ValueError``; other processes go on using the queue. ``shutdown()`` (an mpx extension,
  like ``queue.Queue.shutdown`` of Python 3.13) closes it for every process: puts raise
  ``mpx.QueueShutDown`` (``queue.ShutDown`` on 3.13+, and a ValueError); gets return what is
  still queued, then raise it.
* A queue pickles as its token anywhere (not only while spawning a child), so it can be
  sent to a running process over a pipe or another queue; ``Queue.from_token(t)`` attaches
  explicitly, from any language.

Blocking calls without a timeout are made of 100 ms library calls, so Ctrl-C interrupts
them.
"""

import pickle
import time
import types
from queue import Empty, Full

from . import _lib
from ._lib import (C, raw, raw_gil, new_handle, check, error, get_string, ms_from_timeout,
                   QueueShutDown, c_int, c_int64, c_uint64, c_size_t, byref)
from .reduction import dumps as _dumps, loads as _loads, RecvBuffer, grown_size, ATOMIC as _ATOMIC

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full", "QueueShutDown"]

if not _lib.HAVE_QUEUE:
    raise ImportError(f"mpx.queues: {_lib.library_path} has no queue API (mpx_queue_*)")

_put = raw("mpx_queue_put")
_get_into = raw("mpx_queue_get_into")
_put_now = raw_gil("mpx_queue_put")          # timeout 0 only: never waits
_get_now = raw_gil("mpx_queue_get_into")     # timeout 0 only: never waits
_qsize = raw_gil("mpx_queue_qsize")
_empty = raw_gil("mpx_queue_empty")
_full = raw_gil("mpx_queue_full")
_destroy = C.mpx_queue_destroy
_SLICE = _lib.SLICE
_SLICE_MS = _lib.SLICE_MS
_ZERO = _lib.ZERO
_ETIMEDOUT = _lib.ETIMEDOUT
_ENOBUFS = _lib.ENOBUFS
_ECLOSED = _lib.ECLOSED
_monotonic = time.monotonic
_pickle_dumps = pickle.dumps

# multiprocessing's Queue(maxsize <= 0) has this maxsize (its semaphore's limit).
SEM_VALUE_MAX = 2147483647

# A queue's receive buffer starts at 4 KiB and grows up to this; a larger item is received
# into a buffer of its own size, which is not kept.
_KEEP_MAX = 2 << 20
_FIRST_SIZE = 4096
# Items up to this size are tried first without releasing the GIL (see _QueueBase._put).
_NOW_MAX = 16 << 10


def _encode(token):
    if isinstance(token, str):
        return token.encode("utf-8")
    if isinstance(token, (bytes, bytearray)):
        return bytes(token)
    raise TypeError(f"token must be str, not {type(token).__name__}")


class _QueueBase:
    """An mpx_queue handle owned by this object, and the put/get both kinds share."""

    _h = None
    _flags = 0

    def _create(self, maxsize=0, capacity=0, max_message=0):
        opts = _lib.QueueOptions()
        check(C.mpx_queue_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
        opts.flags = self._flags
        opts.maxsize = maxsize if maxsize > 0 else 0
        opts.capacity = capacity
        opts.max_message = max_message
        self._init(new_handle(C.mpx_queue_create, byref(opts), what=type(self).__name__ + "()"))

    def _init(self, h):
        self._h = h
        self._rb = None     # the receive buffer (taken by a get while it runs)
        # Items larger than a quarter of the ring are streamed through it in pieces.
        cap = c_uint64()
        rc = C.mpx_queue_capacity(h, byref(cap))
        if rc < 0:
            self._release()
            raise error(rc, "capacity")
        self._stream_min = cap.value // 4 - 64

    @classmethod
    def from_token(cls, token):
        """Attach the queue a token names (``q.token``, from any process of this user)."""
        self = cls.__new__(cls)
        self._init(new_handle(C.mpx_queue_attach, _encode(token), what="attach queue"))
        return self

    @property
    def token(self):
        """A printable string from which another process attaches this queue."""
        h = self._h
        if h is None:
            raise self._closed_error()
        return get_string(C.mpx_queue_token, h)

    def __reduce__(self):
        return _rebuild, (type(self), self.token, self._reduce_args())

    def _reduce_args(self):
        return None

    def __del__(self):
        h = self._h
        if h is not None:
            self._h = None
            try:
                _destroy(h)
            except Exception:  # interpreter shutdown
                pass

    def _release(self):
        """Release this process's handle (threads blocked on it here raise)."""
        h = self._h
        if h is not None:
            self._h = None
            _destroy(h)

    def _failed(self, rc, what):
        if self._h is None or rc == _lib.EBADHANDLE:
            return self._closed_error()
        if rc == _ECLOSED:
            return error(rc, what, cls=QueueShutDown)
        return error(rc, what)

    # ---- put and get ----
    #
    # The hot paths. An item of up to _NOW_MAX bytes is first tried with timeout 0 through
    # the library loaded with PyDLL, which keeps the GIL: a try never waits (the library
    # returns at once when the ring is full or empty) and copies little, and skipping the
    # GIL's release and re-acquisition is a good part of a small put's or get's cost. Only
    # when that fails do the calls that may block run, with the GIL released.

    def _put(self, obj, block=True, timeout=None):
        h = self._h
        if h is None:
            raise self._closed_error()
        data = _pickle_dumps(obj) if type(obj) in _ATOMIC else _dumps(obj)
        size = len(data)
        n = c_size_t(size)
        if size <= _NOW_MAX:
            rc = _put_now(h, data, n, _ZERO)
            if not rc:
                return
            if rc != _ETIMEDOUT or not block:
                self._put_failed(rc)
        elif not block:
            rc = _put(h, data, n, _ZERO)
            if rc:
                self._put_failed(rc)
            return
        # Wait for room: in 100 ms slices (Ctrl-C), except for an item streamed through the
        # ring in pieces, whose put must not time out midway (the stream would be dropped).
        if size > self._stream_min:
            ms = _lib.MPX_INFINITE if timeout is None else ms_from_timeout(timeout)
            rc = _put(h, data, n, c_int64(ms))
        elif timeout is None:
            rc = _put(h, data, n, _SLICE)
            while rc == _ETIMEDOUT:
                rc = _put(h, data, n, _SLICE)
        else:
            rc = self._put_until(h, data, n, ms_from_timeout(timeout))
        if rc:
            self._put_failed(rc)

    def _put_failed(self, rc):
        if rc == _ETIMEDOUT:
            raise Full
        raise self._failed(rc, "put")

    @staticmethod
    def _put_until(h, data, n, ms):
        if ms < 0:
            rc = _put(h, data, n, _SLICE)
            while rc == _ETIMEDOUT:
                rc = _put(h, data, n, _SLICE)
            return rc
        if ms <= _SLICE_MS:
            return _put(h, data, n, c_int64(ms))
        deadline = _monotonic() + ms / 1000.0
        while True:
            rc = _put(h, data, n, c_int64(min(ms, _SLICE_MS)))
            if rc != _ETIMEDOUT:
                return rc
            ms = int((deadline - _monotonic()) * 1000.0 + 0.999999)
            if ms <= 0:
                return rc

    def _get(self, block=True, timeout=None):
        h = self._h
        if h is None:
            raise self._closed_error()
        b = self._rb
        self._rb = None
        if b is None:
            b = RecvBuffer(_FIRST_SIZE, _NOW_MAX)
        rc = _get_now(h, b.ptr, b.small, b.pn, _ZERO)
        if not rc:
            obj = _loads(b.mv[:b.n.value])
            self._rb = b
            return obj
        return self._get_slow(h, b, rc, block, timeout)

    def _get_slow(self, h, b, rc, block, timeout):
        """A get whose first try (rc: its result) did not deliver."""
        if rc != _ETIMEDOUT and rc != _ENOBUFS:
            self._rb = b
            raise self._failed(rc, "get")
        if not block and rc == _ETIMEDOUT:
            self._rb = b
            raise Empty
        deadline = None
        if not block:
            wait = _ZERO
        elif timeout is None:
            wait = _SLICE
        else:
            ms = ms_from_timeout(timeout)
            if ms < 0:
                wait = _SLICE
            else:
                deadline = _monotonic() + ms / 1000.0
                wait = c_int64(min(ms, _SLICE_MS))
        rc = _get_into(h, b.ptr, b.cap, b.pn, wait)
        while True:
            if not rc:
                obj = _loads(b.mv[:b.n.value])
                if b.size <= _KEEP_MAX:
                    self._rb = b
                return obj
            if rc == _ENOBUFS:
                needed = b.n.value
                if b.size <= _KEEP_MAX:
                    self._rb = b
                b = RecvBuffer(grown_size(needed, _KEEP_MAX) or needed, _NOW_MAX)
                wait = _ZERO if not block else _SLICE if deadline is None else None
            elif rc == _ETIMEDOUT:
                if not block:
                    break
                wait = _SLICE if deadline is None else None
            else:
                if b.size <= _KEEP_MAX:
                    self._rb = b
                raise self._failed(rc, "get")
            if wait is None:
                ms = int((deadline - _monotonic()) * 1000.0 + 0.999999)
                if ms <= 0 and rc == _ETIMEDOUT:
                    break
                wait = c_int64(max(0, min(ms, _SLICE_MS)))
            rc = _get_into(h, b.ptr, b.cap, b.pn, wait)
        if b.size <= _KEEP_MAX:
            self._rb = b
        raise Empty

    def _is_empty(self):
        h = self._h
        if h is None:
            raise self._closed_error()
        flag = c_int()
        rc = _empty(h, byref(flag))
        if rc:
            raise self._failed(rc, "empty")
        return flag.value != 0

    # ---- shutdown (mpx extension) ----

    def shutdown(self, immediate=False):
        """Close the queue for every process (an mpx extension, as ``queue.Queue.shutdown``
        of Python 3.13): blocked and later puts raise ``mpx.QueueShutDown``, gets return the
        items still queued and then raise it. ``immediate=True`` also discards the items
        still queued (marking them done in a JoinableQueue)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        check(C.mpx_queue_close(h), "shutdown")
        if immediate:
            self._discard_all(h)

    def _discard_all(self, h):
        b = RecvBuffer(_FIRST_SIZE)
        while True:
            rc = _get_into(h, b.ptr, b.cap, b.pn, _ZERO)
            if rc == _ENOBUFS:
                b = RecvBuffer(b.n.value)
                continue
            if rc:
                return
            if self._flags & _lib.MPX_QUEUE_JOINABLE:
                C.mpx_queue_task_done(h)

    @property
    def is_shutdown(self):
        """True once the queue was shut down, by any process (an mpx extension)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        flag = c_int()
        check(C.mpx_queue_closed(h, byref(flag)), "is_shutdown")
        return flag.value != 0

    @property
    def capacity(self):
        """The ring's size in bytes (an mpx extension)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        v = c_uint64()
        check(C.mpx_queue_capacity(h, byref(v)), "capacity")
        return v.value

    __class_getitem__ = classmethod(types.GenericAlias)


def _rebuild(cls, token, args):
    self = cls.from_token(token)
    if args is not None:
        self._set_reduce_args(args)
    return self


class Queue(_QueueBase):
    """A multi-producer, multi-consumer FIFO queue in shared memory:
    ``Queue(maxsize=0)``. ``capacity`` (an mpx extension) is the ring's size in bytes (0: 1
    MiB), ``max_message`` the largest item accepted (0: no limit)."""

    def __init__(self, maxsize=0, *, ctx=None, capacity=0, max_message=0):
        self._create(maxsize, capacity, max_message)
        self._maxsize = maxsize if maxsize > 0 else SEM_VALUE_MAX

    def _reduce_args(self):
        return self._maxsize

    def _set_reduce_args(self, maxsize):
        self._maxsize = maxsize

    @classmethod
    def from_token(cls, token):
        self = super().from_token(token)
        v = c_uint64()
        check(C.mpx_queue_maxsize(self._h, byref(v)), "maxsize")
        self._maxsize = v.value or SEM_VALUE_MAX
        return self

    def _closed_error(self):
        return ValueError(f"Queue {self!r} is closed")

    put = _QueueBase._put
    get = _QueueBase._get

    def put_nowait(self, obj):
        return self._put(obj, False)

    def get_nowait(self):
        return self._get(False)

    def qsize(self):
        """Items in the queue (approximate while other processes use it)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        n = c_size_t()
        rc = _qsize(h, byref(n))
        if rc:
            raise self._failed(rc, "qsize")
        return n.value

    def empty(self):
        return self._is_empty()

    def full(self):
        """True when maxsize items are queued (a full ring with fewer items is not)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        flag = c_int()
        rc = _full(h, byref(flag))
        if rc:
            raise self._failed(rc, "full")
        return flag.value != 0

    @property
    def _closed(self):
        return self._h is None

    def close(self):
        """No more data will be put on, or got from, this queue by this process: its
        handle is released (other processes are not affected; see shutdown())."""
        self._release()

    def join_thread(self):
        """Nothing to wait for: mpx queues have no feeder thread."""
        assert self._h is None, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        """Nothing to cancel: mpx queues have no feeder thread."""


class JoinableQueue(Queue):
    """A Queue whose items are counted until ``task_done()`` marks them processed;
    ``join()`` blocks until every item put was."""

    _flags = _lib.MPX_QUEUE_JOINABLE

    def task_done(self):
        h = self._h
        if h is None:
            raise self._closed_error()
        rc = C.mpx_queue_task_done(h)
        if rc:
            if rc == _lib.EOVERFLOW:
                raise ValueError('task_done() called too many times')
            raise self._failed(rc, "task_done")

    def join(self):
        h = self._h
        if h is None:
            raise self._closed_error()
        fn = C.mpx_queue_join
        rc = fn(h, _SLICE)
        while rc == _ETIMEDOUT:
            rc = fn(h, _SLICE)
        if rc:
            raise self._failed(rc, "join")


class SimpleQueue(_QueueBase):
    """An unbounded queue with only ``put``, ``get``, ``empty`` and ``close``."""

    def __init__(self, *, ctx=None):
        self._create()

    def _closed_error(self):
        return OSError("handle is closed")

    def put(self, obj):
        self._put(obj)

    def get(self):
        return self._get()

    def empty(self):
        return self._is_empty()

    def close(self):
        """Release this process's handle (other processes are not affected)."""
        self._release()
