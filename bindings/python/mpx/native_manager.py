"""Python client (and starter) of mpx's C manager server, over ctypes (include/mpx/manager.h).

The C manager holds dicts, namespaces, lists, queues, locks, semaphores, conditions, events,
barriers, typed values and arrays for C, C++, Python and any other language at once. Keys are
strings; values and items are bytes (``str`` is accepted and sent as UTF-8)::

    from mpx import native_manager as nm

    server = nm.start(authkey=b"secret")            # a C manager server in a child process
    c = nm.connect(server.address, authkey=b"secret")
    d = c.dict("config")                            # named: other clients open it by name
    d["mode"] = b"fast"
    q = c.Queue("jobs", maxsize=100)
    q.put(b"job 1")
    with c.Lock("L"):
        ...
    c.close(); server.shutdown()

Anonymous objects (name=None) live while some proxy refers to them; pass ``proxy.token`` to
another client, which opens it with ``client.open(token)``. A named object lives until the
server stops. A server that dies makes every call raise ``EOFError`` (mpx.MpxEOFError).
One client's calls are serialised: a thread blocked in ``q.get()`` holds up the other threads
that use the same client, so give each thread that blocks a client of its own (``connect``).
Only this module knows the manager's C prototypes (bound on first use).
"""

import ctypes
import queue as _queue
import struct
import threading
import warnings

from . import _lib

__all__ = [
    "start", "connect", "NativeManager", "NativeManagerClient",
    "DictProxy", "NamespaceProxy", "ListProxy", "QueueProxy", "JoinableQueueProxy",
    "LockProxy", "RLockProxy", "SemaphoreProxy", "BoundedSemaphoreProxy", "ConditionProxy",
    "EventProxy", "BarrierProxy", "ValueProxy", "ArrayProxy",
]

# ---- constants mirrored from include/mpx/manager.h ----------------------------------------

MPX_MOBJ_DICT = 1
MPX_MOBJ_NAMESPACE = 2
MPX_MOBJ_LIST = 3
MPX_MOBJ_QUEUE = 4
MPX_MOBJ_JOINABLE_QUEUE = 5
MPX_MOBJ_LOCK = 6
MPX_MOBJ_RLOCK = 7
MPX_MOBJ_SEMAPHORE = 8
MPX_MOBJ_BOUNDED_SEMAPHORE = 9
MPX_MOBJ_CONDITION = 10
MPX_MOBJ_EVENT = 11
MPX_MOBJ_BARRIER = 12
MPX_MOBJ_VALUE = 13
MPX_MOBJ_ARRAY = 14
MPX_MANAGER_KEY_MAX = 4096
MPX_MANAGER_IN_PROCESS = 0x1
MPX_MANAGER_ALLOW_REMOTE = 0x2
MPX_MCLIENT_SOCKET_ONLY = 0x1
MPX_MOBJ_OPEN_EXISTING = 0x1

_METHODS = {None: 0, "fork": 1, "forkserver": 2, "spawn": 3}

# ---- the C API (bound on first use) --------------------------------------------------------

_ffi = None
_ffi_lock = threading.Lock()


class _FFI:
    pass


