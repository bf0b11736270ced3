"""mpx: Python's multiprocessing synchronisation and shared data, backed by libmpx.

A drop-in for the ``multiprocessing`` names below, whose objects live in libmpx shared
memory: they work in ``os.fork()`` children, and pickle as tokens from which any process of
the same user (Python or C, C++, Node...) attaches the same object.

    import mpx
    lock = mpx.Lock()
    counter = mpx.Value('i', 0)
    with counter.get_lock():
        counter.value += 1

Processes: ``mpx.Process`` (``multiprocessing.Process``), ``current_process``,
``parent_process``, ``active_children``, ``cpu_count`` and the start methods 'fork', 'spawn'
and 'forkserver' (``get_context``, ``set_start_method``...); see :mod:`mpx.process` and
:mod:`mpx.context`.

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

if _lib.HAVE_PROCESS:
    from .process import current_process, active_children, parent_process
    from .context import (
        Process, get_context, get_start_method, set_start_method, get_all_start_methods,
        cpu_count, ProcessError, BufferTooShort,
    )
    _PROCESS_NAMES = [
        "Process", "current_process", "active_children", "parent_process", "cpu_count",
        "get_context", "get_start_method", "set_start_method", "get_all_start_methods",
        "ProcessError", "BufferTooShort",
    ]
else:  # a library built before the process API
    _PROCESS_NAMES = []

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
] + _PROCESS_NAMES
