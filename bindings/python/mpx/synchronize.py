"""Process-shared Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier.

The API, results and exceptions are those of ``multiprocessing.synchronize`` (and, for
Barrier, ``threading.Barrier``); the objects live in mpx shared memory, so they work in
children made by ``os.fork()`` (handles are inherited) and in any other process of the same
user, in any language, that attaches by token: every object pickles as its token, so it can
be sent to a spawned process or over a pipe, and ``Lock.from_token(t)`` attaches explicitly.

Owner death
-----------
When a process dies holding a Lock or an RLock, the next ``acquire`` (blocking, timed or
not blocking) gets the lock and the library reports MPX_EOWNERDEAD. The binding then, by
default:

1. marks the lock consistent (``mpx_lock_consistent``), so that releasing it is normal and
   ``with lock:`` code keeps working;
2. issues ``warnings.warn(..., mpx.OwnerDiedWarning)`` (a RuntimeWarning subclass) from the
   caller's ``acquire`` / ``with`` line;
3. returns True, with the lock held.

The data the lock protects may be half-updated: code that cares catches the warning
(``warnings.catch_warnings(record=True)`` or a filter) and repairs it while holding the lock.

To handle it the POSIX way instead, set ``auto_consistent = False`` on the lock (or on the
class, for every lock): the lock is then left inconsistent; call ``lock.consistent()`` after
repairing, before releasing. Releasing without it makes the lock unusable: every later
acquire raises ``mpx.NotRecoverableError``.

If the warning is turned into an error (``warnings.simplefilter("error", OwnerDiedWarning)``)
the binding releases the lock before the exception leaves ``acquire`` - a ``with`` block
whose ``__enter__`` raised would otherwise leave it held forever.

Other differences from multiprocessing
--------------------------------------
* Waiting on, notifying or releasing a lock the calling thread does not own raises
  ``mpx.NotOwnedError``, which is both an AssertionError (what multiprocessing raises) and a
  RuntimeError (what threading raises).
* After ``os.fork()`` an RLock held by the parent is not owned by the child (the library
  tracks owners by thread); multiprocessing's own RLock wrongly thinks it is.
* Blocking forever in Lock/RLock/Semaphore/Event waits is done in 100 ms slices so Ctrl-C
  works; Condition.wait and Barrier.wait are single calls (a sliced condition wait could
  miss a notification) and are not interruptible by signals.
"""

import operator
import os
import threading
import warnings
import weakref
from _thread import get_ident as _get_ident
from time import monotonic as _monotonic

from . import _lib
from ._lib import (C, raw, raw_gil, new_handle, check, error, get_string, out_value, sliced_wait,
                   ms_from_timeout, OwnerDiedWarning, NotOwnedError, OverReleaseError,
                   BarrierBrokenError, c_int, c_int64, c_uint32, byref)

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"]

# Hot-path function objects: no argtypes, arguments are prebuilt ctypes instances. A blocking
# acquire first tries with the one-argument call that keeps the GIL (each ctypes argument and
# the GIL's release cost about as much as the C call), then waits through the other.
_lock_acquire = raw("mpx_lock_acquire")
_lock_try = raw_gil("mpx_lock_try_acquire")
_lock_release = raw_gil("mpx_lock_release")
_sem_acquire = raw("mpx_semaphore_acquire")
_sem_try = raw_gil("mpx_semaphore_try_acquire")
_sem_release = raw_gil("mpx_semaphore_release")
_event_wait = raw("mpx_event_wait")
_event_is_set = raw_gil("mpx_event_is_set")
_sem_value = raw_gil("mpx_semaphore_value")
_SLICE = _lib.SLICE
_ETIMEDOUT = _lib.ETIMEDOUT
_EOWNERDEAD = _lib.EOWNERDEAD
_EPERM = _lib.EPERM

_RELEASED_TOO_MANY = "semaphore or lock released too many times"