def _bind():
    global _ffi
    if _ffi is not None:
        return _ffi
    with _ffi_lock:
        if _ffi is not None:
            return _ffi
        c_void_p, c_int, c_int32, c_int64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int32, ctypes.c_int64
        c_uint32, c_uint64, c_size_t, c_char_p = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_char_p
        P = ctypes.POINTER

        class ManagerOptions(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("flags", c_uint32), ("address", c_char_p),
                        ("authkey", c_void_p), ("authkey_len", c_size_t), ("method", c_uint32),
                        ("reserved", c_uint32), ("file", c_char_p), ("start_timeout_ms", c_int64)]

        class MClientOptions(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("flags", c_uint32), ("authkey", c_void_p),
                        ("authkey_len", c_size_t), ("timeout_ms", c_int64)]

        class MObjOptions(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("flags", c_uint32), ("name", c_char_p),
                        ("typecode", c_int32), ("parties", c_uint32), ("length", c_uint64),
                        ("maxsize", c_uint64), ("initial", c_int64), ("lock", c_void_p),
                        ("data", c_void_p), ("data_len", c_size_t)]

        H, PH, S, PV = c_void_p, P(c_void_p), P(c_size_t), P(c_void_p)
        protos = {
            "mpx_manager_options_init": [P(ManagerOptions), c_size_t],
            "mpx_manager_start": [PH, P(ManagerOptions)],
            "mpx_manager_address": [H, c_char_p, S],
            "mpx_manager_pid": [H, P(c_int64)],
            "mpx_manager_wait": [H, c_int64],
            "mpx_manager_shutdown": [H, c_int64],
            "mpx_manager_destroy": [H],
            "mpx_mclient_options_init": [P(MClientOptions), c_size_t],
            "mpx_manager_connect": [PH, c_char_p, P(MClientOptions)],
            "mpx_mclient_shm": [H, P(c_int)],
            "mpx_mclient_shutdown": [H],
            "mpx_mclient_destroy": [H],
            "mpx_mobj_options_init": [P(MObjOptions), c_size_t],
            "mpx_proxy_create": [H, c_int, P(MObjOptions), PH],
            "mpx_proxy_open": [H, c_char_p, PH],
            "mpx_proxy_token": [H, c_char_p, S],
            "mpx_proxy_type": [H, P(c_int)],
            "mpx_proxy_destroy": [H],
            "mpx_mdict_set": [H, c_char_p, c_void_p, c_size_t],
            "mpx_mdict_add": [H, c_char_p, c_void_p, c_size_t],
            "mpx_mdict_get": [H, c_char_p, PV, S],
            "mpx_mdict_pop": [H, c_char_p, PV, S],
            "mpx_mdict_len": [H, S],
            "mpx_mdict_keys": [H, PV, S, S],
            "mpx_mdict_clear": [H],
            "mpx_mlist_append": [H, c_void_p, c_size_t],
            "mpx_mlist_insert": [H, c_int64, c_void_p, c_size_t],
            "mpx_mlist_get": [H, c_int64, PV, S],
            "mpx_mlist_set": [H, c_int64, c_void_p, c_size_t],
            "mpx_mlist_pop": [H, c_int64, PV, S],
            "mpx_mlist_len": [H, S],
            "mpx_mlist_reverse": [H],
            "mpx_mlist_sort": [H],
            "mpx_mlist_clear": [H],
            "mpx_mqueue_put": [H, c_void_p, c_size_t, c_int64],
            "mpx_mqueue_get": [H, PV, S, c_int64],
            "mpx_mqueue_qsize": [H, S],
            "mpx_mqueue_task_done": [H],
            "mpx_mqueue_join": [H, c_int64],
            "mpx_mlock_acquire": [H, c_int64],
            "mpx_mlock_release": [H],
            "mpx_msem_value": [H, P(c_int64)],
            "mpx_mcond_wait": [H, c_int64],
            "mpx_mcond_notify": [H, c_size_t],
            "mpx_mcond_notify_all": [H],
            "mpx_mevent_set": [H],
            "mpx_mevent_clear": [H],
            "mpx_mevent_is_set": [H, P(c_int)],
            "mpx_mevent_wait": [H, c_int64],
            "mpx_mbarrier_wait": [H, c_int64, P(c_int64)],
            "mpx_mbarrier_abort": [H],
            "mpx_mbarrier_reset": [H],
            "mpx_mvalue_get": [H, c_void_p, c_size_t],
            "mpx_mvalue_set": [H, c_void_p, c_size_t],
            "mpx_mvalue_add": [H, c_void_p, c_void_p, c_size_t],
            "mpx_marray_len": [H, S, S],
            "mpx_marray_get": [H, c_size_t, c_size_t, c_void_p],
            "mpx_marray_set": [H, c_size_t, c_size_t, c_void_p],
        }
        lib = _lib.lib
        ns = _FFI()
        for name, argtypes in protos.items():
            try:
                f = lib[name]
            except AttributeError:
                raise ImportError(f"mpx: {_lib.library_path} has no manager API ({name} is missing)") from None
            f.restype = c_int
            f.argtypes = argtypes
            setattr(ns, name[4:], f)  # ns.mdict_set, ns.manager_start, ...
        ns.ManagerOptions, ns.MClientOptions, ns.MObjOptions = ManagerOptions, MClientOptions, MObjOptions
        ns.free = _lib.C.mpx_free
        _ffi = ns
        return ns


# ---- conversions --------------------------------------------------------------------------

def _key(k):
    if isinstance(k, str):
        return k.encode("utf-8")
    if isinstance(k, (bytes, bytearray)):
        return bytes(k)
    raise TypeError(f"manager keys and names are str or bytes, not {type(k).__name__}")


