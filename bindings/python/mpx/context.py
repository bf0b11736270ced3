"""Start methods and contexts: ``multiprocessing.context`` for mpx.

``get_context(method)`` returns a context whose ``Process`` starts children with that
method ('fork', 'spawn' or 'forkserver'); the module-level functions act on the default
context, whose method is, until ``set_start_method`` says otherwise, the one the running
Python's multiprocessing uses (its explicit choice if it made one, else its default: 'fork' on
Linux before 3.14).
"""

import multiprocessing as _mp
import multiprocessing.context as _mpc

from . import process
from . import _lib
from ._lib import C, check

__all__ = ["BaseContext", "Process", "ForkProcess", "SpawnProcess", "ForkServerProcess",
           "get_context", "get_start_method", "set_start_method", "get_all_start_methods"]

ProcessError = _mpc.ProcessError
BufferTooShort = _mpc.BufferTooShort
TimeoutError = _mpc.TimeoutError
AuthenticationError = _mpc.AuthenticationError


class BaseContext:
    """The functions of the mpx package, bound to a start method."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self):
        """The number of CPUs this process may use (from libmpx)."""
        fn = C.mpx_cpu_count     # loads the library first if it is deferred
        n = _lib.c_int()
        check(fn(_lib.byref(n)), "cpu_count")
        return n.value

    def Lock(self):
        from .synchronize import Lock
        return Lock()

    def RLock(self):
        from .synchronize import RLock
        return RLock()

    def Condition(self, lock=None):
        from .synchronize import Condition
        return Condition(lock)

    def Semaphore(self, value=1):
        from .synchronize import Semaphore
        return Semaphore(value)

    def BoundedSemaphore(self, value=1):
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value)

    def Event(self):
        from .synchronize import Event
        return Event()

    def Barrier(self, parties, action=None, timeout=None):
        from .synchronize import Barrier
        return Barrier(parties, action, timeout)

    def Pipe(self, duplex=True):
        """A pair of connected mpx Connections (see mpx.connection)."""
        from .connection import Pipe
        return Pipe(duplex)

    def Queue(self, maxsize=0):
        """A queue in shared memory (see mpx.queues)."""
        from .queues import Queue
        return Queue(maxsize, ctx=self.get_context())

    def JoinableQueue(self, maxsize=0):
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self.get_context())

    def SimpleQueue(self):
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self.get_context())

    def Manager(self):
        """A started SyncManager whose server process starts with this context's method
        (see mpx.managers)."""
        from .managers import SyncManager
        m = SyncManager(ctx=self.get_context())
        m.start()
        return m

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, **kwargs):
        """A process pool whose workers start with this context's method (see mpx.pool;
        keyword extras: task_timeout, max_memory_per_child)."""
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild, context=self.get_context(),
                    **kwargs)

    def RawValue(self, typecode_or_type, *args):
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type, size_or_initializer):
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type, *args, lock=True):
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock)

    def Array(self, typecode_or_type, size_or_initializer, *, lock=True):
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock)

    def freeze_support(self):
        """Nothing to do: mpx has no frozen-executable support (multiprocessing's does
        something only on Windows)."""

    def set_forkserver_preload(self, module_names):
        """Modules the forkserver imports when it starts (see mpx.forkserver)."""
        from .forkserver import set_forkserver_preload
        set_forkserver_preload(module_names)

    def get_context(self, method=None):
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError('cannot find context for %r' % method) from None
        return ctx

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        raise ValueError('cannot set start method of concrete context')

    def get_all_start_methods(self):
        """The supported start methods, the default first."""
        default = _default_context.get_default_method()
        return [default] + [m for m in _METHODS if m != default]


# ---- Process classes ---------------------------------------------------------------------

class Process(process.BaseProcess):
    """A process started with the default context's method (chosen at start())."""
    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        return _default_context.get_context().Process._Popen(process_obj)


class ForkProcess(process.BaseProcess):
    _start_method = 'fork'

    @staticmethod
    def _Popen(process_obj):
        return _fork_popen(process_obj)


class SpawnProcess(process.BaseProcess):
    _start_method = 'spawn'

    @staticmethod
    def _Popen(process_obj):
        from .popen_spawn import Popen
        return Popen(process_obj)


class ForkServerProcess(process.BaseProcess):
    _start_method = 'forkserver'

    @staticmethod
    def _Popen(process_obj):
        from .popen_forkserver import Popen
        return Popen(process_obj)


class ForkContext(BaseContext):
    _name = 'fork'
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = 'spawn'
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = 'forkserver'
    Process = ForkServerProcess


def _fork_popen(process_obj):
    # Imported on first use, then called directly (an import statement costs a fork
    # child's parent a few page faults each time).
    global _fork_popen
    from .popen_fork import Popen
    _fork_popen = Popen
    return Popen(process_obj)


_METHODS = ('fork', 'spawn', 'forkserver')
_concrete_contexts = {
    'fork': ForkContext(),
    'spawn': SpawnContext(),
    'forkserver': ForkServerContext(),
}


def _multiprocessing_method():
    """The start method the running Python's multiprocessing would use now."""
    method = _mp.get_start_method(allow_none=True)
    if method is None:
        try:
            method = _mpc._default_context._default_context._name
        except AttributeError:  # pragma: no cover
            method = 'fork'
    return method if method in _concrete_contexts else 'spawn'


class DefaultContext(BaseContext):
    """The context of the module-level functions: its method is fixed on first use."""

    Process = Process

    def __init__(self):
        self._actual_context = None

    def get_default_method(self):
        return _multiprocessing_method()

    def _apply_forced(self):
        # A child of a context's Process class uses that context by default (as in
        # multiprocessing); its bootstrap leaves the method in process._forced_start_method.
        method = process._forced_start_method
        if method is not None:
            process._forced_start_method = None
            self._actual_context = _concrete_contexts[method]

    def get_context(self, method=None):
        if method is None:
            if process._forced_start_method is not None:
                self._apply_forced()
            if self._actual_context is None:
                self._actual_context = _concrete_contexts[_multiprocessing_method()]
            return self._actual_context
        return super().get_context(method)

    def set_start_method(self, method, force=False):
        if process._forced_start_method is not None:
            self._apply_forced()
        if self._actual_context is not None and not force:
            raise RuntimeError('context has already been set')
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none=False):
        if process._forced_start_method is not None:
            self._apply_forced()
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = _concrete_contexts[_multiprocessing_method()]
        return self._actual_context._name


_default_context = DefaultContext()


def _force_start_method(method):
    process._forced_start_method = None
    _default_context._actual_context = _concrete_contexts[method]


get_context = _default_context.get_context
get_start_method = _default_context.get_start_method
set_start_method = _default_context.set_start_method
get_all_start_methods = _default_context.get_all_start_methods
cpu_count = _default_context.cpu_count
set_forkserver_preload = _default_context.set_forkserver_preload
Manager = _default_context.Manager
