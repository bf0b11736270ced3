"""Loading libmpx, its C prototypes, error codes and the exceptions they map to.

The library is found, in order:

1. ``MPX_LIBRARY``: an explicit path (an error if it does not load; no fallback);
2. ``libmpx.so.0`` next to this package (an installed wheel or copy);
3. the build tree of a checkout: ``<repo>/build/default/src/libmpx.so.0``;
4. the system: ``ctypes.util.find_library("mpx")``, else the SONAME ``libmpx.so.0``.

Hot-path functions are kept twice: once with ``argtypes`` for ordinary calls, and once as
raw function objects (names ending in ``_raw``) that take prebuilt ctypes arguments
(``c_void_p`` handles, ``c_int64`` timeouts) so that a lock operation is exactly one FFI
call with no argument conversion.
"""

import errno as _errno
import math
import os
import sys as _sys
from time import monotonic as _monotonic

__all__ = [
    "lib", "MpxError", "OwnerDiedWarning", "check", "error", "ms_from_timeout",
]

# ---- loading ---------------------------------------------------------------------------

_SONAME = "libmpx.so.0"
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_PKG_DIR)))


def _candidates():
    yield os.path.join(_PKG_DIR, _SONAME)
    yield os.path.join(_REPO_ROOT, "build", "default", "src", _SONAME)