def _bytes(v):
    """A bytes-like value as (bytes, length); str is sent as UTF-8."""
    if isinstance(v, str):
        v = v.encode("utf-8")
    elif not isinstance(v, bytes):
        try:
            v = bytes(memoryview(v))
        except TypeError:
            raise TypeError(f"manager values are bytes-like (or str), not {type(v).__name__}") from None
    return v, len(v)


def _take(ptr, n):
    """Library-allocated bytes (ptr, n) as bytes; frees them."""
    if not ptr.value:
        return b""
    try:
        return ctypes.string_at(ptr.value, n.value)
    finally:
        _bind().free(ptr)


def _ms(timeout, block=True):
    if not block:
        return 0
    return _lib.ms_from_timeout(timeout)


def _authkey(authkey):
    if authkey is None:
        return None
    if isinstance(authkey, str):
        authkey = authkey.encode("utf-8")
    authkey = bytes(authkey)
    if not authkey:
        raise ValueError("authkey must not be empty (None: this process's authkey)")
    return authkey


def _check(rc, what=None):
    if rc < 0:
        raise _lib.error(rc, what)
    return rc


def _get_string(fn, handle):
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = ctypes.c_size_t(size)
        rc = fn(handle, buf, ctypes.byref(n))
        if rc == _lib.ENOBUFS and n.value > size:
            size = n.value
            continue
        _check(rc)
        return buf.raw[:n.value].decode("utf-8")


# ---- the server ---------------------------------------------------------------------------

class NativeManager:
    """A C manager server this process started (start()). ``address`` is where clients connect."""

    def __init__(self, address=None, authkey=None, method=None, in_process=False, file=None,
                 allow_remote=False, start_timeout=None):
        f = _bind()
        o = f.ManagerOptions()
        _check(f.manager_options_init(ctypes.byref(o), ctypes.sizeof(o)))
        if method not in _METHODS and not isinstance(method, int):
            raise ValueError(f"unknown start method {method!r}")
        o.method = _METHODS.get(method, method) if not isinstance(method, int) else method
        o.flags = (MPX_MANAGER_IN_PROCESS if in_process else 0) | (MPX_MANAGER_ALLOW_REMOTE if allow_remote else 0)
        if address is not None:
            o.address = _key(address)
        self._authkey = _authkey(authkey)
        if self._authkey is not None:
            self._keybuf = ctypes.create_string_buffer(self._authkey, len(self._authkey))
            o.authkey = ctypes.cast(self._keybuf, ctypes.c_void_p)
            o.authkey_len = len(self._authkey)
        if file is not None:
            o.file = _key(file)
        if start_timeout is not None:
            o.start_timeout_ms = max(1, _lib.ms_from_timeout(start_timeout))
        h = ctypes.c_void_p()
        _check(f.manager_start(ctypes.byref(h), ctypes.byref(o)), "starting the manager")
        self._h = h
        self.address = _get_string(f.manager_address, h)
        pid = ctypes.c_int64()
        _check(f.manager_pid(h, ctypes.byref(pid)))
        self.pid = pid.value

    def connect(self, socket_only=False, timeout=None):
        """A client of this server, with its authkey."""
        return NativeManagerClient(self.address, self._authkey, socket_only=socket_only, timeout=timeout)

    def wait(self, timeout=None):
        """True once the server has stopped (a client's shutdown(), or its process died)."""
        if self._h is None:
            return True
        rc = _bind().manager_wait(self._h, _lib.ms_from_timeout(timeout))
        if rc == _lib.ETIMEDOUT:
            return False
        _check(rc)
        return True

    def shutdown(self, timeout=5.0):
        """Stop the server (clients' calls then raise EOFError); a child still running at the
        timeout is killed."""
        if self._h is not None:
            _check(_bind().manager_shutdown(self._h, _lib.ms_from_timeout(timeout)))

    def close(self):
        """Shut the server down if it runs (1 s at most) and release the handle."""
        h, self._h = self._h, None
        if h is not None:
            _bind().manager_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass

    def __repr__(self):
        return f"<mpx.native_manager.NativeManager address={self.address!r} pid={self.pid}>"


