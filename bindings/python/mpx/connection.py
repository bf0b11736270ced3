"""Pipes and connections: ``multiprocessing.Pipe``, ``multiprocessing.connection.Connection``
and ``multiprocessing.connection.wait``, over libmpx's connections.

A Connection moves whole messages over a socket or pipe with Python's framing, byte for
byte (a 4-byte big-endian length, or -1 and an 8-byte length for 2 GiB and more), so an mpx
Connection and a Python ``multiprocessing.connection.Connection`` on the two ends of one
socket understand each other. Methods, results and exceptions are Python's:

* ``send(obj)`` / ``recv()`` pickle as ``multiprocessing.reduction.ForkingPickler`` does;
  ``send_bytes(buf, offset=0, size=None)``, ``recv_bytes(maxlength=None)``,
  ``recv_bytes_into(buf, offset=0)`` (``multiprocessing.BufferTooShort`` carrying the whole
  message as ``e.args[0]`` when it does not fit), ``poll(timeout=0.0)`` (None: forever),
  ``fileno()``, ``close()``, ``closed``, ``readable``, ``writable``, ``with``.
* ``EOFError`` when the peer closed between messages; ``OSError`` when it died in the middle
  of one ("got end of file during message") or a message is longer than ``maxlength`` ("bad
  message length"; the connection then stops reading, as Python's does);
  ``BrokenPipeError`` when sending to a peer that has gone; ``OSError("handle is closed")``
  after ``close()``.

Connections reach children of every start method: a fork child inherits them; a spawn or
forkserver child gets the descriptor passed along when the process object is pickled
(``multiprocessing.reduction.DupFd``, as Python's connections travel); pickled at any other
time (into a queue, over another connection) the descriptor is handed over by
multiprocessing's resource sharer, as for Python's own connections.

Blocking receives, polls and waits without a timeout are made of 100 ms library calls, so
Ctrl-C interrupts them; a send blocks in one call until the message is written.

``Listener(address=None, family=None, backlog=1, authkey=None)`` and ``Client(address,
family=None, authkey=None)`` are multiprocessing.connection's, over mpx_listener and
mpx_client_connect (docs/connections.md): addresses are Python's (a path, "\\0name" for an
abstract socket, a (host, port) tuple), the authkey handshake is Python's and a wrong key
raises ``multiprocessing.AuthenticationError`` on both sides. They talk to Python's own
Listener and Client of every version (the legacy HMAC-MD5 of Python 3.11 is accepted).

mpx extensions: ``detach()`` gives up the descriptor; over a duplex (unix socket)
connection, ``send_conn(c)`` / ``recv_conn()`` pass a Connection to the process at the other
end, and ``send_fds(fds)`` / ``recv_fds()`` descriptors (``send_handle`` / ``recv_handle``
here are multiprocessing.reduction's functions of those names, for mpx Connections).
"""

import operator
import os
import time

from multiprocessing import BufferTooShort
from multiprocessing import reduction as _mp_reduction

from . import _lib
from ._lib import C, raw, check, error, ms_from_timeout, c_int, c_int64, c_size_t, c_void_p, byref
from .reduction import dumps as _dumps, loads as _loads, RecvBuffer, grown_size

__all__ = ["Connection", "Pipe", "wait", "BufferTooShort", "send_handle", "recv_handle", "Listener", "Client"]

if not _lib.HAVE_CONNECTION:
    raise ImportError(f"mpx.connection: {_lib.library_path} has no connection API (mpx_conn_*)")

_send = raw("mpx_conn_send")
_recv_into = raw("mpx_conn_recv_into")
_poll = raw("mpx_conn_poll")
_destroy = C.mpx_conn_destroy
_SLICE = _lib.SLICE
_SLICE_MS = _lib.SLICE_MS
_ZERO = _lib.ZERO
_INFINITE = _lib.INFINITE
_ETIMEDOUT = _lib.ETIMEDOUT
_ENOBUFS = _lib.ENOBUFS
_READABLE = _lib.MPX_CONN_READABLE
_WRITABLE = _lib.MPX_CONN_WRITABLE

