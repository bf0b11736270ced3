"""ctypes objects in mpx shared memory: RawValue, RawArray, Value, Array.

Same API as ``multiprocessing.sharedctypes``: ``RawValue``/``RawArray`` return ctypes
objects (``.value``, indexing, slicing, ``len``, ``.value``/``.raw`` for 'c' arrays);
``Value``/``Array`` wrap them with a lock (an RLock by default; ``lock=False`` gives the raw
object; ``lock=`` an mpx Lock/RLock uses that one) and expose ``get_lock()``, ``get_obj()``,
``acquire()``, ``release()`` and the context-manager protocol.

Each object is an mpx array (a typed segment the C API and other languages see too); the
Python object is a ctypes view made with ``from_address`` over its memory, so element access
is plain ctypes, with no FFI call. The view's type is a subclass of the requested ctypes type
(``isinstance(v, ctypes.c_int)`` holds) whose only addition is pickling: it pickles as the
array's token, so a spawned or unrelated process attaches the same memory rather than a copy.

As in multiprocessing, reading or writing ``.value`` (or an item) of a synchronized object
takes its lock; a compound update needs the lock around it:
``with v.get_lock(): v.value += 1``. When the calling thread already holds the object's
RLock, the property skips the (recursive) acquire: it is already protected.
"""

import ctypes
import itertools
import math

from . import _lib
from ._lib import C, new_handle, out_value, get_string, check, c_void_p, c_size_t, byref
from .synchronize import RLock, _LockBase, _get_ident, _encode, _lock_try, _lock_release

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized", "attach"]

typecode_to_type = {
    'c': ctypes.c_char,     'u': ctypes.c_wchar,
    'b': ctypes.c_byte,     'B': ctypes.c_ubyte,
    'h': ctypes.c_short,    'H': ctypes.c_ushort,
    'i': ctypes.c_int,      'I': ctypes.c_uint,
    'l': ctypes.c_long,     'L': ctypes.c_ulong,
    'q': ctypes.c_longlong, 'Q': ctypes.c_ulonglong,
    'f': ctypes.c_float,    'd': ctypes.c_double
}

# The element types mpx arrays know (not 'u'), back to their typecode.
_MPX_TYPECODES = "cbBhHiIlLqQfd"
_type_to_typecode = {}
for _tc in _MPX_TYPECODES:
    _type_to_typecode.setdefault(typecode_to_type[_tc], _tc)


# ---- the memory: an mpx array handle, and typed views over it ---------------------------

class _ArrayRef:
    """Owns one mpx_array handle; every view over its memory keeps it alive."""

    __slots__ = ("h", "__weakref__")

    def __init__(self, h):
        self.h = h

    def __del__(self):
        h = self.h
        if h is not None:
            self.h = None
            try:
                C.mpx_array_destroy(h)
            except Exception:
                pass

    def token(self):
        return get_string(C.mpx_array_token, self.h)

    def nbytes(self):
        n = out_value(C.mpx_array_length, self.h, c_size_t)
        return n * out_value(C.mpx_array_item_size, self.h, c_size_t)

    def lock(self):
        """A Python RLock/Lock over the array's own lock, or None for a raw array."""
        h = c_void_p()
        rc = C.mpx_array_lock(self.h, byref(h))
        if rc == _lib.ENOENT:
            return None
        check(rc, "array lock")
        return _LockBase._wrap(h)


_shared_types = {}      # ctypes type -> its shared subclass
_shared_bases = {}      # shared subclass -> ctypes type


def _simple_repr(self):
    return f"{type(self).__name__}({self.value!r})"


def _reduce_shared(self):
    base = _shared_bases[type(self)]
    if issubclass(base, ctypes.Array):
        return _rebuild_raw, (self._mpx.token(), base._type_, base._length_)
    return _rebuild_raw, (self._mpx.token(), base, None)


def _shared_type(type_):
    try:
        return _shared_types[type_]
    except KeyError:
        pass
    ns = {"__reduce__": _reduce_shared, "__module__": __name__}
    if issubclass(type_, ctypes._SimpleCData):
        ns["__repr__"] = _simple_repr
    cls = type(type_.__name__, (type_,), ns)
    _shared_types[type_] = cls
    _shared_bases[cls] = type_
    return cls


def _base_type(t):
    return _shared_bases.get(t, t)


def _layout(type_):
    """(typecode, length) of the mpx array that holds one `type_` object."""
    if type_ in _type_to_typecode:
        return _type_to_typecode[type_], 1
    if issubclass(type_, ctypes.Array) and type_._type_ in _type_to_typecode:
        return _type_to_typecode[type_._type_], max(1, type_._length_)
    # Anything else (structures, c_wchar, arrays of those): 8-byte words, with room to
    # align to more than 8 if the type needs it.
    align = ctypes.alignment(type_)
    words = max(1, math.ceil(ctypes.sizeof(type_) / 8))
    if align > 8:
        words += math.ceil(align / 8)
    return "Q", words