def start(address=None, authkey=None, method=None, in_process=False, file=None, allow_remote=False,
          start_timeout=None):
    """Start a C manager server and return it once it listens.

    address: a unix socket path, "@abstract", or "host:port" (port 0: the system chooses; see
    ``.address``); None: a fresh unix socket in a private directory. authkey: bytes (None: this
    process's authkey). method: "fork", "forkserver", "spawn" or None (the library's default);
    spawn runs ``file``, a program that calls mpx_manager_main() (default "mpx-manager").
    in_process=True serves from threads of this process instead of a child."""
    return NativeManager(address, authkey, method, in_process, file, allow_remote, start_timeout)


# ---- the client ---------------------------------------------------------------------------

class NativeManagerClient:
    """A connection to a C manager; makes and opens proxies. Use as a context manager."""

    def __init__(self, address, authkey=None, socket_only=False, timeout=None):
        f = _bind()
        o = f.MClientOptions()
        _check(f.mclient_options_init(ctypes.byref(o), ctypes.sizeof(o)))
        o.flags = MPX_MCLIENT_SOCKET_ONLY if socket_only else 0
        key = _authkey(authkey)
        if key is not None:
            keybuf = ctypes.create_string_buffer(key, len(key))
            o.authkey = ctypes.cast(keybuf, ctypes.c_void_p)
            o.authkey_len = len(key)
        if timeout is not None:
            o.timeout_ms = max(1, _lib.ms_from_timeout(timeout))
        h = ctypes.c_void_p()
        _check(f.manager_connect(ctypes.byref(h), _key(address), ctypes.byref(o)), f"connecting to {address}")
        self._h = h
        self.address = address

    # handle

    def _handle(self):
        if self._h is None:
            raise ValueError("the manager client is closed")
        return self._h

    @property
    def shm(self):
        """True when requests go through shared memory, False over the socket."""
        v = ctypes.c_int()
        _check(_bind().mclient_shm(self._handle(), ctypes.byref(v)))
        return bool(v.value)

    def shutdown(self):
        """Ask the server to stop (Python's manager.shutdown())."""
        _check(_bind().mclient_shutdown(self._handle()))

    def close(self):
        """Disconnect: the server drops this client's references and releases its locks."""
        h, self._h = self._h, None
        if h is not None:
            _bind().mclient_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # proxies

    def _create(self, type_, name=None, open_existing=False, **fields):
        f = _bind()
        o = f.MObjOptions()
        _check(f.mobj_options_init(ctypes.byref(o), ctypes.sizeof(o)))
        keep = []
        if name is not None:
            o.name = _key(name)
        if open_existing:
            o.flags |= MPX_MOBJ_OPEN_EXISTING
        for k, v in fields.items():
            if k == "data":
                buf = ctypes.create_string_buffer(v, len(v))
                keep.append(buf)
                o.data = ctypes.cast(buf, ctypes.c_void_p)
                o.data_len = len(v)
            elif k == "lock":
                o.lock = v._handle()
            else:
                setattr(o, k, v)
        h = ctypes.c_void_p()
        _check(f.proxy_create(self._handle(), type_, ctypes.byref(o), ctypes.byref(h)))
        return _wrap(self, h, type_)

    def open(self, name_or_token, typecode=None):
        """A proxy for the object a name or a token names (KeyError when none does). For a
        value or an array, typecode says how to read its elements (default: a signed integer
        of the element's size)."""
        f = _bind()
        h = ctypes.c_void_p()
        rc = f.proxy_open(self._handle(), _key(name_or_token), ctypes.byref(h))
        if rc == _lib.ENOENT:
            raise KeyError(name_or_token)
        _check(rc)
        t = ctypes.c_int()
        rc = f.proxy_type(h, ctypes.byref(t))
        if rc < 0:
            f.proxy_destroy(h)
            _check(rc)
        p = _wrap(self, h, t.value)
        if typecode is not None and isinstance(p, (ValueProxy, ArrayProxy)):
            _fmt(typecode)
            p._typecode = typecode
        return p

    def dict(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_DICT, name, open_existing)

    def Namespace(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_NAMESPACE, name, open_existing)

    def list(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_LIST, name, open_existing)

    def Queue(self, name=None, maxsize=0, open_existing=False):
        return self._create(MPX_MOBJ_QUEUE, name, open_existing, maxsize=max(0, int(maxsize)))

    def JoinableQueue(self, name=None, maxsize=0, open_existing=False):
        return self._create(MPX_MOBJ_JOINABLE_QUEUE, name, open_existing, maxsize=max(0, int(maxsize)))

    def Lock(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_LOCK, name, open_existing)

    def RLock(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_RLOCK, name, open_existing)

    def Semaphore(self, value=1, name=None, open_existing=False):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        return self._create(MPX_MOBJ_SEMAPHORE, name, open_existing, initial=int(value))

    def BoundedSemaphore(self, value=1, name=None, open_existing=False):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        return self._create(MPX_MOBJ_BOUNDED_SEMAPHORE, name, open_existing, initial=int(value))

    def Condition(self, lock=None, name=None, open_existing=False):
        if lock is None:
            return self._create(MPX_MOBJ_CONDITION, name, open_existing)
        return self._create(MPX_MOBJ_CONDITION, name, open_existing, lock=lock)

    def Event(self, name=None, open_existing=False):
        return self._create(MPX_MOBJ_EVENT, name, open_existing)

    def Barrier(self, parties, name=None, open_existing=False):
        if parties < 1:
            raise ValueError("parties must be >= 1")
        return self._create(MPX_MOBJ_BARRIER, name, open_existing, parties=int(parties))

    def Value(self, typecode="i", value=None, name=None, open_existing=False):
        fmt = _fmt(typecode)
        fields = {"typecode": ord(typecode)}
        if value is not None:
            fields["data"] = struct.pack(fmt, value)
        v = self._create(MPX_MOBJ_VALUE, name, open_existing, **fields)
        v._typecode = typecode
        return v

    def Array(self, typecode, size_or_initializer, name=None, open_existing=False):
        fmt = _fmt(typecode)
        fields = {"typecode": ord(typecode)}
        if isinstance(size_or_initializer, int):
            fields["length"] = size_or_initializer
        else:
            items = list(size_or_initializer)
            fields["length"] = len(items)
            fields["data"] = b"".join(struct.pack(fmt, x) for x in items)
        a = self._create(MPX_MOBJ_ARRAY, name, open_existing, **fields)
        a._typecode = typecode
        return a

    def __repr__(self):
        state = "closed" if self._h is None else "connected"
        return f"<mpx.native_manager.NativeManagerClient {self.address!r} {state}>"