class _Shared:
    """An mpx handle owned by this Python object (destroyed with it)."""

    _h = None
    _destroy = None      # staticmethod(C function)
    _token_fn = None

    def __del__(self):
        h = self._h
        if h is not None:
            self._h = None
            try:
                type(self)._destroy(h)
            except Exception:  # interpreter shutdown
                pass

    @property
    def token(self):
        """A printable string from which another process attaches this object."""
        return get_string(type(self)._token_fn, self._h)


# ---- Lock and RLock ----------------------------------------------------------------------

class _LockBase(_Shared):
    _destroy = staticmethod(C.mpx_lock_destroy)
    _token_fn = staticmethod(C.mpx_lock_token)
    _recursive = False

    #: Mark a lock whose owner died consistent automatically (see the module docstring).
    auto_consistent = True

    def _create(self):
        opts = _lib.LockOptions()
        check(C.mpx_lock_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
        if self._recursive:
            opts.flags = _lib.MPX_LOCK_RECURSIVE
        self._h = new_handle(C.mpx_lock_create, byref(opts), what=type(self).__name__ + "()")

    @classmethod
    def _wrap(cls, handle):
        """A Lock or RLock (whichever the handle is) owning `handle`."""
        try:
            recursive = out_value(C.mpx_lock_is_recursive, handle, c_int)
        except BaseException:
            C.mpx_lock_destroy(handle)
            raise
        kind = RLock if recursive else Lock
        if cls is not _LockBase and kind is not cls:
            C.mpx_lock_destroy(handle)
            raise TypeError(f"the token names an {kind.__name__}, not a {cls.__name__}")
        self = kind.__new__(kind)
        self._h = handle
        if recursive:
            self._owner = None
            self._depth = 0
            _rlocks.add(self)
        return self

    @classmethod
    def from_token(cls, token):
        """Attach the lock a token names (from ``lock.token``, any process, any language)."""
        return cls._wrap(new_handle(C.mpx_lock_attach, _encode(token), what="attach lock"))

    def __reduce__(self):
        return _rebuild_lock, (self.token, type(self).__name__)

    def _acquire_failed(self, rc, stacklevel):
        """A non-zero result of mpx_lock_acquire: False on timeout, True when acquired from
        a dead owner, else raise."""
        if rc == _ETIMEDOUT:
            return False
        if rc == _EOWNERDEAD:
            self._owner_died(stacklevel + 1)
            return True
        raise error(rc, "acquire")

    def _owner_died(self, stacklevel):
        msg = last = _lib.last_error_message()
        if self.auto_consistent:
            rc = C.mpx_lock_consistent(self._h)
            if rc < 0:
                exc = error(rc, "mark the lock consistent")
                _lock_release(self._h)
                raise exc
            msg = f"{msg}; the lock was marked consistent"
        else:
            msg = f"{msg}; call consistent() after repairing, before releasing"
        try:
            warnings.warn(OwnerDiedWarning(f"{self!r}: {msg}" if last else f"{self!r}: owner died"),
                          stacklevel=stacklevel + 1)
        except BaseException:
            # The warning is an error here: do not leave the lock held behind the exception.
            _lock_release(self._h)
            raise

    def consistent(self):
        """Mark a lock acquired from a dead owner as repaired (only with auto_consistent off;
        see the module docstring)."""
        check(C.mpx_lock_consistent(self._h), "consistent")

    def locked(self):
        """True if any thread of any process holds the lock (an mpx extension)."""
        return bool(out_value(C.mpx_lock_locked, self._h, c_int))

    def _release_failed(self, rc):
        if rc == _EPERM:
            raise error(rc, cls=OverReleaseError, text=_RELEASED_TOO_MANY)
        raise error(rc, "release")

    def _is_mine(self):
        return bool(out_value(C.mpx_lock_is_owned, self._h, c_int))


class Lock(_LockBase):
    """A non-recursive lock: any thread of any process may release it.

    ``acquire(block=True, timeout=None)`` returns True, or False when a non-blocking or
    timed attempt fails; releasing an unlocked Lock raises ValueError."""

    def __init__(self):
        self._create()

    def acquire(self, block=True, timeout=None):
        rc = _lock_try(self._h)
        if not rc:
            return True
        if block and rc == _ETIMEDOUT:
            rc = sliced_wait(_lock_acquire, self._h, timeout)
            if not rc:
                return True
        return self._acquire_failed(rc, 2)

    def release(self):
        rc = _lock_release(self._h)
        if rc:
            self._release_failed(rc)

    def __enter__(self):
        rc = _lock_try(self._h)
        if rc:
            if rc == _ETIMEDOUT:
                rc = sliced_wait(_lock_acquire, self._h, None)
            if rc:
                return self._acquire_failed(rc, 2)
        return True

    def __exit__(self, t, v, tb):
        rc = _lock_release(self._h)
        if rc:
            self._release_failed(rc)

    def __repr__(self):
        try:
            if self._is_mine():
                name = _owner_name()
            elif not self.locked():
                name = "None"
            else:
                name = "SomeOtherProcess"
        except Exception:
            name = "unknown"
        return f"<{type(self).__name__}(owner={name})>"


class RLock(_LockBase):
    """A recursive lock owned by a thread: only the owner may release it.

    Nested acquires by the owning thread are counted here, in Python, without a C call;
    only the outermost acquire and release call the library."""

    _recursive = True

    def __init__(self):
        self._owner = None      # thread ident of the owner, in this process
        self._depth = 0         # nested acquires beyond the first
        self._create()
        _rlocks.add(self)

    @property
    def _count(self):
        return 0 if self._owner is None else self._depth + 1

    def acquire(self, block=True, timeout=None):
        me = _get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        rc = _lock_try(self._h)
        if block and rc == _ETIMEDOUT:
            rc = sliced_wait(_lock_acquire, self._h, timeout)
        if rc and not self._acquire_failed(rc, 2):
            return False
        self._owner = me
        return True

    def release(self):
        if self._owner != _get_ident():
            raise _not_owned("attempt to release recursive lock not owned by thread")
        if self._depth:
            self._depth -= 1
            return
        # Clear before the C release: once it returns another thread may own the lock.
        self._owner = None
        rc = _lock_release(self._h)
        if rc:
            raise error(rc, "release")

    def __enter__(self):
        me = _get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        rc = _lock_try(self._h)
        if rc:
            self._enter_slow(rc)
        self._owner = me
        return True

    def _enter_slow(self, rc):
        if rc == _ETIMEDOUT:
            rc = sliced_wait(_lock_acquire, self._h, None)
        if rc:
            self._acquire_failed(rc, 3)

    def __exit__(self, t, v, tb):
        if self._owner != _get_ident():
            raise _not_owned("attempt to release recursive lock not owned by thread")
        if self._depth:
            self._depth -= 1
            return
        self._owner = None
        rc = _lock_release(self._h)
        if rc:
            raise error(rc, "release")

    def _is_mine(self):
        return self._owner == _get_ident()

    def __repr__(self):
        try:
            if self._is_mine():
                name, count = _owner_name(), self._count
            elif not self.locked():
                name, count = "None", 0
            elif self._owner is not None:
                name, count = "SomeOtherThread", "nonzero"
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return f"<{type(self).__name__}({name}, {count})>"


def _owner_name():
    import multiprocessing.process as mpp
    name = mpp.current_process().name
    t = threading.current_thread().name
    if t != "MainThread":
        name += "|" + t
    return name


def _not_owned(text):
    exc = NotOwnedError(text)
    exc.code = _EPERM
    exc.name = "MPX_EPERM"
    return exc


# An RLock held when this process forked is not held by the child (the library records the
# owner by thread id): forget the Python-side owner in the child so both views agree.
_rlocks = weakref.WeakSet()


def _forget_rlock_owners():
    for r in list(_rlocks):
        r._owner = None
        r._depth = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_rlock_owners)


