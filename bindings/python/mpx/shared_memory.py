"""Named shared memory: SharedMemory and ShareableList, as in multiprocessing.shared_memory.

``SharedMemory(name=None, create=False, size=0)`` creates (exclusively, mode 0600, whatever
the umask) or attaches a named POSIX segment through libmpx; ``name``, ``size``, ``buf``
(a memoryview), ``close()`` and ``unlink()`` behave as in Python, including the exceptions:
FileExistsError, FileNotFoundError, PermissionError (mpx attaches only its own user's 0600
segments), ValueError for a bad size or a missing name. Segments are the plain POSIX
objects Python and C use, so each side can attach what the other created.

Differences: random names are ``mpx_<16 hex digits>`` (64 random bits) rather than
``psm_<8 hex digits>``. Segments are not registered with multiprocessing's resource tracker
(it unlinks segments still in use by others, gh-82300) but with mpx's: a segment created
with ``track=True`` (the default) is unlinked once its creating process has exited and no
mpx handle on it remains in any process; ``track=False`` leaves it until ``unlink()``, as in
Python 3.13. ``token`` gives the mpx token of the segment.

``ShareableList`` is the standard library's class (same format, same semantics, an instance
of ``multiprocessing.shared_memory.ShareableList``) storing its data in an mpx SharedMemory.
"""

import errno as _errno
import mmap
import os
import types

import multiprocessing.shared_memory as _std

from . import _lib
from ._lib import C, c_void_p, c_int, c_size_t, byref, get_string, out_value

__all__ = ["SharedMemory", "ShareableList"]

_OS_ERRORS = {
    _lib.EEXIST: (_lib.MpxFileExistsError, _errno.EEXIST),
    _lib.ENOENT: (_lib.MpxFileNotFoundError, _errno.ENOENT),
    _lib.EACCES: (_lib.MpxPermissionError, _errno.EACCES),
    _lib.EINVAL: (_lib.MpxOSError, _errno.EINVAL),
}


def _segment_error(rc, name):
    """The exception Python's SharedMemory raises for the same failure."""
    detail = _lib.last_error_message()
    cls, eno = _OS_ERRORS.get(rc, (None, None))
    if cls is None:
        return _lib.error(rc, "shared memory", detail=detail)
    exc = cls(eno, os.strerror(eno), "/" + name if name else name)
    exc.code = rc
    exc.name = _lib.error_name(rc)
    exc.message = detail
    return exc


class SharedMemory:
    """Creates a new shared memory block or attaches to an existing one (see the module
    docstring)."""

    _seg = None
    _name = None
    _mmap = None
    _buf = None
    _size = 0

    def __init__(self, name=None, create=False, size=0, *, track=True):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        self._track = track

        if name is not None:
            encoded = os.fsencode(name)
            if b"\0" in encoded:
                raise ValueError("embedded null character")
        seg = c_void_p()
        if create:
            opts = _lib.SegmentOptions()
            _lib.check(C.mpx_segment_options_init(byref(opts), _lib.ctypes.sizeof(opts)))
            if name is None:
                opts.flags = _lib.MPX_SEGMENT_RANDOM_NAME
            else:
                opts.name = encoded
            if not track:
                opts.flags |= _lib.MPX_SEGMENT_UNTRACKED
            rc = C.mpx_segment_create(byref(seg), size, byref(opts))
        else:
            rc = C.mpx_segment_attach(byref(seg), encoded)
        if rc:
            raise _segment_error(rc, name)
        self._seg = seg
        try:
            self._name = get_string(C.mpx_segment_name, seg)
            fd = out_value(C.mpx_segment_fd, seg, c_int)
            size = out_value(C.mpx_segment_size, seg, c_size_t)
            # Python's own mapping of the same file: mmap refuses to close while views
            # exported from buf are alive (BufferError), as in multiprocessing.
            self._mmap = mmap.mmap(fd, size)
        except BaseException:
            if create and self._name:
                C.mpx_segment_unlink_name(self._name.encode())
            self.close()
            raise
        self._size = size
        self._buf = memoryview(self._mmap)

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self):
        return f'{self.__class__.__name__}({self.name!r}, size={self.size})'

    @property
    def buf(self):
        "A memoryview of contents of the shared memory block."
        return self._buf

    @property
    def name(self):
        "Unique name that identifies the shared memory block."
        return self._name

    @property
    def size(self):
        "Size in bytes."
        return self._size

    @property
    def token(self):
        "The mpx token of the segment (mpx_segment_attach_token)."
        return get_string(C.mpx_segment_token, self._seg)

    def close(self):
        """Closes access to the shared memory from this instance but does
        not destroy the shared memory block."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        seg = self._seg
        if seg is not None:
            self._seg = None
            C.mpx_segment_destroy(seg)

    def unlink(self):
        """Requests that the underlying shared memory block be destroyed.

        Unlink should be called once (and only once) across all handles which have access
        to the shared memory block; FileNotFoundError when it is already gone."""
        if self._name:
            rc = C.mpx_segment_unlink_name(self._name.encode())
            if rc:
                raise _segment_error(rc, self._name)


def _with_our_shared_memory(func):
    """`func` with its global SharedMemory rebound to this module's class."""
    g = dict(func.__globals__)
    g["SharedMemory"] = SharedMemory
    f = types.FunctionType(func.__code__, g, func.__name__, func.__defaults__, func.__closure__)
    f.__kwdefaults__ = func.__kwdefaults__
    f.__qualname__ = func.__qualname__
    f.__doc__ = func.__doc__
    return f


class ShareableList(_std.ShareableList):
    """The standard library's ShareableList over an mpx SharedMemory."""

    __init__ = _with_our_shared_memory(_std.ShareableList.__init__)