def connect(address, authkey=None, socket_only=False, timeout=None):
    """Connect to the C manager at `address` (authkey: bytes, None: this process's authkey).
    A wrong key raises mpx.AuthenticationError."""
    return NativeManagerClient(address, authkey, socket_only=socket_only, timeout=timeout)


# ---- proxies ------------------------------------------------------------------------------

_TYPECODES = "cbBhHiIlLqQfd"


def _fmt(typecode):
    if not isinstance(typecode, str) or len(typecode) != 1 or typecode not in _TYPECODES:
        raise ValueError(f"typecode must be one of {_TYPECODES!r}, not {typecode!r}")
    return "@" + typecode


class _Proxy:
    _type = 0

    def __init__(self, client, handle, type_):
        self._client = client  # keeps the connection alive as long as the proxy
        self._h = handle
        self._type = type_
        self._f = _bind()

    def _handle(self):
        if self._h is None:
            raise ValueError("the proxy is closed")
        return self._h

    @property
    def token(self):
        """A string that names the object for any client of the same manager."""
        return _get_string(self._f.proxy_token, self._handle())

    @property
    def type(self):
        return self._type

    def close(self):
        """Release the proxy (the server drops its reference)."""
        h, self._h = self._h, None
        if h is not None:
            self._f.proxy_destroy(h)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self):
        return f"<{type(self).__name__} {'closed' if self._h is None else self.token}>"