def _encode(token):
    if isinstance(token, str):
        return token.encode("utf-8")
    if isinstance(token, (bytes, bytearray)):
        return bytes(token)
    raise TypeError(f"token must be str, not {type(token).__name__}")


def _rebuild(cls, token):
    return cls.from_token(token)


def _rebuild_lock(token, kind):
    cls = {"Lock": Lock, "RLock": RLock}.get(kind, _LockBase)
    return cls.from_token(token)


# ---- Semaphore and BoundedSemaphore -----------------------------------------------------

class Semaphore(_Shared):
    """A counting semaphore: ``acquire(block=True, timeout=None)``, ``release()``,
    ``get_value()``."""

    _destroy = staticmethod(C.mpx_semaphore_destroy)
    _token_fn = staticmethod(C.mpx_semaphore_token)
    _bounded = False

    def __init__(self, value=1):
        self._create(value)

    def _create(self, value):
        value = operator.index(value)
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        if value > _lib.MPX_SEMAPHORE_VALUE_MAX:
            raise OverflowError(f"semaphore value {value} is larger than "
                                f"{_lib.MPX_SEMAPHORE_VALUE_MAX}")
        opts = _lib.SemaphoreOptions()
        check(C.mpx_semaphore_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
        if self._bounded:
            opts.flags = _lib.MPX_SEMAPHORE_BOUNDED
            opts.max_value = value
        self._h = new_handle(C.mpx_semaphore_create, value, byref(opts),
                             what=type(self).__name__ + "()")

    @classmethod
    def from_token(cls, token):
        self = cls.__new__(cls)
        self._h = new_handle(C.mpx_semaphore_attach, _encode(token), what="attach semaphore")
        return self

    def __reduce__(self):
        return _rebuild, (type(self), self.token)

    def acquire(self, block=True, timeout=None):
        rc = _sem_try(self._h)
        if not rc:
            return True
        if block and rc == _ETIMEDOUT:
            rc = sliced_wait(_sem_acquire, self._h, timeout)
        if not rc:
            return True
        if rc == _ETIMEDOUT:
            return False
        raise error(rc, "acquire")

    def release(self):
        rc = _sem_release(self._h)
        if rc:
            self._release_failed(rc)

    def __enter__(self):
        rc = _sem_try(self._h)
        if rc:
            if rc == _ETIMEDOUT:
                rc = sliced_wait(_sem_acquire, self._h, None)
            if rc:
                raise error(rc, "acquire")
        return True

    def __exit__(self, t, v, tb):
        rc = _sem_release(self._h)
        if rc:
            self._release_failed(rc)

    def _release_failed(self, rc):
        if rc == _lib.EOVERFLOW:
            raise error(rc, cls=OverReleaseError, text=_RELEASED_TOO_MANY)
        raise error(rc, "release")

    def get_value(self):
        value = c_uint32()
        rc = _sem_value(self._h, byref(value))
        if rc:
            raise error(rc, "get_value")
        return value.value

    def _get_max_value(self):
        return out_value(C.mpx_semaphore_max_value, self._h, c_uint32)

    def __repr__(self):
        try:
            value = self.get_value()
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value})>"