def _load():
    _define_ffi()
    explicit = os.environ.get("MPX_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as e:
            raise ImportError(f"mpx: MPX_LIBRARY={explicit!r} could not be loaded: {e}") from e
    for path in _candidates():
        if os.path.exists(path):
            return ctypes.CDLL(path), path
    from ctypes.util import find_library
    found = find_library("mpx")
    for name in ([found] if found else []) + [_SONAME]:
        try:
            return ctypes.CDLL(name), name
        except OSError:
            pass
    raise ImportError(
        "mpx: libmpx.so.0 not found; set MPX_LIBRARY to its path, or build it with "
        "'cmake --preset default && cmake --build --preset default'")


# MPX_DEFER_LOAD=1: load the library on first use rather than at import. mpx's spawned
# children import mpx that way (their bootstrap sets it only while importing), so that a
# child that never calls the library does not pay for loading it.
DEFERRED = os.environ.get("MPX_DEFER_LOAD") == "1"

# ---- constants mirrored from include/mpx/*.h ---------------------------------------------

MPX_INFINITE = -1
MPX_TOKEN_MAX = 256
MPX_SEGMENT_NAME_MAX = 200
MPX_SEGMENT_RANDOM_NAME = 0x1
MPX_SEGMENT_UNTRACKED = 0x2
MPX_LOCK_RECURSIVE = 0x1
MPX_SEMAPHORE_BOUNDED = 0x1
MPX_SEMAPHORE_VALUE_MAX = 0x7FFFFFFF
MPX_BARRIER_HOLD = 0x1
MPX_ARRAY_LOCK_RLOCK = 0
MPX_ARRAY_LOCK_LOCK = 1
MPX_ARRAY_LOCK_NONE = 2
MPX_START_DEFAULT = 0
MPX_START_FORK = 1
MPX_START_FORKSERVER = 2
MPX_START_SPAWN = 3
MPX_STDIO_INHERIT = 0
MPX_STDIO_PIPE = 1
MPX_STDIO_NULL = 2
MPX_STDIO_FILE = 3
MPX_STDIO_FD = 4
MPX_ENV_INHERIT = 0
MPX_ENV_REPLACE = 1
MPX_ENV_EXTEND = 2
MPX_AUTHKEY_SIZE = 32
MPX_CONN_READABLE = 0x1
MPX_CONN_WRITABLE = 0x2
MPX_CONN_MAX_FDS = 64
MPX_CONN_DEFAULT_MAX_MESSAGE = 16 << 30
MPX_WAIT_CONN = 1
MPX_WAIT_PROCESS = 2
MPX_WAIT_FD = 3
MPX_QUEUE_JOINABLE = 0x1
MPX_QUEUE_DEFAULT_CAPACITY = 1 << 20
INT64_MAX = (1 << 63) - 1

OK = 0
EINVAL = -1
ENOMEM = -2
EBADHANDLE = -3
ETIMEDOUT = -4
EEXIST = -5
ENOENT = -6
EACCES = -7
EPERM = -8
EOWNERDEAD = -9
ENOTRECOVERABLE = -10
EOVERFLOW = -11
EBROKEN = -12
ECLOSED = -13
ECORRUPT = -14
ENOBUFS = -15
EFORKED = -16
ENOTSUP = -17
ESYS = -18
ERANGE = -19
EMFILE = -20
ENOSPC = -21
EMSGSIZE = -22
EOF = -23
EPROTO = -24
EPIPE = -25
EAUTH = -26
EWORKERDIED = -27
EADDRINUSE = -28
EAGAIN = -29
EDEADLK = -30
ETASK = -31
ECANCELED = -32

# ---- ctypes: types, option structs, prototypes ------------------------------------------
#
# Defined by _define_ffi(): at import, or on first use when DEFERRED (a spawned child that
# never calls the library does not even import ctypes).

_FFI_NAMES = frozenset([
    "ctypes", "c_void_p", "c_int", "c_int64", "c_uint32", "c_uint64", "c_size_t", "c_char_p", "P",
    "byref", "SegmentOptions", "LockOptions", "SemaphoreOptions", "ArrayOptions", "Stdio",
    "ProcessOptions", "ConnOptions", "WaitObject", "QueueOptions", "_H", "_PH", "_S",
    "_PROTOTYPES", "_PROCESS_PROTOTYPES", "_CONN_PROTOTYPES", "_QUEUE_PROTOTYPES",
    "INFINITE", "ZERO", "SLICE",
])
_ffi_defined = False


def _define_ffi():
    global ctypes, c_void_p, c_int, c_int64, c_uint32, c_uint64, c_size_t, c_char_p, P, byref
    global SegmentOptions, LockOptions, SemaphoreOptions, ArrayOptions, Stdio, ProcessOptions
    global ConnOptions, WaitObject, QueueOptions
    global _H, _PH, _S, _PROTOTYPES, _PROCESS_PROTOTYPES, _CONN_PROTOTYPES, _QUEUE_PROTOTYPES
    global INFINITE, ZERO, SLICE, _ffi_defined
    if _ffi_defined:
        return
    import ctypes

    # option structs (mirrors; the first field is the struct's own size)

    c_void_p = ctypes.c_void_p
    c_int = ctypes.c_int
    c_int64 = ctypes.c_int64
    c_uint32 = ctypes.c_uint32
    c_uint64 = ctypes.c_uint64
    c_size_t = ctypes.c_size_t
    c_char_p = ctypes.c_char_p
    P = ctypes.POINTER
    byref = ctypes.byref


    class SegmentOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32), ("name", c_char_p)]


    class LockOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32)]


    class SemaphoreOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32), ("max_value", c_uint32)]


    class ArrayOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("lock", c_uint32)]


    class Stdio(ctypes.Structure):
        _fields_ = [("mode", c_uint32), ("fd", c_int), ("path", c_char_p)]


    class ProcessOptions(ctypes.Structure):
        _fields_ = [
            ("size", c_uint32), ("method", c_uint32), ("name", c_char_p), ("daemon", c_int),
            ("fn", c_void_p), ("arg", c_void_p), ("entry", c_char_p), ("entry_fn", c_void_p),
            ("payload", c_void_p), ("payload_size", c_size_t),
            ("fds", P(c_int)), ("fd_count", c_size_t),
            ("file", c_char_p), ("argv", P(c_char_p)), ("env", P(c_char_p)), ("env_mode", c_uint32),
            ("cwd", c_char_p), ("stdio", Stdio * 3),
        ]


    class ConnOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("reserved", c_uint32), ("max_message", c_uint64)]


    class WaitObject(ctypes.Structure):
        _fields_ = [("kind", c_uint32), ("fd", c_int), ("handle", c_void_p), ("ready", c_int)]


    class QueueOptions(ctypes.Structure):
        _fields_ = [("size", c_uint32), ("flags", c_uint32), ("maxsize", c_uint64),
                    ("capacity", c_uint64), ("max_message", c_uint64)]


    # prototypes

    _H = c_void_p          # every opaque handle
    _PH = P(c_void_p)      # handle out-parameter
    _S = P(c_size_t)

    _PROTOTYPES = {
        # common.h
        "mpx_strerror": (c_char_p, [c_int]),
        "mpx_error_name": (c_char_p, [c_int]),
        "mpx_last_error_message": (c_char_p, []),
        "mpx_version": (c_uint32, []),
        "mpx_version_string": (c_char_p, []),
        "mpx_free": (None, [c_void_p]),
        # segment.h
        "mpx_segment_options_init": (c_int, [P(SegmentOptions), c_size_t]),
        "mpx_segment_create": (c_int, [_PH, c_size_t, P(SegmentOptions)]),
        "mpx_segment_attach": (c_int, [_PH, c_char_p]),
        "mpx_segment_attach_token": (c_int, [_PH, c_char_p]),
        "mpx_segment_destroy": (c_int, [_H]),
        "mpx_segment_unlink": (c_int, [_H]),
        "mpx_segment_unlink_name": (c_int, [c_char_p]),
        "mpx_segment_address": (c_int, [_H, P(c_void_p)]),
        "mpx_segment_size": (c_int, [_H, _S]),
        "mpx_segment_name": (c_int, [_H, c_char_p, _S]),
        "mpx_segment_fd": (c_int, [_H, P(c_int)]),
        "mpx_segment_token": (c_int, [_H, c_char_p, _S]),
        # sync.h: locks
        "mpx_lock_options_init": (c_int, [P(LockOptions), c_size_t]),
        "mpx_lock_create": (c_int, [_PH, P(LockOptions)]),
        "mpx_lock_attach": (c_int, [_PH, c_char_p]),
        "mpx_lock_destroy": (c_int, [_H]),
        "mpx_lock_acquire": (c_int, [_H, c_int64]),
        "mpx_lock_release": (c_int, [_H]),
        "mpx_lock_consistent": (c_int, [_H]),
        "mpx_lock_locked": (c_int, [_H, P(c_int)]),
        "mpx_lock_is_owned": (c_int, [_H, P(c_int)]),
        "mpx_lock_count": (c_int, [_H, P(c_uint32)]),
        "mpx_lock_is_recursive": (c_int, [_H, P(c_int)]),
        "mpx_lock_token": (c_int, [_H, c_char_p, _S]),
        # semaphores
        "mpx_semaphore_options_init": (c_int, [P(SemaphoreOptions), c_size_t]),
        "mpx_semaphore_create": (c_int, [_PH, c_uint32, P(SemaphoreOptions)]),
        "mpx_semaphore_attach": (c_int, [_PH, c_char_p]),
        "mpx_semaphore_destroy": (c_int, [_H]),
        "mpx_semaphore_acquire": (c_int, [_H, c_int64]),
        "mpx_semaphore_release": (c_int, [_H]),
        "mpx_semaphore_value": (c_int, [_H, P(c_uint32)]),
        "mpx_semaphore_max_value": (c_int, [_H, P(c_uint32)]),
        "mpx_semaphore_token": (c_int, [_H, c_char_p, _S]),
        # events
        "mpx_event_create": (c_int, [_PH]),
        "mpx_event_attach": (c_int, [_PH, c_char_p]),
        "mpx_event_destroy": (c_int, [_H]),
        "mpx_event_set": (c_int, [_H]),
        "mpx_event_clear": (c_int, [_H]),
        "mpx_event_is_set": (c_int, [_H, P(c_int)]),
        "mpx_event_wait": (c_int, [_H, c_int64]),
        "mpx_event_token": (c_int, [_H, c_char_p, _S]),
        # conditions
        "mpx_condition_create": (c_int, [_PH, _H]),
        "mpx_condition_attach": (c_int, [_PH, c_char_p]),
        "mpx_condition_destroy": (c_int, [_H]),
        "mpx_condition_lock": (c_int, [_H, _PH]),
        "mpx_condition_acquire": (c_int, [_H, c_int64]),
        "mpx_condition_release": (c_int, [_H]),
        "mpx_condition_wait": (c_int, [_H, c_int64]),
        "mpx_condition_notify": (c_int, [_H, c_uint32]),
        "mpx_condition_notify_all": (c_int, [_H]),
        "mpx_condition_token": (c_int, [_H, c_char_p, _S]),
        # barriers
        "mpx_barrier_create": (c_int, [_PH, c_uint32]),
        "mpx_barrier_attach": (c_int, [_PH, c_char_p]),
        "mpx_barrier_destroy": (c_int, [_H]),
        "mpx_barrier_wait": (c_int, [_H, c_int64, P(c_uint32)]),
        "mpx_barrier_wait_ex": (c_int, [_H, c_int64, c_uint32, P(c_uint32)]),
        "mpx_barrier_release": (c_int, [_H]),
        "mpx_barrier_abort": (c_int, [_H]),
        "mpx_barrier_reset": (c_int, [_H]),
        "mpx_barrier_parties": (c_int, [_H, P(c_uint32)]),
        "mpx_barrier_n_waiting": (c_int, [_H, P(c_uint32)]),
        "mpx_barrier_broken": (c_int, [_H, P(c_int)]),
        "mpx_barrier_token": (c_int, [_H, c_char_p, _S]),
        # array.h
        "mpx_array_options_init": (c_int, [P(ArrayOptions), c_size_t]),
        "mpx_typecode_size": (c_int, [ctypes.c_char, _S]),
        "mpx_array_create": (c_int, [_PH, ctypes.c_char, c_size_t, P(ArrayOptions)]),
        "mpx_array_attach": (c_int, [_PH, c_char_p]),
        "mpx_array_destroy": (c_int, [_H]),
        "mpx_array_length": (c_int, [_H, _S]),
        "mpx_array_typecode": (c_int, [_H, P(ctypes.c_char)]),
        "mpx_array_item_size": (c_int, [_H, _S]),
        "mpx_array_address": (c_int, [_H, P(c_void_p)]),
        "mpx_array_get": (c_int, [_H, c_size_t, c_void_p, c_size_t]),
        "mpx_array_set": (c_int, [_H, c_size_t, c_void_p, c_size_t]),
        "mpx_array_read": (c_int, [_H, c_size_t, c_size_t, c_void_p, c_size_t]),
        "mpx_array_write": (c_int, [_H, c_size_t, c_size_t, c_void_p, c_size_t]),
        "mpx_array_lock": (c_int, [_H, _PH]),
        "mpx_array_token": (c_int, [_H, c_char_p, _S]),
    }

    # process.h. Loaded apart from the rest so that a library built before the process API
    # still imports (mpx.process then raises ImportError); HAVE_PROCESS says which.
    _PROCESS_PROTOTYPES = {
        "mpx_process_options_init": (c_int, [P(ProcessOptions), c_size_t]),
        "mpx_process_create": (c_int, [_PH, P(ProcessOptions)]),
        "mpx_process_start": (c_int, [_H]),
        "mpx_process_join": (c_int, [_H, c_int64]),
        "mpx_process_is_alive": (c_int, [_H, P(c_int)]),
        "mpx_process_exitcode": (c_int, [_H, P(c_int)]),
        "mpx_process_signal": (c_int, [_H, c_int]),
        "mpx_process_terminate": (c_int, [_H]),
        "mpx_process_kill": (c_int, [_H]),
        "mpx_process_interrupt": (c_int, [_H]),
        "mpx_process_pid": (c_int, [_H, P(c_int64)]),
        "mpx_process_name": (c_int, [_H, c_char_p, _S]),
        "mpx_process_set_name": (c_int, [_H, c_char_p]),
        "mpx_process_daemon": (c_int, [_H, P(c_int)]),
        "mpx_process_set_daemon": (c_int, [_H, c_int]),
        "mpx_process_sentinel": (c_int, [_H, P(c_int)]),
        "mpx_process_stdio": (c_int, [_H, c_int, P(c_int)]),
        "mpx_process_close_stdio": (c_int, [_H, c_int]),
        "mpx_process_close": (c_int, [_H]),
        "mpx_process_destroy": (c_int, [_H]),
        "mpx_process_adopt": (c_int, [_PH, c_int64, P(ProcessOptions)]),
        "mpx_process_after_fork": (c_int, [P(ProcessOptions), c_int64]),
        "mpx_forkserver_start": (c_int, []),
        "mpx_forkserver_stop": (c_int, []),
        "mpx_forkserver_pid": (c_int, [P(c_int64)]),
        "mpx_active_children": (c_int, [_PH, _S]),
        "mpx_cpu_count": (c_int, [P(c_int)]),
        "mpx_current_name": (c_int, [c_char_p, _S]),
        "mpx_set_current_name": (c_int, [c_char_p]),
        "mpx_current_daemon": (c_int, [P(c_int)]),
        "mpx_parent_pid": (c_int, [P(c_int64)]),
        "mpx_authkey": (c_int, [c_char_p, _S]),
        "mpx_set_authkey": (c_int, [c_char_p, c_size_t]),
    }

    # connection.h and queue.h, each loaded as a group like process.h (HAVE_CONNECTION,
    # HAVE_QUEUE).
    _CONN_PROTOTYPES = {
        "mpx_conn_options_init": (c_int, [P(ConnOptions), c_size_t]),
        "mpx_pipe": (c_int, [c_int, P(ConnOptions), _PH, _PH]),
        "mpx_conn_from_fd": (c_int, [c_int, c_uint32, P(ConnOptions), _PH]),
        "mpx_conn_destroy": (c_int, [_H]),
        "mpx_conn_detach": (c_int, [_H, P(c_int)]),
        "mpx_conn_fileno": (c_int, [_H, P(c_int)]),
        "mpx_conn_flags": (c_int, [_H, P(c_uint32)]),
        "mpx_conn_max_message": (c_int, [_H, P(c_uint64)]),
        "mpx_conn_send": (c_int, [_H, c_void_p, c_size_t]),
        "mpx_conn_recv": (c_int, [_H, c_size_t, P(c_void_p), _S, c_int64]),
        "mpx_conn_recv_into": (c_int, [_H, c_void_p, c_size_t, _S, c_int64]),
        "mpx_conn_poll": (c_int, [_H, c_int64]),
        "mpx_conn_send_fds": (c_int, [_H, P(c_int), c_size_t]),
        "mpx_conn_recv_fds": (c_int, [_H, P(c_int), _S, c_int64]),
        "mpx_conn_send_conn": (c_int, [_H, _H]),
        "mpx_conn_recv_conn": (c_int, [_H, _PH, c_int64]),
        "mpx_conn_send_segment": (c_int, [_H, _H]),
        "mpx_conn_recv_segment": (c_int, [_H, _PH, c_int64]),
        "mpx_wait": (c_int, [P(WaitObject), c_size_t, c_int64, _S]),
    }
    _QUEUE_PROTOTYPES = {
        "mpx_queue_options_init": (c_int, [P(QueueOptions), c_size_t]),
        "mpx_queue_create": (c_int, [_PH, P(QueueOptions)]),
        "mpx_queue_attach": (c_int, [_PH, c_char_p]),
        "mpx_queue_destroy": (c_int, [_H]),
        "mpx_queue_token": (c_int, [_H, c_char_p, _S]),
        "mpx_queue_put": (c_int, [_H, c_void_p, c_size_t, c_int64]),
        "mpx_queue_get": (c_int, [_H, P(c_void_p), _S, c_int64]),
        "mpx_queue_get_into": (c_int, [_H, c_void_p, c_size_t, _S, c_int64]),
        "mpx_queue_qsize": (c_int, [_H, _S]),
        "mpx_queue_empty": (c_int, [_H, P(c_int)]),
        "mpx_queue_full": (c_int, [_H, P(c_int)]),
        "mpx_queue_maxsize": (c_int, [_H, P(c_uint64)]),
        "mpx_queue_capacity": (c_int, [_H, P(c_uint64)]),
        "mpx_queue_close": (c_int, [_H]),
        "mpx_queue_closed": (c_int, [_H, P(c_int)]),
        "mpx_queue_task_done": (c_int, [_H]),
        "mpx_queue_join": (c_int, [_H, c_int64]),
        "mpx_queue_unfinished": (c_int, [_H, P(c_uint64)]),
    }
    for cls in (SegmentOptions, LockOptions, SemaphoreOptions, ArrayOptions, Stdio, ProcessOptions,
                ConnOptions, WaitObject, QueueOptions):
        cls.__qualname__ = cls.__name__
    INFINITE = c_int64(MPX_INFINITE)
    ZERO = c_int64(0)
    SLICE = c_int64(SLICE_MS)
    _ffi_defined = True