class DictProxy(_Proxy):
    def __setitem__(self, key, value):
        v, n = _bytes(value)
        _check(self._f.mdict_set(self._handle(), _key(key), v, n))

    def __getitem__(self, key):
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self._f.mdict_get(self._handle(), _key(key), ctypes.byref(p), ctypes.byref(n))
        if rc == _lib.ENOENT:
            raise KeyError(key)
        _check(rc)
        return _take(p, n)

    def __delitem__(self, key):
        rc = self._f.mdict_pop(self._handle(), _key(key), None, None)
        if rc == _lib.ENOENT:
            raise KeyError(key)
        _check(rc)

    def __contains__(self, key):
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __len__(self):
        n = ctypes.c_size_t()
        _check(self._f.mdict_len(self._handle(), ctypes.byref(n)))
        return n.value

    def __iter__(self):
        return iter(self.keys())

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def add(self, key, value):
        """Insert only if absent (atomically): True if inserted, False if key was present."""
        v, n = _bytes(value)
        rc = self._f.mdict_add(self._handle(), _key(key), v, n)
        if rc == _lib.EEXIST:
            return False
        _check(rc)
        return True

    def setdefault(self, key, default=b""):
        self.add(key, default)
        return self[key]

    _MISSING = object()

    def pop(self, key, default=_MISSING):
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self._f.mdict_pop(self._handle(), _key(key), ctypes.byref(p), ctypes.byref(n))
        if rc == _lib.ENOENT:
            if default is DictProxy._MISSING:
                raise KeyError(key)
            return default
        _check(rc)
        return _take(p, n)

    def keys(self):
        """The keys (a list of str, a snapshot)."""
        p, n, count = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_size_t()
        _check(self._f.mdict_keys(self._handle(), ctypes.byref(p), ctypes.byref(n), ctypes.byref(count)))
        raw = _take(p, n)
        if not raw:
            return []
        parts = raw.split(b"\0")
        if parts and parts[-1] == b"":
            parts.pop()
        return [k.decode("utf-8", "surrogateescape") for k in parts]

    def values(self):
        return [v for _, v in self.items()]

    def items(self):
        out = []
        for k in self.keys():
            try:
                out.append((k, self[k]))
            except KeyError:  # removed meanwhile
                pass
        return out

    def update(self, other=(), **kw):
        items = other.items() if hasattr(other, "items") else other
        for k, v in items:
            self[k] = v
        for k, v in kw.items():
            self[k] = v

    def clear(self):
        _check(self._f.mdict_clear(self._handle()))

    def copy(self):
        return dict(self.items())


class NamespaceProxy(DictProxy):
    """A namespace: attributes are the keys (``ns.x = b"1"``); the dict operations work too."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name):
        if name.startswith("_"):
            object.__delattr__(self, name)
            return
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class ListProxy(_Proxy):
    def append(self, value):
        v, n = _bytes(value)
        _check(self._f.mlist_append(self._handle(), v, n))

    def extend(self, values):
        for v in values:
            self.append(v)

    def insert(self, index, value):
        v, n = _bytes(value)
        _check(self._f.mlist_insert(self._handle(), _clamp(index), v, n))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.tolist()[index]
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self._f.mlist_get(self._handle(), _clamp(index), ctypes.byref(p), ctypes.byref(n))
        if rc == _lib.ERANGE:
            raise IndexError("list index out of range")
        _check(rc)
        return _take(p, n)

    def __setitem__(self, index, value):
        v, n = _bytes(value)
        rc = self._f.mlist_set(self._handle(), _clamp(index), v, n)
        if rc == _lib.ERANGE:
            raise IndexError("list assignment index out of range")
        _check(rc)

    def __delitem__(self, index):
        self.pop(index)

    def pop(self, index=-1):
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self._f.mlist_pop(self._handle(), _clamp(index), ctypes.byref(p), ctypes.byref(n))
        if rc == _lib.ERANGE:
            raise IndexError("pop index out of range")
        _check(rc)
        return _take(p, n)

    def __len__(self):
        n = ctypes.c_size_t()
        _check(self._f.mlist_len(self._handle(), ctypes.byref(n)))
        return n.value

    def __iter__(self):
        return iter(self.tolist())

    def tolist(self):
        out = []
        i = 0
        while True:
            try:
                out.append(self[i])
            except IndexError:
                return out
            i += 1

    def reverse(self):
        _check(self._f.mlist_reverse(self._handle()))

    def sort(self):
        """Sort by the items' bytes (Python's order for bytes)."""
        _check(self._f.mlist_sort(self._handle()))

    def clear(self):
        _check(self._f.mlist_clear(self._handle()))


def _clamp(index):
    index = int(index)
    return max(-(1 << 63), min(index, (1 << 63) - 1))


class QueueProxy(_Proxy):
    def put(self, item, block=True, timeout=None):
        v, n = _bytes(item)
        rc = self._f.mqueue_put(self._handle(), v, n, _ms(timeout, block))
        if rc == _lib.ETIMEDOUT:
            raise _queue.Full
        _check(rc)

    def put_nowait(self, item):
        self.put(item, False)

    def get(self, block=True, timeout=None):
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = self._f.mqueue_get(self._handle(), ctypes.byref(p), ctypes.byref(n), _ms(timeout, block))
        if rc == _lib.ETIMEDOUT:
            raise _queue.Empty
        _check(rc)
        return _take(p, n)

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        n = ctypes.c_size_t()
        _check(self._f.mqueue_qsize(self._handle(), ctypes.byref(n)))
        return n.value

    def empty(self):
        return self.qsize() == 0


class JoinableQueueProxy(QueueProxy):
    def task_done(self):
        rc = self._f.mqueue_task_done(self._handle())
        if rc == _lib.EOVERFLOW:
            raise ValueError("task_done() called too many times")
        _check(rc)

    def join(self, timeout=None):
        """Block until every item put has been marked done; False at the timeout."""
        rc = self._f.mqueue_join(self._handle(), _lib.ms_from_timeout(timeout))
        if rc == _lib.ETIMEDOUT:
            return False
        _check(rc)
        return True


class LockProxy(_Proxy):
    def acquire(self, block=True, timeout=None):
        """True when acquired. When the previous owner died holding it, acquires it and warns
        (mpx.OwnerDiedWarning), as mpx's own locks do."""
        rc = self._f.mlock_acquire(self._handle(), _ms(timeout, block))
        if rc == _lib.ETIMEDOUT:
            return False
        if rc == _lib.EOWNERDEAD:
            warnings.warn(_lib.OwnerDiedWarning(f"{self!r}: the previous owner disconnected holding it"),
                          stacklevel=2)
            return True
        _check(rc)
        return True

    def release(self):
        rc = self._f.mlock_release(self._handle())
        if rc == _lib.EPERM:
            raise _lib.error(rc, cls=_lib.NotOwnedError)
        if rc == _lib.EOVERFLOW:
            raise _lib.error(rc, cls=_lib.OverReleaseError, text="semaphore or lock released too many times")
        _check(rc)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class RLockProxy(LockProxy):
    pass