class BoundedSemaphore(Semaphore):
    """A semaphore that may not be released above its initial value (ValueError)."""

    _bounded = True

    def __repr__(self):
        try:
            value = self.get_value()
            maxvalue = self._get_max_value()
        except Exception:
            value = maxvalue = "unknown"
        return f"<{type(self).__name__}(value={value}, maxvalue={maxvalue})>"


# ---- Event -------------------------------------------------------------------------------

class Event(_Shared):
    """``set()``, ``clear()``, ``is_set()``, ``wait(timeout=None)`` -> bool."""

    _destroy = staticmethod(C.mpx_event_destroy)
    _token_fn = staticmethod(C.mpx_event_token)

    def __init__(self):
        self._h = new_handle(C.mpx_event_create, what="Event()")

    @classmethod
    def from_token(cls, token):
        self = cls.__new__(cls)
        self._h = new_handle(C.mpx_event_attach, _encode(token), what="attach event")
        return self

    def __reduce__(self):
        return _rebuild, (type(self), self.token)

    def is_set(self):
        flag = c_int()
        rc = _event_is_set(self._h, byref(flag))
        if rc:
            raise error(rc, "is_set")
        return flag.value != 0

    def set(self):
        check(C.mpx_event_set(self._h), "set")

    def clear(self):
        check(C.mpx_event_clear(self._h), "clear")

    def wait(self, timeout=None):
        if timeout is None:
            rc = _event_wait(self._h, _SLICE)
            if rc == _ETIMEDOUT:
                rc = sliced_wait(_event_wait, self._h, None)
        else:
            rc = sliced_wait(_event_wait, self._h, timeout)
        if not rc:
            return True
        if rc == _ETIMEDOUT:
            return False
        raise error(rc, "wait")

    def __repr__(self):
        try:
            state = "set" if self.is_set() else "unset"
        except Exception:
            state = "unknown"
        return f"<{type(self).__qualname__} at {id(self):#x} {state}>"