# A connection's receive buffer starts at 4 KiB and grows up to this; a longer message is
# received into memory of its own size, which is not kept.
_KEEP_MAX = 1 << 20
_FIRST_SIZE = 4096


def _py_bytes_api():
    ctypes = _lib.ctypes
    f = ctypes.pythonapi.PyBytes_FromStringAndSize
    f.restype = ctypes.py_object
    f.argtypes = (c_void_p, ctypes.c_ssize_t)
    return f


# A bytes object of n bytes, not yet filled: a long message is received straight into the
# bytes object recv_bytes returns (it is not shared before it is filled).
_new_bytes = _py_bytes_api()


class _PyBuffer(_lib.ctypes.Structure):
    _fields_ = [("buf", c_void_p), ("obj", c_void_p), ("len", _lib.ctypes.c_ssize_t),
                ("itemsize", _lib.ctypes.c_ssize_t), ("readonly", c_int), ("ndim", c_int),
                ("format", c_void_p), ("shape", c_void_p), ("strides", c_void_p),
                ("suboffsets", c_void_p), ("internal", c_void_p)]


_get_buffer = _lib.ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = (_lib.ctypes.py_object, _lib.ctypes.POINTER(_PyBuffer), c_int)
_get_buffer.restype = c_int
_release_buffer = _lib.ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = (_lib.ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None
_PyBUF_SIMPLE = 0
_PyBUF_WRITABLE = 1


class _Exported:
    """The address of a contiguous buffer, exported while the `with` block runs (the C API's
    view of any bytes-like object, without a copy)."""

    __slots__ = ("view", "obj", "flags")

    def __init__(self, obj, writable=False):
        self.view = _PyBuffer()
        self.obj = obj
        self.flags = _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE

    def __enter__(self):
        _get_buffer(self.obj, byref(self.view), self.flags)
        return self.view.buf or 0

    def __exit__(self, *exc):
        _release_buffer(byref(self.view))


def _closed_error():
    return OSError("handle is closed")


def _sliced(call, timeout):
    """call(c_int64 ms) until it does not time out, within `timeout` seconds (None: forever),
    in slices of at most 100 ms so that signal handlers run between them."""
    if timeout is None:
        while True:
            rc = call(_SLICE)
            if rc != _ETIMEDOUT:
                return rc
    ms = ms_from_timeout(timeout)
    if ms < 0:
        return _sliced(call, None)
    if ms <= _SLICE_MS:
        return call(c_int64(ms))
    deadline = time.monotonic() + ms / 1000.0
    while True:
        rc = call(c_int64(min(ms, _SLICE_MS)))
        if rc != _ETIMEDOUT:
            return rc
        left = deadline - time.monotonic()
        if left <= 0:
            return rc
        ms = max(1, int(left * 1000.0 + 0.999999))


class Connection:
    """A connection over a connected descriptor (a socket or a pipe end), which it owns:
    ``Connection(fd, readable=True, writable=True)`` as multiprocessing's."""

    _h = None

    def __init__(self, handle, readable=True, writable=True):
        fd = handle.__index__()
        if fd < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        flags = (_READABLE if readable else 0) | (_WRITABLE if writable else 0)
        h = c_void_p()
        rc = C.mpx_conn_from_fd(fd, flags, None, byref(h))
        if rc < 0:
            raise error(rc, "Connection()")
        self._init(h, fd, bool(readable), bool(writable))

    def _init(self, h, fd, readable, writable):
        self._h = h
        self._fd = fd
        self._readable = readable
        self._writable = writable
        self._rb = None      # the receive buffer (taken by a receive while it runs)

    @classmethod
    def _wrap(cls, h, readable, writable):
        self = cls.__new__(cls)
        fd = c_int()
        rc = C.mpx_conn_fileno(h, byref(fd))
        if rc < 0:
            _destroy(h)
            raise error(rc, "fileno")
        self._init(h, fd.value, readable, writable)
        return self

    def __del__(self):
        h = self._h
        if h is not None:
            self._h = None
            try:
                _destroy(h)
            except Exception:  # interpreter shutdown
                pass

    # ---- state ----

    @property
    def closed(self):
        """True if the connection is closed"""
        return self._h is None

    @property
    def readable(self):
        """True if the connection is readable"""
        return self._readable

    @property
    def writable(self):
        """True if the connection is writable"""
        return self._writable

    def fileno(self):
        """File descriptor of the connection"""
        if self._h is None:
            raise _closed_error()
        return self._fd

    def close(self):
        """Close the connection"""
        h = self._h
        if h is not None:
            self._h = None
            rc = _destroy(h)
            if rc < 0 and rc != _lib.EBADHANDLE:
                raise error(rc, "close")

    def detach(self):
        """Give up the descriptor without closing it and return it (the connection is then
        closed). An mpx extension."""
        h = self._h
        if h is None:
            raise _closed_error()
        self._h = None
        fd = c_int()
        check(C.mpx_conn_detach(h, byref(fd)), "detach")
        return fd.value

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __repr__(self):
        if self._h is None:
            return f"<{type(self).__module__}.{type(self).__qualname__} closed>"
        mode = ("r" if self._readable else "") + ("w" if self._writable else "")
        return f"<{type(self).__module__}.{type(self).__qualname__} fd={self._fd} {mode}>"

    def __reduce__(self):
        # multiprocessing's DupFd: the descriptor is handed to the child being started, or
        # else shared through multiprocessing's resource sharer.
        df = _mp_reduction.DupFd(self.fileno())
        return _rebuild_connection, (df, self._readable, self._writable)

    # ---- errors ----

    def _check_readable(self):
        if self._h is None:
            raise _closed_error()
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if self._h is None:
            raise _closed_error()
        if not self._writable:
            raise OSError("connection is read-only")

    def _bad_message_length(self):
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    def _failed(self, rc, what):
        """The exception for a failed call, as Python's Connection would raise it."""
        if rc == _lib.ECLOSED or rc == _lib.EBADHANDLE or self._h is None:
            return _closed_error()
        if rc == _lib.EOF:
            return error(rc, what, cls=_lib.MpxEOFError)
        if rc == _lib.EPROTO:
            detail = _lib.last_error_message()
            if "truncated" in detail:   # Python's words for a peer gone inside a message
                return error(rc, detail=detail, text=f"got end of file during message ({detail})")
            return error(rc, what, detail=detail)
        if rc == _lib.EMSGSIZE:
            if self._writable:
                self._readable = False
            else:
                self.close()
            return error(rc, text="bad message length")
        return error(rc, what)

    # ---- sending ----

    def send_bytes(self, buf, offset=0, size=None):
        """Send the bytes data from a bytes-like object"""
        h = self._h
        if h is None or not self._writable:
            self._check_writable()
        if type(buf) is bytes and offset == 0 and size is None:
            rc = _send(h, buf, c_size_t(len(buf)))
        else:
            m = memoryview(buf)
            if m.itemsize > 1:
                m = m.cast('B')
            n = m.nbytes
            if offset < 0:
                raise ValueError("offset is negative")
            if n < offset:
                raise ValueError("buffer length < offset")
            if size is None:
                size = n - offset
            elif size < 0:
                raise ValueError("size is negative")
            elif offset + size > n:
                raise ValueError("buffer length < offset + size")
            with _Exported(m[offset:offset + size]) as address:
                rc = _send(h, c_void_p(address), c_size_t(size))
        if rc:
            raise self._failed(rc, "send")

    def send(self, obj):
        """Send a (picklable) object"""
        h = self._h
        if h is None or not self._writable:
            self._check_writable()
        data = _dumps(obj)
        rc = _send(h, data, c_size_t(len(data)))
        if rc:
            raise self._failed(rc, "send")

    # ---- receiving ----

    def _receive(self, h, maxlength=None):
        """Receive one message: (buffer, n) with the message in buffer.mv[:n] (buffer is
        the connection's own, given back by the caller), or (bytes, n) for a long one."""
        b = self._rb
        self._rb = None
        if b is None:
            b = RecvBuffer(_FIRST_SIZE)
        rc = _recv_into(h, b.ptr, b.cap, b.pn, _SLICE)
        while rc:
            if rc == _ETIMEDOUT:
                rc = _recv_into(h, b.ptr, b.cap, b.pn, _SLICE)
                continue
            if rc != _ENOBUFS:
                self._rb = b
                raise self._failed(rc, "recv")
            needed = b.n.value
            if maxlength is not None and needed > maxlength:
                self._rb = b
                self._bad_message_length()
            size = grown_size(needed, _KEEP_MAX)
            if size is None:
                self._rb = b
                return self._receive_long(h, needed, maxlength)
            b = RecvBuffer(size)
            rc = _recv_into(h, b.ptr, b.cap, b.pn, _SLICE)
        n = b.n.value
        if maxlength is not None and n > maxlength:   # only with several readers
            self._rb = b
            self._bad_message_length()
        return b, n

    def _receive_long(self, h, needed, maxlength):
        n = c_size_t()
        pn = byref(n)
        while True:
            data = _new_bytes(None, needed)
            rc = _recv_into(h, data, c_size_t(needed), pn, _SLICE)
            while rc == _ETIMEDOUT:
                rc = _recv_into(h, data, c_size_t(needed), pn, _SLICE)
            if rc == 0:
                if n.value != needed:   # several readers: another took the long message
                    return data[:n.value], n.value
                return data, needed
            if rc != _ENOBUFS:
                raise self._failed(rc, "recv")
            needed = n.value
            if maxlength is not None and needed > maxlength:
                self._bad_message_length()

    def recv_bytes(self, maxlength=None):
        """Receive bytes data as a bytes object."""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        b, n = self._receive(h, maxlength)
        if type(b) is bytes:
            return b
        data = bytes(b.mv[:n])
        self._rb = b
        return data

    def recv(self):
        """Receive a (picklable) object"""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        b, n = self._receive(h)
        if type(b) is bytes:
            return _loads(b)
        obj = _loads(b.mv[:n])
        self._rb = b
        return obj

    def recv_bytes_into(self, buf, offset=0):
        """Receive bytes data into a writeable bytes-like object.
        Return the number of bytes read."""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        with memoryview(buf) as m:
            bytesize = m.nbytes
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            n = c_size_t()
            with _Exported(m, writable=True) as address:
                call = _recv_into
                p = c_void_p(address + offset)
                cap = c_size_t(bytesize - offset)
                pn = byref(n)
                rc = call(h, p, cap, pn, _SLICE)
                while rc == _ETIMEDOUT:
                    rc = call(h, p, cap, pn, _SLICE)
            if rc == _ENOBUFS:
                # As Python's: the message is consumed and carried by the exception.
                raise BufferTooShort(self.recv_bytes())
            if rc:
                raise self._failed(rc, "recv_bytes_into")
            return n.value

    def poll(self, timeout=0.0):
        """Whether there is any input available to be read"""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        if timeout == 0:   # the common case: one call
            rc = _poll(h, _ZERO)
        else:
            rc = _sliced(lambda ms: _poll(h, ms), timeout)
        if not rc:
            return True
        if rc == _ETIMEDOUT:
            return False
        raise self._failed(rc, "poll")


    # ---- descriptors (mpx extensions) ----

    def send_conn(self, conn):
        """Send another mpx Connection over this one (a unix socket) to the process at the
        other end, which gets it with recv_conn(); this process keeps its own. An mpx
        extension (multiprocessing sends a connection by pickling it, which works too)."""
        h = self._h
        if h is None or not self._writable:
            self._check_writable()
        if not isinstance(conn, Connection):
            raise TypeError(f"send_conn needs an mpx Connection, not {type(conn).__name__}")
        other = conn._h
        if other is None:
            raise _closed_error()
        rc = C.mpx_conn_send_conn(h, other)
        if rc:
            raise self._failed(rc, "send_conn")

    def recv_conn(self, timeout=None):
        """Receive a Connection sent with send_conn(); None when `timeout` (seconds) passes
        first."""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        out = c_void_p()
        fn = C.mpx_conn_recv_conn
        rc = _sliced(lambda ms: fn(h, byref(out), ms), timeout)
        if rc == _ETIMEDOUT:
            return None
        if rc:
            raise self._failed(rc, "recv_conn")
        flags = _lib.c_uint32()
        rc = C.mpx_conn_flags(out, byref(flags))
        if rc < 0:
            _destroy(out)
            raise error(rc, "recv_conn")
        return Connection._wrap(out, bool(flags.value & _READABLE), bool(flags.value & _WRITABLE))

    def send_fds(self, fds):
        """Send descriptors (1 to 64 ints) in one message; this process keeps its copies."""
        h = self._h
        if h is None or not self._writable:
            self._check_writable()
        fds = [operator.index(fd) for fd in fds]
        arr = (c_int * len(fds))(*fds)
        rc = C.mpx_conn_send_fds(h, arr, len(fds))
        if rc:
            raise self._failed(rc, "send_fds")

    def recv_fds(self, maxfds=_lib.MPX_CONN_MAX_FDS, timeout=None):
        """Receive the descriptors of one send_fds() message, as a list of ints (they are
        close-on-exec and the caller's to close); None when `timeout` passes first."""
        h = self._h
        if h is None or not self._readable:
            self._check_readable()
        arr = (c_int * maxfds)()
        count = c_size_t(maxfds)
        fn = C.mpx_conn_recv_fds

        def call(ms):
            count.value = maxfds
            return fn(h, arr, byref(count), ms)

        rc = _sliced(call, timeout)
        if rc == _ETIMEDOUT:
            return None
        if rc:
            raise self._failed(rc, "recv_fds")
        return arr[:count.value]


def send_handle(conn, handle, destination_pid=None):
    """Send a descriptor over an mpx Connection (multiprocessing.reduction.send_handle; the
    destination pid is not needed on POSIX)."""
    conn.send_fds([handle])


def recv_handle(conn):
    """Receive a descriptor sent with send_handle (multiprocessing.reduction.recv_handle)."""
    return conn.recv_fds(1)[0]


def _rebuild_connection(df, readable, writable):
    return Connection(df.detach(), readable, writable)


def Pipe(duplex=True):
    """A pair of connected Connections. duplex: both ends send and receive (a socketpair);
    otherwise the first only receives and the second only sends (a pipe)."""
    a, b = c_void_p(), c_void_p()
    rc = C.mpx_pipe(1 if duplex else 0, None, byref(a), byref(b))
    if rc < 0:
        raise error(rc, "Pipe()")
    try:
        c1 = Connection._wrap(a, True, bool(duplex))
    except BaseException:
        _destroy(b)
        raise
    c2 = Connection._wrap(b, bool(duplex), True)
    return c1, c2


# ---- wait ---------------------------------------------------------------------------------

def _fd_of(obj):
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = int(obj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {obj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def wait(object_list, timeout=None):
    """Wait till an object in object_list is ready/readable; return those that are.

    Accepts mpx Connections, descriptors (ints: the sentinels of mpx and multiprocessing
    processes), and objects with a fileno() (Python's Connections, sockets, files)."""
    objs = list(object_list)
    if not objs:
        if timeout is None:
            while True:
                time.sleep(3600)
        if timeout > 0:
            time.sleep(timeout)
        return []
    WaitObject = _lib.WaitObject
    arr = (WaitObject * len(objs))()
    for i, obj in enumerate(objs):
        w = arr[i]
        if isinstance(obj, Connection):
            if obj._h is None:
                raise _closed_error()
            w.kind = _lib.MPX_WAIT_CONN
            w.handle = obj._h
        else:
            w.kind = _lib.MPX_WAIT_FD
            w.fd = _fd_of(obj)
    fn = C.mpx_wait
    count = len(objs)
    rc = _sliced(lambda ms: fn(arr, count, ms, None), timeout)
    if rc == _ETIMEDOUT:
        return []
    if rc < 0:
        raise error(rc, "wait")
    return [obj for obj, w in zip(objs, arr) if w.ready]


# ---- Listener and Client ------------------------------------------------------------------

_listener_c = None


def _listener_api():
    """The listener functions, bound on first use (an older library lacks them)."""
    global _listener_c
    if _listener_c is not None:
        return _listener_c
    ctypes = _lib.ctypes
    c_uint32, c_int32, c_uint64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64

    class ListenerOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32), ("authkey", c_void_p),
                    ("authkey_len", c_size_t), ("handshake_timeout_ms", c_int64),
                    ("backlog", c_int32), ("reserved", c_uint32), ("max_message", c_uint64)]

    class ClientOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32), ("authkey", c_void_p),
                    ("authkey_len", c_size_t), ("timeout_ms", c_int64), ("max_message", c_uint64)]

    P = ctypes.POINTER
    PH = P(c_void_p)
    S = P(c_size_t)
    protos = {
        "mpx_listener_options_init": (c_int, [P(ListenerOptions), c_size_t]),
        "mpx_client_options_init": (c_int, [P(ClientOptions), c_size_t]),
        "mpx_listener_create": (c_int, [PH, ctypes.c_char_p, P(ListenerOptions)]),
        "mpx_listener_accept": (c_int, [c_void_p, c_int64, PH]),
        "mpx_listener_address": (c_int, [c_void_p, ctypes.c_char_p, S]),
        "mpx_listener_last_accepted": (c_int, [c_void_p, ctypes.c_char_p, S]),
        "mpx_listener_close": (c_int, [c_void_p]),
        "mpx_listener_destroy": (c_int, [c_void_p]),
        "mpx_client_connect": (c_int, [PH, ctypes.c_char_p, P(ClientOptions)]),
    }
    lib = _lib.lib
    ns = type("ListenerC", (), {})()
    for name, (restype, argtypes) in protos.items():
        try:
            f = lib[name]
        except AttributeError:
            raise ImportError(f"mpx.connection: {_lib.library_path} has no listener API ({name})") from None
        f.restype = restype
        f.argtypes = argtypes
        setattr(ns, name, f)
    ns.ListenerOptions = ListenerOptions
    ns.ClientOptions = ClientOptions
    _listener_c = ns
    return ns