class _Functions:
    """Namespace of typed C functions: ``C.mpx_lock_create(...)`` (the library is loaded on
    first use when DEFERRED)."""

    def __getattr__(self, name):
        if name.startswith("mpx_") and not _loaded:
            _load_now()
            return getattr(self, name)
        raise AttributeError(name)


C = _Functions()
_loaded = False
_on_load = []
_load_lock = __import__("_thread").allocate_lock()


def _optional(lib_, prototypes):
    """Bind a group of prototypes into C; False if the library lacks any of them."""
    have = True
    for name, (restype, argtypes) in prototypes.items():
        try:
            f = lib_[name]
        except AttributeError:
            have = False
            continue
        f.restype = restype
        f.argtypes = argtypes
        setattr(C, name, f)
    return have


def _load_now():
    global lib, library_path, _lib_gil, HAVE_PROCESS, HAVE_CONNECTION, HAVE_QUEUE
    global version, version_string, _loaded
    with _load_lock:
        if _loaded:
            return
        lib_, path = _load()
        for name, (restype, argtypes) in _PROTOTYPES.items():
            f = lib_[name]
            f.restype = restype
            f.argtypes = argtypes
            setattr(C, name, f)
        have_process = _optional(lib_, _PROCESS_PROTOTYPES)
        have_connection = _optional(lib_, _CONN_PROTOTYPES)
        have_queue = _optional(lib_, _QUEUE_PROTOTYPES)
        v = C.mpx_version()
        vs = C.mpx_version_string().decode()
        if v // 10000 != 0:
            raise ImportError(f"mpx: {path} is version {vs}; this binding needs 0.x")
        lib, library_path, HAVE_PROCESS, version, version_string = lib_, path, have_process, v, vs
        HAVE_CONNECTION, HAVE_QUEUE = have_connection, have_queue
        # The same library through PyDLL: calls keep the GIL (no release/re-acquire, ~20 ns
        # less). Only for calls that never block: releases, sets, queries.
        _lib_gil = ctypes.PyDLL(path, handle=lib_._handle)
        _loaded = True
    for fn in _on_load:
        fn()