class SemaphoreProxy(LockProxy):
    def get_value(self):
        v = ctypes.c_int64()
        _check(self._f.msem_value(self._handle(), ctypes.byref(v)))
        return v.value


class BoundedSemaphoreProxy(SemaphoreProxy):
    pass


class ConditionProxy(LockProxy):
    def wait(self, timeout=None):
        """Release the lock, wait for a notify, re-acquire; False at the timeout."""
        rc = self._f.mcond_wait(self._handle(), _lib.ms_from_timeout(timeout))
        if rc == _lib.ETIMEDOUT:
            return False
        if rc == _lib.EPERM:
            raise _lib.error(rc, cls=_lib.NotOwnedError)
        _check(rc)
        return True

    def wait_for(self, predicate, timeout=None):
        import time
        end = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n=1):
        rc = self._f.mcond_notify(self._handle(), n)
        if rc == _lib.EPERM:
            raise _lib.error(rc, cls=_lib.NotOwnedError)
        _check(rc)

    def notify_all(self):
        rc = self._f.mcond_notify_all(self._handle())
        if rc == _lib.EPERM:
            raise _lib.error(rc, cls=_lib.NotOwnedError)
        _check(rc)


class EventProxy(_Proxy):
    def set(self):
        _check(self._f.mevent_set(self._handle()))

    def clear(self):
        _check(self._f.mevent_clear(self._handle()))

    def is_set(self):
        v = ctypes.c_int()
        _check(self._f.mevent_is_set(self._handle(), ctypes.byref(v)))
        return bool(v.value)

    def wait(self, timeout=None):
        rc = self._f.mevent_wait(self._handle(), _lib.ms_from_timeout(timeout))
        if rc == _lib.ETIMEDOUT:
            return False
        _check(rc)
        return True


class BarrierProxy(_Proxy):
    def wait(self, timeout=None):
        """The arrival index (0 .. parties-1); threading.BrokenBarrierError when the barrier is
        broken, aborted or this wait timed out."""
        idx = ctypes.c_int64(-1)
        rc = self._f.mbarrier_wait(self._handle(), _lib.ms_from_timeout(timeout), ctypes.byref(idx))
        if rc in (_lib.EBROKEN, _lib.ETIMEDOUT):
            raise _lib.error(rc, cls=_lib.BarrierBrokenError)
        _check(rc)
        return idx.value

    def abort(self):
        _check(self._f.mbarrier_abort(self._handle()))

    def reset(self):
        _check(self._f.mbarrier_reset(self._handle()))


