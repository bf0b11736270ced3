"""What a spawned or forkserver child needs from its parent: the command line, the
preparation data (``multiprocessing.spawn``'s, so that the main module is imported the way
multiprocessing imports it), descriptors passed by pickling, and the child's entry point.

A spawned child is ``sys.executable -c 'from mpx.spawn import spawn_main; spawn_main()'``,
started by libmpx with the read end of a pipe as its descriptor 3 (and any descriptor a
pickled object needs as 4, 5, ...). The parent writes the pickled preparation data and the
pickled process object into the pipe.
"""

import os
import subprocess
import sys

import multiprocessing.context as _mpc
import multiprocessing.process as _mpp
import multiprocessing.spawn as _mps
import multiprocessing.util as _mpu
from multiprocessing.reduction import ForkingPickler

__all__ = ["spawn_main", "get_preparation_data", "prepare", "get_command_line"]

PIPE_FD = 3

# The directory holding the mpx package: the child imports mpx from here before the
# preparation data gives it the parent's sys.path.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_executable():
    return _mps.get_executable()


def get_command_line(entry):
    """argv that runs `entry` (Python source, after mpx is importable) in a new interpreter
    with the parent's interpreter flags."""
    code = f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); {entry}"
    return [get_executable(), *subprocess._args_from_interpreter_flags(), "-c", code]


def get_preparation_data(name):
    """multiprocessing.spawn.get_preparation_data, with mpx's start method (asking
    multiprocessing's would fix its start method as a side effect)."""
    _mps._check_not_importing_main()
    from .context import get_start_method
    d = dict(log_to_stderr=_mpu._log_to_stderr, authkey=bytes(_mpp.current_process().authkey))
    if _mpu._logger is not None:
        d['log_level'] = _mpu._logger.getEffectiveLevel()
    sys_path = sys.path.copy()
    try:
        i = sys_path.index('')
    except ValueError:
        pass
    else:
        sys_path[i] = _mpp.ORIGINAL_DIR
    d.update(name=name, sys_path=sys_path, sys_argv=sys.argv, orig_dir=_mpp.ORIGINAL_DIR,
             dir=os.getcwd(), start_method=get_start_method())
    main_module = sys.modules['__main__']
    main_mod_name = getattr(main_module.__spec__, "name", None)
    if main_mod_name is not None:
        d['init_main_from_name'] = main_mod_name
    else:
        main_path = getattr(main_module, '__file__', None)
        if main_path is not None:
            if not os.path.isabs(main_path) and _mpp.ORIGINAL_DIR is not None:
                main_path = os.path.join(_mpp.ORIGINAL_DIR, main_path)
            d['init_main_from_path'] = os.path.normpath(main_path)
    return d


def prepare(data):
    """Apply preparation data (multiprocessing.spawn.prepare, but the start method is
    mpx's). The main module is imported as __mp_main__ with the `if __name__ ==
    "__main__"` block skipped, as multiprocessing does."""
    data = dict(data)
    method = data.pop('start_method', None)
    main = _mpp.current_process()
    main._inheriting = True
    try:
        _mps.prepare(data)
    finally:
        del main._inheriting
    if method is not None:
        from .context import set_start_method
        set_start_method(method, force=True)


# ---- descriptors that travel with a pickled object ----------------------------------------

# In a child: the descriptors its parent passed, in order (their numbers in this process).
_inherited_fds = []


class _PassedFd:
    """Stands for the `index`-th descriptor passed to the child (what
    multiprocessing.reduction.DupFd pickles while a process is being started)."""

    def __init__(self, index):
        self.index = index

    def __reduce__(self):
        return _received_fd, (self.index,)


class _ReceivedFd:
    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd


def _received_fd(index):
    return _ReceivedFd(_inherited_fds[index])


class SpawningPopen:
    """Mixin for the Popen classes that pickle the process object: they collect the
    descriptors pickled objects need (multiprocessing's DupFd protocol)."""

    def duplicate_for_child(self, fd):
        self._fds.append(fd)
        return len(self._fds) - 1

    def DupFd(self, index):
        return _PassedFd(index)

    def _pickle(self, *objects):
        """Pickle `objects` in turn as multiprocessing does while spawning (authkeys and
        multiprocessing objects may be pickled); the passed descriptors go to self._fds."""
        import io
        self._fds = []
        buf = io.BytesIO()
        _mpc.set_spawning_popen(self)
        try:
            for obj in objects:
                ForkingPickler(buf, 4).dump(obj)
        finally:
            _mpc.set_spawning_popen(None)
        return buf.getbuffer()


# ---- the child ----------------------------------------------------------------------------

def spawn_main(pipe_fd=PIPE_FD, nfds=0):
    """Entry point of a spawned child: read the preparation data and the process object
    from `pipe_fd`, run it, exit with its exit code."""
    import pickle
    _inherited_fds[:] = range(pipe_fd + 1, pipe_fd + 1 + nfds)
    with open(pipe_fd, 'rb', closefd=True) as from_parent:
        prepare(pickle.load(from_parent))
        main = _mpp.current_process()
        main._inheriting = True
        try:
            self = pickle.load(from_parent)
        finally:
            del main._inheriting
    sys.exit(self._bootstrap())