def on_load(fn):
    """Call fn() once the library is loaded (now, if it is)."""
    if _loaded:
        fn()
    else:
        _on_load.append(fn)


def __getattr__(name):
    if name in ("lib", "library_path", "_lib_gil", "HAVE_PROCESS", "HAVE_CONNECTION", "HAVE_QUEUE",
                "version", "version_string"):
        _load_now()
        return globals()[name]
    if name in _FFI_NAMES:
        _define_ffi()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def raw_gil(name):
    """Like raw(), but the call keeps the GIL: only for functions that never block."""
    if not _loaded:
        _load_now()
    return _lib_gil[name]


def raw(name):
    """A separate, untyped function object for `name` (restype int): the hot path.

    Arguments must be ctypes instances of the right C type (c_void_p, c_int64, ...):
    without argtypes, ctypes would pass a Python int as a C int."""
    if not _loaded:
        _load_now()
    return lib[name]



# ---- timeouts --------------------------------------------------------------------------

# Blocking calls that wait "forever" are made in slices of this many ms, so that the
# interpreter can run signal handlers (Ctrl-C) between them. Only level-triggered waits
# (Lock, RLock, Semaphore, Event) are sliced: a Condition or Barrier wait is one call.
SLICE_MS = 100


def ms_from_timeout(timeout):
    """Python float seconds -> int milliseconds, rounding up; None -> -1 (forever).

    A negative timeout means "do not wait", as in multiprocessing; a timeout too large
    for int64 milliseconds (including infinity) blocks forever."""
    if timeout is None:
        return MPX_INFINITE
    if isinstance(timeout, float):
        t = timeout
    elif isinstance(timeout, int):
        t = float(timeout) if timeout < (1 << 62) else math.inf
    else:  # as PyFloat_AsDouble: __float__ or __index__, never a string
        try:
            t = float(timeout.__float__())
        except AttributeError:
            try:
                t = float(timeout.__index__())
            except AttributeError:
                raise TypeError(f"must be real number, not {type(timeout).__name__}") from None
    if t != t:
        raise ValueError("timeout is NaN")
    if t <= 0:
        return 0
    ms = t * 1000.0
    if ms >= INT64_MAX:
        return MPX_INFINITE
    # Rounding up never returns before the deadline; the small tolerance keeps 0.3 s from
    # becoming 301 ms because 0.3 * 1000 == 300.00000000000006.
    return max(1, math.ceil(ms - 1e-6))