class ValueProxy(_Proxy):
    """A typed value (typecode as in array/ctypes: 'i', 'd', ...)."""

    def __init__(self, client, handle, type_, typecode=None):
        super().__init__(client, handle, type_)
        self._size = None
        self._typecode = typecode

    def _fmt_for(self, size):
        if self._typecode is not None:
            return _fmt(self._typecode)
        # An opened value: guess the typecode from its size (integers are signed).
        return {1: "@b", 2: "@h", 4: "@i", 8: "@q"}[size]

    def _itemsize(self):
        if self._size is None:
            if self._typecode is not None:
                self._size = struct.calcsize(_fmt(self._typecode))
            else:
                for size in (8, 4, 2, 1):
                    buf = ctypes.create_string_buffer(size)
                    if self._f.mvalue_get(self._handle(), buf, size) == 0:
                        self._size = size
                        break
                else:
                    raise _lib.error(_lib.EINVAL, "value size")
        return self._size

    @property
    def value(self):
        size = self._itemsize()
        buf = ctypes.create_string_buffer(size)
        _check(self._f.mvalue_get(self._handle(), buf, size))
        return struct.unpack(self._fmt_for(size), buf.raw)[0]

    @value.setter
    def value(self, v):
        size = self._itemsize()
        data = struct.pack(self._fmt_for(size), v)
        _check(self._f.mvalue_set(self._handle(), data, size))

    def add(self, delta):
        """Atomically add delta; the new value."""
        size = self._itemsize()
        fmt = self._fmt_for(size)
        data = struct.pack(fmt, delta)
        out = ctypes.create_string_buffer(size)
        _check(self._f.mvalue_add(self._handle(), data, out, size))
        return struct.unpack(fmt, out.raw)[0]

    def get(self):
        return self.value

    def set(self, v):
        self.value = v


class ArrayProxy(_Proxy):
    def __init__(self, client, handle, type_, typecode=None):
        super().__init__(client, handle, type_)
        self._typecode = typecode

    def _info(self):
        n, size = ctypes.c_size_t(), ctypes.c_size_t()
        _check(self._f.marray_len(self._handle(), ctypes.byref(n), ctypes.byref(size)))
        fmt = _fmt(self._typecode) if self._typecode else {1: "@b", 2: "@h", 4: "@i", 8: "@q"}[size.value]
        return n.value, size.value, fmt

    def __len__(self):
        return self._info()[0]

    def _read(self, start, count, size, fmt):
        buf = ctypes.create_string_buffer(max(1, count * size))
        _check(self._f.marray_get(self._handle(), start, count, buf))
        return [struct.unpack_from(fmt, buf.raw, i * size)[0] for i in range(count)]

    def __getitem__(self, index):
        n, size, fmt = self._info()
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return self._read(start, max(0, stop - start), size, fmt)
            return [self._read(i, 1, size, fmt)[0] for i in range(start, stop, step)]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("array index out of range")
        return self._read(i, 1, size, fmt)[0]

    def __setitem__(self, index, value):
        n, size, fmt = self._info()
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            values = list(value)
            if step != 1 or len(values) != max(0, stop - start):
                raise ValueError("can only assign a sequence of the same length to a contiguous slice")
            data = b"".join(struct.pack(fmt, v) for v in values)
            _check(self._f.marray_set(self._handle(), start, len(values), data))
            return
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("array assignment index out of range")
        _check(self._f.marray_set(self._handle(), i, 1, struct.pack(fmt, value)))

    def tolist(self):
        n, size, fmt = self._info()
        return self._read(0, n, size, fmt)

    def __iter__(self):
        return iter(self.tolist())


_CLASSES = {
    MPX_MOBJ_DICT: DictProxy, MPX_MOBJ_NAMESPACE: NamespaceProxy, MPX_MOBJ_LIST: ListProxy,
    MPX_MOBJ_QUEUE: QueueProxy, MPX_MOBJ_JOINABLE_QUEUE: JoinableQueueProxy, MPX_MOBJ_LOCK: LockProxy,
    MPX_MOBJ_RLOCK: RLockProxy, MPX_MOBJ_SEMAPHORE: SemaphoreProxy,
    MPX_MOBJ_BOUNDED_SEMAPHORE: BoundedSemaphoreProxy, MPX_MOBJ_CONDITION: ConditionProxy,
    MPX_MOBJ_EVENT: EventProxy, MPX_MOBJ_BARRIER: BarrierProxy, MPX_MOBJ_VALUE: ValueProxy,
    MPX_MOBJ_ARRAY: ArrayProxy,
}


def _wrap(client, handle, type_):
    cls = _CLASSES.get(type_, _Proxy)
    return cls(client, handle, type_)