# ---- Condition ---------------------------------------------------------------------------

class Condition(_Shared):
    """A condition variable over an mpx Lock or RLock (a new RLock when lock is None)."""

    _destroy = staticmethod(C.mpx_condition_destroy)
    _token_fn = staticmethod(C.mpx_condition_token)

    def __init__(self, lock=None):
        if lock is None:
            lock = RLock()
        elif not isinstance(lock, _LockBase):
            raise TypeError(f"Condition needs an mpx Lock or RLock, not {type(lock).__name__}")
        self._h = new_handle(C.mpx_condition_create, lock._h, what="Condition()")
        self._set_lock(lock)

    def _set_lock(self, lock):
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release

    @classmethod
    def from_token(cls, token, lock=None):
        """Attach a condition by token; `lock` is its lock if already attached here."""
        self = cls.__new__(cls)
        self._h = new_handle(C.mpx_condition_attach, _encode(token), what="attach condition")
        if lock is None:
            lock = _LockBase._wrap(new_handle(C.mpx_condition_lock, self._h))
        self._set_lock(lock)
        return self

    def __reduce__(self):
        # The lock travels as itself so that one pickle holding both shares one object.
        return _rebuild_condition, (self.token, self._lock)

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def wait(self, timeout=None):
        lock = self._lock
        rlock = type(lock) is RLock
        ms = c_int64(ms_from_timeout(timeout))
        if rlock:
            me = _get_ident()
            if lock._owner != me:
                raise _not_owned("must acquire() condition before using wait()")
            # The C wait releases the lock completely: other threads of this process may
            # take it meanwhile, with their own Python-side depth.
            depth = lock._depth
            lock._owner = None
            lock._depth = 0
            rc = C.mpx_condition_wait(self._h, ms)
            if rc == _EPERM:
                lock._owner = me
                lock._depth = depth
                raise _not_owned("must acquire() condition before using wait()")
            lock._owner = me
            lock._depth = depth
        else:
            rc = C.mpx_condition_wait(self._h, ms)
        if not rc:
            return True
        if rc == _ETIMEDOUT:
            return False
        if rc == _EOWNERDEAD:
            lock._owner_died(2)
            return True
        if rc == _EPERM:
            raise _not_owned("must acquire() condition before using wait()")
        raise error(rc, "wait")

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = _monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - _monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n=1):
        if n < 0:
            raise ValueError("n must be >= 0")
        rc = C.mpx_condition_notify(self._h, min(n, 0xFFFFFFFF))
        if rc:
            if rc == _EPERM:
                raise _not_owned("lock is not owned")
            raise error(rc, "notify")

    def notify_all(self):
        rc = C.mpx_condition_notify_all(self._h)
        if rc:
            if rc == _EPERM:
                raise _not_owned("lock is not owned")
            raise error(rc, "notify_all")

    def __repr__(self):
        return f"<{type(self).__name__}({self._lock!r})>"