def sliced_wait(fn, handle, timeout):
    """Call ``fn(handle, c_int64(ms))`` until it succeeds or `timeout` (seconds, None =
    forever) passes, in slices of at most SLICE_MS. Returns the last result code.

    Only for waits that may be retried without losing anything (level-triggered)."""
    if timeout is None:
        while True:
            rc = fn(handle, SLICE)
            if rc != ETIMEDOUT:
                return rc
    ms = ms_from_timeout(timeout)
    if ms < 0:
        return sliced_wait(fn, handle, None)
    if ms <= SLICE_MS:
        return fn(handle, c_int64(ms))
    now = _monotonic
    deadline = now() + ms / 1000.0
    while True:
        rc = fn(handle, c_int64(min(ms, SLICE_MS)))
        if rc != ETIMEDOUT:
            return rc
        left = deadline - now()
        if left <= 0:
            return rc
        ms = max(1, math.ceil(left * 1000.0 - 1e-6))


# ---- errors ----------------------------------------------------------------------------

class OwnerDiedWarning(RuntimeWarning):
    """A lock was acquired whose previous owner died holding it (MPX_EOWNERDEAD).

    The data the lock protects may be half-updated. See mpx.synchronize for the policy."""


class MpxError(Exception):
    """Base of every error raised from an mpx C call.

    Attributes: ``code`` (the negative MPX_E* number), ``name`` (e.g. "MPX_ETIMEDOUT")
    and ``message`` (the library's detail for this failure, mpx_last_error_message())."""
    code = None
    name = None
    message = ""