def _address_type(address):
    if isinstance(address, tuple):
        return "AF_INET6" if ":" in str(address[0]) else "AF_INET"
    if isinstance(address, str):
        return "AF_UNIX"
    raise ValueError(f"address type of {address!r} unrecognized")


def _to_mpx_address(address, family=None):
    """A Python address (path, "\\0name", (host, port)) as an mpx address string."""
    family = family or _address_type(address)
    if family in ("AF_INET", "AF_INET6"):
        host, port = address
        host = host or ("::" if family == "AF_INET6" else "0.0.0.0")
        return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"
    if family == "AF_UNIX":
        if isinstance(address, bytes):
            address = address.decode()
        if address.startswith("\0"):
            return "@" + address[1:]
        return address if "/" in address else "./" + address
    raise ValueError(f"unrecognized family {family!r}")


def _from_mpx_address(text, tcp):
    """An mpx address string as Python gives addresses back."""
    if not tcp:
        return "\0" + text[1:] if text.startswith("@") else text
    host, port = text.rsplit(":", 1)
    if host.startswith("["):
        host = host[1:-1]
    return (host, int(port))


def _key_fields(opts, authkey):
    if authkey is None:
        return None
    if not isinstance(authkey, bytes):
        raise TypeError(f"authkey should be a byte string, not {type(authkey).__name__}")
    buf = _lib.ctypes.create_string_buffer(authkey, len(authkey))
    opts.authkey = _lib.ctypes.cast(buf, c_void_p)
    opts.authkey_len = len(authkey)
    return buf  # keep alive during the call