def _view(ref, type_):
    addr = out_value(C.mpx_array_address, ref.h, c_void_p)
    offset = (-addr) % ctypes.alignment(type_)
    if offset + ctypes.sizeof(type_) > ref.nbytes():
        raise ValueError(f"the shared array is too small for {type_.__name__}")
    obj = _shared_type(type_).from_address(addr + offset)
    obj._mpx = ref
    return obj


def _new_value(type_, lock_kind=_lib.MPX_ARRAY_LOCK_NONE):
    """A zero-filled `type_` object in a new mpx array; returns (object, _ArrayRef)."""
    ctypes.sizeof(type_)  # TypeError("this type has no size") for non-ctypes, like multiprocessing
    typecode, length = _layout(type_)
    opts = _lib.ArrayOptions()
    check(C.mpx_array_options_init(byref(opts), ctypes.sizeof(opts)))
    opts.lock = lock_kind
    ref = _ArrayRef(new_handle(C.mpx_array_create, typecode.encode(), length, byref(opts),
                               what="allocate shared array"))
    return _view(ref, type_), ref


def _rebuild_raw(token, elem, length):
    type_ = elem if length is None else elem * length
    ref = _ArrayRef(new_handle(C.mpx_array_attach, _encode(token), what="attach shared array"))
    return _view(ref, type_)


def _type_of(typecode_or_type):
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def _check_lock(lock):
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)


# ---- the multiprocessing API -------------------------------------------------------------

def RawValue(typecode_or_type, *args):
    """A ctypes object allocated from shared memory."""
    type_ = _type_of(typecode_or_type)
    obj, _ = _new_value(type_)
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """A ctypes array allocated from shared memory."""
    type_ = _type_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        obj, _ = _new_value(type_ * size_or_initializer)
        return obj
    type_ = type_ * len(size_or_initializer)
    obj, _ = _new_value(type_)
    obj.__init__(*size_or_initializer)
    return obj


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A synchronized wrapper around a RawValue (or the RawValue itself with lock=False)."""
    if lock is False:
        return RawValue(typecode_or_type, *args)
    type_ = _type_of(typecode_or_type)
    if lock in (True, None):
        # The array carries its own RLock: C code and other processes attaching its token
        # get the same lock.
        obj, ref = _new_value(type_, _lib.MPX_ARRAY_LOCK_RLOCK)
        obj.__init__(*args)
        return synchronized(obj, ref.lock())
    _check_lock(lock)
    return synchronized(RawValue(type_, *args), lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A synchronized wrapper around a RawArray (or the RawArray itself with lock=False)."""
    if lock is False:
        return RawArray(typecode_or_type, size_or_initializer)
    if lock in (True, None):
        type_ = _type_of(typecode_or_type)
        if isinstance(size_or_initializer, int):
            obj, ref = _new_value(type_ * size_or_initializer, _lib.MPX_ARRAY_LOCK_RLOCK)
        else:
            obj, ref = _new_value(type_ * len(size_or_initializer), _lib.MPX_ARRAY_LOCK_RLOCK)
            obj.__init__(*size_or_initializer)
        return synchronized(obj, ref.lock())
    _check_lock(lock)
    return synchronized(RawArray(typecode_or_type, size_or_initializer), lock)


def copy(obj):
    """A new shared object with a copy of obj's contents."""
    new_obj, _ = _new_value(_base_type(type(obj)))
    ctypes.memmove(ctypes.addressof(new_obj), ctypes.addressof(obj), ctypes.sizeof(obj))
    return new_obj


def attach(token, typecode_or_type=None, size=None, *, lock=True):
    """Attach a shared value or array by token (from ``token_of(obj)``, or an mpx array made
    by C or another language).

    Without `typecode_or_type` the array's own typecode and length are used (a length-1
    array is returned as a value unless `size` is given). With ``lock=True`` the result is
    synchronized by the array's own lock when it has one (the lock every process shares);
    an array without a lock, or ``lock=False``, gives the raw ctypes object."""
    ref = _ArrayRef(new_handle(C.mpx_array_attach, _encode(token), what="attach shared array"))
    if typecode_or_type is None:
        tc = out_value(C.mpx_array_typecode, ref.h, ctypes.c_char).decode()
        type_ = typecode_to_type[tc]
        if size is None:
            n = out_value(C.mpx_array_length, ref.h, c_size_t)
            size = None if n == 1 else n
    else:
        type_ = _type_of(typecode_or_type)
    if size is not None:
        type_ = type_ * size
    obj = _view(ref, type_)
    if lock is False:
        return obj
    own = ref.lock()
    return obj if own is None else synchronized(obj, own)