def _cls(name, code, *bases, doc=None):
    return type(name, (MpxError,) + bases, {"__doc__": doc or f"mpx error {code}", "__module__": "mpx"})


InvalidArgumentError = _cls("InvalidArgumentError", EINVAL, ValueError)
OutOfMemoryError = _cls("OutOfMemoryError", ENOMEM, MemoryError)
BadHandleError = _cls("BadHandleError", EBADHANDLE, ValueError)
MpxTimeoutError = _cls("MpxTimeoutError", ETIMEDOUT, TimeoutError)
MpxFileExistsError = _cls("MpxFileExistsError", EEXIST, FileExistsError)
MpxFileNotFoundError = _cls("MpxFileNotFoundError", ENOENT, FileNotFoundError)
MpxPermissionError = _cls("MpxPermissionError", EACCES, PermissionError)
NotPermittedError = _cls("NotPermittedError", EPERM, PermissionError)
OwnerDiedError = _cls("OwnerDiedError", EOWNERDEAD, RuntimeError)
NotRecoverableError = _cls(
    "NotRecoverableError", ENOTRECOVERABLE, RuntimeError,
    doc="The lock's owner died and it was released without being marked consistent; "
        "it can no longer be acquired (MPX_ENOTRECOVERABLE).")
MpxOverflowError = _cls("MpxOverflowError", EOVERFLOW, OverflowError)
BrokenError = _cls("BrokenError", EBROKEN, RuntimeError)
ClosedError = _cls("ClosedError", ECLOSED, ValueError)
CorruptError = _cls("CorruptError", ECORRUPT, RuntimeError)
BufferTooSmallError = _cls("BufferTooSmallError", ENOBUFS, ValueError)
ForkedError = _cls("ForkedError", EFORKED, RuntimeError)
MpxIndexError = _cls("MpxIndexError", ERANGE, IndexError)
MpxEOFError = _cls("MpxEOFError", EOF, EOFError)
MpxBrokenPipeError = _cls("MpxBrokenPipeError", EPIPE, BrokenPipeError)
WorkerDiedError = _cls("WorkerDiedError", EWORKERDIED, RuntimeError)
MpxBlockingIOError = _cls("MpxBlockingIOError", EAGAIN, BlockingIOError)
MpxOSError = _cls("MpxOSError", ESYS, OSError)
try:
    from multiprocessing import AuthenticationError as _AuthBase
except ImportError:  # pragma: no cover
    _AuthBase = PermissionError
AuthenticationError = _cls("AuthenticationError", EAUTH, _AuthBase)

# Raised where multiprocessing raises AssertionError and threading RuntimeError (waiting on,
# notifying or releasing a lock the caller does not own): catching either works.
NotOwnedError = type("NotOwnedError", (MpxError, AssertionError, RuntimeError), {
    "__doc__": "The calling thread does not own the lock (AssertionError in "
               "multiprocessing, RuntimeError in threading: this is both).",
    "__module__": "mpx"})

# Raised, as in multiprocessing, when a Lock or a bounded Semaphore is released too often.
OverReleaseError = type("OverReleaseError", (MpxError, ValueError), {
    "__doc__": "semaphore or lock released too many times (ValueError, as in multiprocessing)",
    "__module__": "mpx"})

# Raised by Barrier.wait: threading.BrokenBarrierError, carrying the mpx code.
import threading as _threading
BarrierBrokenError = type("BarrierBrokenError", (BrokenError, _threading.BrokenBarrierError), {
    "__doc__": "The barrier is broken (threading.BrokenBarrierError).", "__module__": "mpx"})

# Raised by a queue that was shut down (mpx_queue_close, Queue.shutdown()): queue.ShutDown on
# Python 3.13+, whose queue.Queue.shutdown() it mirrors; always a ValueError, as a closed
# multiprocessing queue raises.
# (Before 3.13 the queue module, 1.4 ms of a spawned child's start here, is not imported.)
if _sys.version_info >= (3, 13):
    from queue import ShutDown as _ShutDownBase
    _shutdown_bases = (ClosedError, _ShutDownBase)
else:
    _shutdown_bases = (ClosedError,)
QueueShutDown = type("QueueShutDown", _shutdown_bases, {
    "__doc__": "The queue was shut down (queue.ShutDown on Python 3.13+, and a ValueError).",
    "__module__": "mpx"})

