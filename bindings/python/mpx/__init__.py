"""mpx: Python's multiprocessing synchronisation and shared data, backed by libmpx.

A drop-in for the ``multiprocessing`` names below, whose objects live in libmpx shared
memory: they work in ``os.fork()`` children, and pickle as tokens from which any process of
the same user (Python or C, C++, Node...) attaches the same object.

    import mpx
    lock = mpx.Lock()
    counter = mpx.Value('i', 0)
    with counter.get_lock():
        counter.value += 1

Modules: :mod:`mpx.synchronize` (locks, semaphores, condition, event, barrier, and the
owner-death policy), :mod:`mpx.sharedctypes` (Value, Array, RawValue, RawArray),
:mod:`mpx.shared_memory` (SharedMemory, ShareableList). The library is found through
``MPX_LIBRARY``, next to the package, in the build tree of a checkout, or on the system
(see :mod:`mpx._lib`).
"""

from threading import BrokenBarrierError

from . import _lib
from ._lib import (
    MpxError, OwnerDiedWarning, NotOwnedError, OverReleaseError, BarrierBrokenError,
    InvalidArgumentError, OutOfMemoryError, BadHandleError, MpxTimeoutError,
    MpxFileExistsError, MpxFileNotFoundError, MpxPermissionError, NotPermittedError,
    OwnerDiedError, NotRecoverableError, MpxOverflowError, BrokenError, ClosedError,
    CorruptError, ForkedError, MpxIndexError, MpxOSError,
)
from .synchronize import Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier
from .sharedctypes import Value, Array, RawValue, RawArray
from . import shared_memory

__version__ = _lib.version_string
library_path = _lib.library_path

__all__ = [
    "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
    "Value", "Array", "RawValue", "RawArray", "shared_memory",
    "MpxError", "OwnerDiedWarning", "BrokenBarrierError", "NotOwnedError", "OverReleaseError",
    "BarrierBrokenError", "InvalidArgumentError", "OutOfMemoryError", "BadHandleError",
    "MpxTimeoutError", "MpxFileExistsError", "MpxFileNotFoundError", "MpxPermissionError",
    "NotPermittedError", "OwnerDiedError", "NotRecoverableError", "MpxOverflowError",
    "BrokenError", "ClosedError", "CorruptError", "ForkedError", "MpxIndexError", "MpxOSError",
]