def _rebuild_condition(token, lock):
    return Condition.from_token(token, lock)


# ---- Barrier -----------------------------------------------------------------------------

class Barrier(_Shared):
    """``threading.Barrier`` across processes: ``Barrier(parties, action=None, timeout=None)``.

    ``wait(timeout=None)`` returns the arrival index (0 .. parties-1) or raises
    threading.BrokenBarrierError when the barrier is broken, aborted, reset, or the wait
    timed out (which breaks it). The last party to arrive runs `action` before anyone
    passes; if it raises, the barrier is broken and the exception propagates."""

    _destroy = staticmethod(C.mpx_barrier_destroy)
    _token_fn = staticmethod(C.mpx_barrier_token)

    def __init__(self, parties, action=None, timeout=None):
        parties = operator.index(parties)
        if parties < 1:
            raise ValueError("parties must be >= 1")
        if parties > 0xFFFFFFFF:
            raise ValueError(f"parties ({parties}) is too large")
        self._h = new_handle(C.mpx_barrier_create, parties, what="Barrier()")
        self._action = action
        self._timeout = timeout

    @classmethod
    def from_token(cls, token, action=None, timeout=None):
        self = cls.__new__(cls)
        self._h = new_handle(C.mpx_barrier_attach, _encode(token), what="attach barrier")
        self._action = action
        self._timeout = timeout
        return self

    def __reduce__(self):
        return _rebuild_barrier, (self.token, self._action, self._timeout)

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        ms = c_int64(ms_from_timeout(timeout))
        index = c_uint32()
        if self._action is None:
            rc = C.mpx_barrier_wait(self._h, ms, byref(index))
        else:
            rc = C.mpx_barrier_wait_ex(self._h, ms, _lib.MPX_BARRIER_HOLD, byref(index))
            if not rc and index.value + 1 == self.parties:
                try:
                    self._action()
                except BaseException:
                    C.mpx_barrier_abort(self._h)
                    raise
                rc = C.mpx_barrier_release(self._h)
                if rc:
                    # Broken meanwhile (a waiter timed out, abort, reset): the library
                    # then reports that the barrier is no longer held.
                    detail = _lib.last_error_message()
                    broken = rc == _lib.EBROKEN or self.broken
                    raise error(rc, "release the barrier", detail=detail,
                                cls=BarrierBrokenError if broken else None)
        if not rc:
            return index.value
        if rc in (_lib.EBROKEN, _ETIMEDOUT):
            raise error(rc, cls=BarrierBrokenError)
        raise error(rc, "wait")

    def reset(self):
        check(C.mpx_barrier_reset(self._h), "reset")

    def abort(self):
        check(C.mpx_barrier_abort(self._h), "abort")

    @property
    def parties(self):
        try:
            return self._parties
        except AttributeError:
            self._parties = out_value(C.mpx_barrier_parties, self._h, c_uint32)
            return self._parties

    @property
    def n_waiting(self):
        return out_value(C.mpx_barrier_n_waiting, self._h, c_uint32)

    @property
    def broken(self):
        return bool(out_value(C.mpx_barrier_broken, self._h, c_int))

    def __repr__(self):
        cls = type(self)
        try:
            if self.broken:
                return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: broken>"
            return (f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: "
                    f"waiters={self.n_waiting}/{self.parties}>")
        except Exception:
            return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: unknown>"


def _rebuild_barrier(token, action, timeout):
    return Barrier.from_token(token, action, timeout)