_CLASSES = {
    EINVAL: InvalidArgumentError, ENOMEM: OutOfMemoryError, EBADHANDLE: BadHandleError,
    ETIMEDOUT: MpxTimeoutError, EEXIST: MpxFileExistsError, ENOENT: MpxFileNotFoundError,
    EACCES: MpxPermissionError, EPERM: NotPermittedError, EOWNERDEAD: OwnerDiedError,
    ENOTRECOVERABLE: NotRecoverableError, EOVERFLOW: MpxOverflowError, EBROKEN: BrokenError,
    ECLOSED: ClosedError, ECORRUPT: CorruptError, ENOBUFS: BufferTooSmallError,
    EFORKED: ForkedError, ENOTSUP: MpxOSError, ESYS: MpxOSError, ERANGE: MpxIndexError,
    EMFILE: MpxOSError, ENOSPC: MpxOSError, EMSGSIZE: MpxOSError, EOF: MpxEOFError,
    EPROTO: MpxOSError, EPIPE: MpxBrokenPipeError, EAUTH: AuthenticationError,
    EWORKERDIED: WorkerDiedError, EADDRINUSE: MpxOSError, EAGAIN: MpxBlockingIOError,
    EDEADLK: MpxOSError, ETASK: MpxError, ECANCELED: MpxError,
}

# errno for the OSError-derived classes.
_ERRNO = {
    EEXIST: _errno.EEXIST, ENOENT: _errno.ENOENT, EACCES: _errno.EACCES, EPERM: _errno.EPERM,
    ETIMEDOUT: _errno.ETIMEDOUT, ENOTSUP: _errno.ENOTSUP, EMFILE: _errno.EMFILE,
    ENOSPC: _errno.ENOSPC, EMSGSIZE: _errno.EMSGSIZE, EPROTO: _errno.EPROTO,
    EPIPE: _errno.EPIPE, EADDRINUSE: _errno.EADDRINUSE, EAGAIN: _errno.EAGAIN,
    EDEADLK: _errno.EDEADLK, ESYS: _errno.EIO, EINVAL: _errno.EINVAL,
}


def strerror(code):
    return C.mpx_strerror(code).decode("utf-8", "replace")


def error_name(code):
    return C.mpx_error_name(code).decode("utf-8", "replace")


def last_error_message():
    return C.mpx_last_error_message().decode("utf-8", "replace")


def error(code, what=None, cls=None, detail=None, text=None, filename=None):
    """The exception for result `code`; call right after the failing call, in its thread,
    so that the library's detail message is still the one for this failure."""
    if detail is None:
        detail = last_error_message()
    cls = cls or _CLASSES.get(code, MpxError)
    if text is None:
        text = strerror(code)
        if detail and detail != text:
            text = f"{text}: {detail}"
        if what:
            text = f"{what}: {text}"
    if issubclass(cls, OSError):
        eno = _ERRNO.get(code, _errno.EIO)
        exc = cls(eno, text) if filename is None else cls(eno, text, filename)
    else:
        exc = cls(text)
    exc.code = code
    exc.name = error_name(code)
    exc.message = detail
    return exc


def check(rc, what=None):
    """Raise the mapped exception if `rc` is an error; return rc otherwise."""
    if rc < 0:
        raise error(rc, what)
    return rc


def new_handle(create, *args, what=None):
    """Call a ``mpx_*_create``/``_attach`` function and return its handle as c_void_p."""
    h = c_void_p()
    rc = create(byref(h), *args)
    if rc < 0:
        raise error(rc, what)
    return h


def get_string(fn, handle):
    """Read a string through the (buf, *len) in/out convention (retrying on MPX_ENOBUFS)."""
    size = MPX_TOKEN_MAX
    while True:
        buf = ctypes.create_string_buffer(size)
        n = c_size_t(size)
        rc = fn(handle, buf, byref(n))
        if rc == ENOBUFS and n.value > size:
            size = n.value
            continue
        check(rc)
        return buf.raw[:n.value].decode("utf-8")


def out_value(fn, handle, ctype):
    v = ctype()
    check(fn(handle, byref(v)))
    return v.value


# Last: everything the loader and its hooks use is defined by now.
if not DEFERRED:
    _define_ffi()
    _load_now()


# ---- pool.h: process pools (issue 5) ---------------------------------------------------------
#
# Kept apart from the groups above (and bound on first use by pool_ffi()), so that a library
# built before pool.h still imports; pool_ffi().have says whether it has the pool API.

MPX_POOL_EXTERNAL = 0x1
MPX_MAP_ORDERED = 0x1
RECORD_HEADER_SIZE = 32   # sizeof(mpx_record_header): u64 tag, u64 size, i32 status, i32 code, u32 message, u32 reserved

_pool_ffi = None


class _PoolFFI:
    """The pool.h structs and whether the library has the pool API (``have``)."""