def token_of(obj):
    """The token of a shared value or array (raw or synchronized)."""
    if isinstance(obj, SynchronizedBase):
        obj = obj._obj
    try:
        ref = obj._mpx
    except AttributeError:
        raise TypeError(f"{type(obj).__name__} object is not in mpx shared memory") from None
    return ref.token()


def synchronized(obj, lock=None, ctx=None):
    assert not isinstance(obj, SynchronizedBase), 'object already synchronized'
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    elif isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    else:
        cls = type(obj)
        try:
            scls = _class_cache[cls]
        except KeyError:
            names = [field[0] for field in cls._fields_]
            d = {name: make_property(name) for name in names}
            classname = 'Synchronized' + cls.__name__
            scls = _class_cache[cls] = type(classname, (SynchronizedBase,), d)
        return scls(obj, lock, ctx)


# ---- synchronized wrappers -----------------------------------------------------------------

class _NotAnRLock:
    _owner = None


_NOT_AN_RLOCK = _NotAnRLock()

# The accessors skip the lock when the calling thread already holds the wrapper's RLock
# (`with v.get_lock(): v.value += 1`): the nested acquire would only count. Otherwise they
# take an mpx RLock inline (the two FFI calls, no RLock method frames); any other lock
# through its acquire/release methods.
_template = '''
def get{0}(self):
    rl = self._rl
    me = _get_ident()
    if rl._owner == me:
        return self._obj.{0}
    if rl is _NOT_AN_RLOCK:
        self.acquire()
        try:
            return self._obj.{0}
        finally:
            self.release()
    rc = _lock_try(rl._h)
    if rc:
        rl._enter_slow(rc)
    rl._owner = me
    try:
        return self._obj.{0}
    finally:
        rl._owner = None
        rc = _lock_release(rl._h)
        if rc:
            raise _error(rc, "release")
def set{0}(self, value):
    rl = self._rl
    me = _get_ident()
    if rl._owner == me:
        self._obj.{0} = value
        return
    if rl is _NOT_AN_RLOCK:
        self.acquire()
        try:
            self._obj.{0} = value
        finally:
            self.release()
        return
    rc = _lock_try(rl._h)
    if rc:
        rl._enter_slow(rc)
    rl._owner = me
    try:
        self._obj.{0} = value
    finally:
        rl._owner = None
        rc = _lock_release(rl._h)
        if rc:
            raise _error(rc, "release")
{0} = property(get{0}, set{0})
'''

_prop_cache = {}
_class_cache = {}


def make_property(name):
    try:
        return _prop_cache[name]
    except KeyError:
        d = {"_get_ident": _get_ident, "_NOT_AN_RLOCK": _NOT_AN_RLOCK,
             "_lock_try": _lock_try, "_lock_release": _lock_release, "_error": _lib.error}
        exec(_template.format(name), d)
        _prop_cache[name] = d[name]
        return d[name]


class SynchronizedBase:

    def __init__(self, obj, lock=None, ctx=None):
        self._obj = obj
        if lock:
            self._lock = lock
        else:
            self._lock = RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._rl = self._lock if type(self._lock) is RLock else _NOT_AN_RLOCK
        # get_lock() is on the hot path (`with v.get_lock(): ...`): a C-level callable
        # returning the lock costs less than a Python method.
        self.get_lock = itertools.repeat(self._lock).__next__

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        return synchronized, (self._obj, self._lock)

    def get_obj(self):
        return self._obj

    def get_lock(self):
        return self._lock

    @property
    def token(self):
        """The token of the shared object (see attach())."""
        return token_of(self._obj)

    def __repr__(self):
        return '<%s wrapper for %s>' % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):
    value = make_property('value')


class SynchronizedArray(SynchronizedBase):

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        rl = self._rl
        me = _get_ident()
        if rl._owner == me:
            return self._obj[i]
        if rl is _NOT_AN_RLOCK:
            with self._lock:
                return self._obj[i]
        rc = _lock_try(rl._h)
        if rc:
            rl._enter_slow(rc)
        rl._owner = me
        try:
            return self._obj[i]
        finally:
            rl._owner = None
            rc = _lock_release(rl._h)
            if rc:
                raise _lib.error(rc, "release")

    def __setitem__(self, i, value):
        rl = self._rl
        me = _get_ident()
        if rl._owner == me:
            self._obj[i] = value
            return
        if rl is _NOT_AN_RLOCK:
            with self._lock:
                self._obj[i] = value
            return
        rc = _lock_try(rl._h)
        if rc:
            rl._enter_slow(rc)
        rl._owner = me
        try:
            self._obj[i] = value
        finally:
            rl._owner = None
            rc = _lock_release(rl._h)
            if rc:
                raise _lib.error(rc, "release")

    def __getslice__(self, start, stop):
        return self[start:stop]

    def __setslice__(self, start, stop, values):
        self[start:stop] = values


class SynchronizedString(SynchronizedArray):
    value = make_property('value')
    raw = make_property('raw')