class Listener:
    """multiprocessing.connection.Listener over mpx_listener: a bound socket whose
    ``accept()`` returns authenticated mpx Connections. The handshakes run concurrently in
    the library, each with a deadline (5 s), so a silent client cannot block accept()."""

    _h = None

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        api = _listener_api()
        self._tmpdir = None
        if address is None:
            family = family or "AF_UNIX"
            if family == "AF_UNIX":
                import tempfile
                self._tmpdir = tempfile.mkdtemp(prefix="mpx-listener-")
                address = os.path.join(self._tmpdir, "sock")
            elif family == "AF_INET":
                address = ("localhost", 0)
            else:
                address = ("::1", 0)
        family = family or _address_type(address)
        self._family = family
        self._tcp = family in ("AF_INET", "AF_INET6")
        given = address
        text = _to_mpx_address(address, family)
        opts = api.ListenerOptions()
        check(api.mpx_listener_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
        keep = _key_fields(opts, authkey)
        opts.backlog = max(1, int(backlog))
        h = c_void_p()
        rc = api.mpx_listener_create(byref(h), text.encode(), byref(opts))
        del keep
        if rc < 0:
            self._remove_tmpdir()
            raise error(rc, f"Listener({given!r})")
        self._h = h
        self._api = api
        if self._tcp:
            self._address = _from_mpx_address(self._string(api.mpx_listener_address), True)
        else:
            self._address = given.decode() if isinstance(given, bytes) else given
        self._last_accepted = None

    def _string(self, fn):
        buf = _lib.ctypes.create_string_buffer(256)
        n = c_size_t(256)
        check(fn(self._h, buf, byref(n)))
        return buf.raw[:n.value].decode()

    def _remove_tmpdir(self):
        if self._tmpdir:
            import shutil
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def accept(self):
        """Wait for the next authenticated connection. AuthenticationError for a client with
        a wrong key (the listener goes on: call accept() again)."""
        h = self._h
        if h is None:
            raise OSError("listener is closed")
        out = c_void_p()
        fn = self._api.mpx_listener_accept
        rc = _sliced(lambda ms: fn(h, ms, byref(out)), None)
        peer = None
        try:
            peer = self._string(self._api.mpx_listener_last_accepted)
        except Exception:
            pass
        if peer is not None:
            self._last_accepted = _from_mpx_address(peer, self._tcp) if peer else ""
        if rc == _lib.ECLOSED or rc == _lib.EBADHANDLE:
            raise OSError("listener is closed")
        if rc < 0:
            raise error(rc, "accept")
        return Connection._wrap(out, True, True)

    def close(self):
        """Close the socket (and remove its file); pending accept() calls fail."""
        h = self._h
        if h is not None:
            self._h = None
            self._api.mpx_listener_close(h)
            self._api.mpx_listener_destroy(h)
        self._remove_tmpdir()

    @property
    def address(self):
        return self._address

    @property
    def last_accepted(self):
        return self._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def Client(address, family=None, authkey=None):
    """multiprocessing.connection.Client: connect to a Listener (mpx's or Python's) and,
    with an authkey, authenticate both ways; returns an mpx Connection."""
    api = _listener_api()
    text = _to_mpx_address(address, family)
    opts = api.ClientOptions()
    check(api.mpx_client_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
    keep = _key_fields(opts, authkey)
    h = c_void_p()
    rc = api.mpx_client_connect(byref(h), text.encode(), byref(opts))
    del keep
    if rc < 0:
        raise error(rc, f"Client({address!r})")
    return Connection._wrap(h, True, True)