def pool_ffi():
    """The pool.h mirrors (PoolOptions, WorkerTask, PoolStats, Progress, Task, Map) with the
    prototypes bound into C (loads the library if it is deferred)."""
    global _pool_ffi
    if _pool_ffi is not None:
        return _pool_ffi
    if not _loaded:
        _load_now()
    with _load_lock:
        if _pool_ffi is not None:
            return _pool_ffi
        ns = _PoolFFI()

        class PoolOptions(ctypes.Structure):
            _fields_ = [
                ("size", c_uint32), ("workers", ctypes.c_int32), ("method", c_uint32), ("flags", c_uint32),
                ("maxtasksperchild", c_int64), ("max_worker_memory", c_uint64), ("task_timeout_ms", c_int64),
                ("initializer", c_void_p), ("initializer_name", c_char_p),
                ("initargs", c_void_p), ("initargs_size", c_size_t), ("name", c_char_p),
                ("file", c_char_p), ("argv", P(c_char_p)), ("env", P(c_char_p)), ("env_mode", c_uint32),
                ("reserved", c_uint32), ("queue_capacity", c_uint64),
            ]

        class WorkerTask(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("flags", c_uint32), ("name", c_void_p),
                        ("arg", c_void_p), ("arg_size", c_size_t)]

        class PoolStats(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("reserved", c_uint32),
                        ("tasks_submitted", c_uint64), ("tasks_succeeded", c_uint64),
                        ("tasks_failed", c_uint64), ("workers_started", c_uint64),
                        ("workers_died", c_uint64), ("workers_retired", c_uint64)]

        class Progress(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("reserved", c_uint32), ("total", c_uint64),
                        ("done", c_uint64), ("failed", c_uint64), ("elapsed_s", ctypes.c_double),
                        ("rate", ctypes.c_double), ("eta_s", ctypes.c_double)]

        class Task(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("reserved", c_uint32), ("fn", c_void_p), ("name", c_char_p),
                        ("arg", c_void_p), ("arg_size", c_size_t), ("timeout_ms", c_int64),
                        ("callback", c_void_p), ("ctx", c_void_p)]

        class Map(ctypes.Structure):
            _fields_ = [("size", c_uint32), ("flags", c_uint32), ("fn", c_void_p), ("name", c_char_p),
                        ("items", P(c_void_p)), ("sizes", P(c_size_t)), ("data", c_void_p),
                        ("item_size", c_size_t), ("count", c_size_t), ("chunksize", c_size_t),
                        ("timeout_ms", c_int64), ("callback", c_void_p), ("ctx", c_void_p)]

        for cls in (PoolOptions, WorkerTask, PoolStats, Progress, Task, Map):
            cls.__qualname__ = cls.__name__
            setattr(ns, cls.__name__, cls)
        _PP = P(PoolOptions)
        prototypes = {
            "mpx_task_return": (c_int, [c_void_p, c_void_p, c_size_t]),
            "mpx_task_reserve": (c_int, [c_void_p, c_size_t, P(c_void_p)]),
            "mpx_task_error": (c_int, [c_void_p, c_char_p]),
            "mpx_register_task": (c_int, [c_char_p, c_void_p]),
            "mpx_pool_options_init": (c_int, [_PP, c_size_t]),
            "mpx_pool_create": (c_int, [_PH, _PP]),
            "mpx_pool_close": (c_int, [_H]),
            "mpx_pool_terminate": (c_int, [_H]),
            "mpx_pool_join": (c_int, [_H, c_int64]),
            "mpx_pool_destroy": (c_int, [_H]),
            "mpx_pool_size": (c_int, [_H, _S]),
            "mpx_pool_worker_pids": (c_int, [_H, P(c_int64), _S]),
            "mpx_pool_stats_get": (c_int, [_H, P(PoolStats)]),
            "mpx_task_init": (c_int, [P(Task), c_size_t]),
            "mpx_map_init": (c_int, [P(Map), c_size_t]),
            "mpx_pool_apply_async": (c_int, [_H, P(Task), _PH]),
            "mpx_pool_apply": (c_int, [_H, P(Task), P(c_void_p), _S]),
            "mpx_pool_map": (c_int, [_H, P(Map), _PH]),
            "mpx_job_wait": (c_int, [_H, c_int64]),
            "mpx_job_ready": (c_int, [_H, P(c_int)]),
            "mpx_job_successful": (c_int, [_H, P(c_int)]),
            "mpx_job_count": (c_int, [_H, _S]),
            "mpx_job_result": (c_int, [_H, c_size_t, P(c_void_p), _S]),
            "mpx_job_error": (c_int, [_H, c_size_t, P(c_int), P(c_int), c_char_p, _S]),
            "mpx_job_next": (c_int, [_H, c_int64, _S]),
            "mpx_job_progress": (c_int, [_H, P(Progress)]),
            "mpx_job_cancel": (c_int, [_H, _S]),
            "mpx_job_destroy": (c_int, [_H]),
            "mpx_pool_submit": (c_int, [_H, c_char_p, c_void_p, c_size_t, c_size_t, c_int64]),
            "mpx_pool_collect": (c_int, [_H, c_void_p, c_size_t, _S, _S, c_int64]),
            "mpx_pool_add_worker": (c_int, [_H, c_int64]),
            "mpx_pool_worker_exited": (c_int, [_H, c_int64, c_int]),
            "mpx_pool_wanted": (c_int, [_H, _S]),
            "mpx_pool_token": (c_int, [_H, c_char_p, _S]),
            "mpx_worker_attach": (c_int, [c_char_p, _PH]),
            "mpx_worker_next": (c_int, [_H, c_int64, P(WorkerTask)]),
            "mpx_worker_reply": (c_int, [_H, c_int, c_void_p, c_size_t, c_char_p]),
            "mpx_worker_detach": (c_int, [_H]),
            "mpx_worker_main": (c_int, []),
        }
        ns.have = _optional(lib, prototypes)
        _pool_ffi = ns
    return ns
