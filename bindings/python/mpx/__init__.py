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

Pipes and queues: ``mpx.Pipe`` and :mod:`mpx.connection` (``Connection``, ``wait``), and
``mpx.Queue``, ``SimpleQueue``, ``JoinableQueue`` (:mod:`mpx.queues`: queues in shared
memory, without a feeder thread).

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
    CorruptError, ForkedError, MpxIndexError, MpxOSError, QueueShutDown,
)
# The rest is imported on first use (PEP 562): a spawned child, which imports this
# package before anything else, then compiles and loads only the modules it needs.
_LAZY = {
    "Lock": "synchronize", "RLock": "synchronize", "Semaphore": "synchronize",
    "BoundedSemaphore": "synchronize", "Condition": "synchronize", "Event": "synchronize",
    "Barrier": "synchronize",
    "Value": "sharedctypes", "Array": "sharedctypes", "RawValue": "sharedctypes",
    "RawArray": "sharedctypes",
    "shared_memory": "shared_memory", "synchronize": "synchronize",
    "sharedctypes": "sharedctypes",
    "Pipe": "connection", "connection": "connection",
    "Queue": "queues", "SimpleQueue": "queues", "JoinableQueue": "queues", "queues": "queues",
    "reduction": "reduction",
    "Pool": "pool", "pool": "pool", "futures": "futures", "WorkerDiedError": "pool",
    "TaskTimeoutError": "pool", "TaskCancelledError": "pool",
    "managers": "managers",
}
_PROCESS_NAMES = [
    "Process", "current_process", "active_children", "parent_process", "cpu_count",
    "get_context", "get_start_method", "set_start_method", "get_all_start_methods",
    "ProcessError", "BufferTooShort", "set_forkserver_preload", "Manager",
]
_LAZY.update(dict.fromkeys(["current_process", "active_children", "parent_process"], "process"))
_LAZY.update(dict.fromkeys(_PROCESS_NAMES[4:] + ["Process"], "context"))
_LAZY.update(process="process", context="context", forkserver="forkserver", spawn="spawn",
             set_forkserver_preload="context", Manager="context")


def __getattr__(name):
    if name in ("__version__", "library_path"):
        value = globals()[name] = getattr(_lib, "version_string" if name == "__version__" else name)
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    mod = importlib.import_module("." + module, __name__)
    value = mod if name == module else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


if not _lib.DEFERRED:
    __version__ = _lib.version_string
    library_path = _lib.library_path

__all__ = [
    "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
    "Value", "Array", "RawValue", "RawArray", "shared_memory",
    "Pipe", "Queue", "SimpleQueue", "JoinableQueue", "QueueShutDown",
    "MpxError", "OwnerDiedWarning", "BrokenBarrierError", "NotOwnedError", "OverReleaseError",
    "BarrierBrokenError", "InvalidArgumentError", "OutOfMemoryError", "BadHandleError",
    "MpxTimeoutError", "MpxFileExistsError", "MpxFileNotFoundError", "MpxPermissionError",
    "NotPermittedError", "OwnerDiedError", "NotRecoverableError", "MpxOverflowError",
    "BrokenError", "ClosedError", "CorruptError", "ForkedError", "MpxIndexError", "MpxOSError",
    "Pool", "WorkerDiedError", "TaskTimeoutError", "TaskCancelledError",
] + _PROCESS_NAMES
