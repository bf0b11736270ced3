"""Pickling and receive buffers for connections and queues (``multiprocessing.reduction``).

``dumps(obj)`` gives the bytes ``multiprocessing.reduction.ForkingPickler.dumps(obj)`` gives
(the same reducers: copyreg's table and the ones registered with
``multiprocessing.reduction.register``), about four times faster for small objects: the
picklers are kept and reused instead of being built, with a copy of the dispatch table, for
each object (and objects of the types in ATOMIC go straight to ``pickle.dumps``: the
dispatch table does not concern them). ``loads`` is ``pickle.loads``, as ForkingPickler's.

``RecvBuffer`` is a reusable receive buffer: the C functions that receive into caller memory
(``mpx_queue_get_into``, ``mpx_conn_recv_into``) write into it, and the object is unpickled
from a view of it, so an item is copied once from shared memory or the socket and never
again.
"""

import copyreg
import pickle
from multiprocessing.reduction import ForkingPickler

from . import _lib

__all__ = ["dumps", "loads", "ForkingPickler", "RecvBuffer"]

loads = pickle.loads

# The dispatch table every pooled pickler shares: copyreg's, then ForkingPickler's extra
# reducers, as ForkingPickler builds it per instance. Updated in place (the picklers keep a
# reference to this dict) when either source grows.
_copyreg_table = copyreg.dispatch_table
_extra_reducers = ForkingPickler._extra_reducers
_table = {}
_table_size = -1


def _refresh_table():
    global _table_size
    _table.clear()
    _table.update(_copyreg_table)
    _table.update(_extra_reducers)
    _table_size = len(_copyreg_table) + len(_extra_reducers)


class _Pickler(pickle.Pickler):
    dispatch_table = _table


class _Sink:
    """The file of a pooled pickler: it keeps what the pickler writes (one bytes object,
    more for an object with large bytes inside)."""

    __slots__ = ("out", "write")

    def __init__(self):
        self.out = []
        self.write = self.out.append


# (sink, pickler) pairs; list.pop and list.append are atomic, so threads (and a reducer that
# pickles while being pickled) each get their own.
_pool = []


# Objects of these types pickle the same whatever the dispatch table (the pickler handles
# them itself), so pickle.dumps, the fastest way, gives ForkingPickler's bytes.
ATOMIC = frozenset([bytes, str, int, float, bool, type(None)])
_pickle_dumps = pickle.dumps


def dumps(obj, protocol=None):
    """``ForkingPickler.dumps(obj, protocol)`` as bytes."""
    if type(obj) in ATOMIC and protocol is None:
        return _pickle_dumps(obj)
    if protocol is not None:
        return bytes(ForkingPickler.dumps(obj, protocol))
    if len(_copyreg_table) + len(_extra_reducers) != _table_size:
        _refresh_table()
    try:
        sink, p = _pool.pop()
    except IndexError:
        sink = _Sink()
        p = _Pickler(sink)
    out = sink.out
    try:
        p.dump(obj)
    except BaseException:
        out.clear()
        raise           # this pickler is dropped: its state after a failure is not reused
    p.clear_memo()
    if len(out) == 1:
        data = out.pop()
    else:
        data = b"".join(out)
        out.clear()
    _pool.append((sink, p))
    return data


class RecvBuffer:
    """A bytearray with what the C receive functions need: its address (``ptr``), its
    capacity (``cap``, c_size_t; ``small``: at most `small` bytes of it), a length
    out-parameter (``n``, passed as ``pn``) and a memoryview (``mv``) to unpickle from. The
    ctypes objects are made once, so a receive allocates nothing."""

    __slots__ = ("buf", "mv", "ptr", "cap", "small", "n", "pn", "size", "_anchor")

    def __init__(self, size, small=None):
        ctypes = _lib.ctypes
        size = max(1, size)
        self.buf = bytearray(size)
        # A c_char over the first byte: its address is the buffer's, and it keeps the
        # bytearray exported (never resized) while this object lives.
        self._anchor = ctypes.c_char.from_buffer(self.buf)
        self.ptr = _lib.c_void_p(ctypes.addressof(self._anchor))
        self.cap = _lib.c_size_t(size)
        # A capacity of at most `small` bytes, for receives that must copy little.
        self.small = self.cap if small is None or small >= size else _lib.c_size_t(small)
        self.mv = memoryview(self.buf)
        self.n = _lib.c_size_t()
        self.pn = _lib.byref(self.n)
        self.size = size


def grown_size(needed, keep_max):
    """The size of a reusable buffer that holds `needed` bytes: the next power of two, or
    None when that is more than `keep_max` (use a one-off buffer then)."""
    size = 1 << max(12, (needed - 1).bit_length())
    return size if size <= keep_max else None
