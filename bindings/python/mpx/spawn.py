"""What a spawned or forkserver child needs from its parent: the command line, the
preparation data (``multiprocessing.spawn``'s, so that the main module is imported the way
multiprocessing imports it), descriptors passed by pickling, and the child's entry point.

A spawned child is ``sys.executable -c '<bootstrap>'``, started by libmpx with the read end
of a pipe as its descriptor 3 (and any descriptor a pickled object needs as 4, 5, ...). The
parent writes into the pipe the compiled code of the mpx modules it has loaded, then the
pickled preparation data and process object. The code is shipped because compiling mpx's
sources is most of what a new interpreter would spend on mpx when no bytecode cache can be
written (PYTHONDONTWRITEBYTECODE, a read-only install): unmarshalling it costs ~1 ms, against
~20 ms for compiling it.

The child does not import ``multiprocessing.spawn`` or ``multiprocessing.util`` (which
imports ``subprocess``): about 5 ms of a new interpreter's start here. ``prepare`` below does
what multiprocessing's does, importing ``multiprocessing.util`` only when the parent logs.
"""

import os
import sys

import multiprocessing.context as _mpc
import multiprocessing.process as _mpp
from multiprocessing.reduction import ForkingPickler

__all__ = ["spawn_main", "get_preparation_data", "prepare", "get_command_line"]

PIPE_FD = 3

# The directory holding the mpx package: the child imports mpx from here before the
# preparation data gives it the parent's sys.path.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run by the new interpreter: read the shipped code from descriptor 3 (a length, then a
# marshalled {module name: marshalled code}), import mpx modules from it (falling back to
# their sources), import mpx with the library loaded on first use (_lib.DEFERRED: a child
# that never calls it does not load it), then run the entry, which reads the rest of the
# pipe from `f`.
_BOOTSTRAP = """\
import sys, marshal, importlib.machinery as m
sys.path.insert(0, {package_parent!r})
f = open({fd}, 'rb')
n = int.from_bytes(f.read(8), 'little')
codes = marshal.loads(f.read(n)) if n else {{}}
class L(m.SourceFileLoader):
    def get_code(self, name):
        c = codes.pop(name, None)
        return marshal.loads(c) if c is not None else super().get_code(name)
class F:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in codes:
            s = m.PathFinder.find_spec(name, path)
            if s is not None and type(s.loader) is m.SourceFileLoader:
                s.loader = L(s.loader.name, s.loader.path)
            return s
sys.meta_path.insert(0, F)
import os
d = os.environ.get('MPX_DEFER_LOAD')
os.environ['MPX_DEFER_LOAD'] = '1'
try:
    import mpx._lib
finally:
    if d is None:
        del os.environ['MPX_DEFER_LOAD']
    else:
        os.environ['MPX_DEFER_LOAD'] = d
{entry}
"""


def get_executable():
    import multiprocessing.spawn
    return multiprocessing.spawn.get_executable()


def get_command_line(entry):
    """argv that runs `entry` (Python source; `f` is the open pipe) in a new interpreter
    with the parent's interpreter flags."""
    import subprocess
    code = _BOOTSTRAP.format(package_parent=_PACKAGE_PARENT, fd=PIPE_FD, entry=entry)
    return [get_executable(), *subprocess._args_from_interpreter_flags(), "-c", code]


_shipped = (None, b"")


def shipped_code():
    """The header and code the bootstrap reads first: every loaded mpx module's code,
    compiled once (again when more mpx modules are loaded)."""
    global _shipped
    if os.fsdecode(get_executable()) != sys.executable:
        return (0).to_bytes(8, "little")   # another interpreter: it compiles for itself
    import marshal
    names = frozenset(n for n in sys.modules if n == "mpx" or n.startswith("mpx."))
    if _shipped[0] != names:
        codes = {}
        for name in names:
            path = getattr(sys.modules[name], "__file__", None)
            if not path or not path.endswith(".py"):
                continue
            try:
                with open(path, "rb") as f:
                    source = f.read()
                code = compile(source, path, "exec", dont_inherit=True,
                               optimize=sys.flags.optimize)
            except (OSError, SyntaxError):
                continue
            codes[name] = marshal.dumps(code)
        blob = marshal.dumps(codes)
        _shipped = (names, len(blob).to_bytes(8, "little") + blob)
    return _shipped[1]


def write_to_child(fd, *parts):
    """Write `parts` into the pipe `fd` and close it. The pipe is first grown to hold them
    all, so that the parent does not wait for the new interpreter to start reading."""
    total = sum(len(p) for p in parts)
    try:
        import fcntl
        size = 1 << max(16, (total - 1).bit_length())
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(size, 1 << 20))
    except (ImportError, AttributeError, OSError):
        pass
    try:
        with open(fd, "wb", closefd=True) as f:
            for p in parts:
                f.write(p)
    except BrokenPipeError:
        pass  # the child died early: its exit code tells


def get_preparation_data(name):
    """multiprocessing.spawn.get_preparation_data, with mpx's start method (asking
    multiprocessing's would fix its start method as a side effect)."""
    import multiprocessing.spawn
    import multiprocessing.util as util
    multiprocessing.spawn._check_not_importing_main()
    from .context import get_start_method
    d = dict(log_to_stderr=util._log_to_stderr, authkey=bytes(_mpp.current_process().authkey))
    if util._logger is not None:
        d['log_level'] = util._logger.getEffectiveLevel()
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
    """Apply preparation data as multiprocessing.spawn.prepare does, but with mpx's start
    method. The main module is imported as __mp_main__ with the `if __name__ ==
    "__main__"` block skipped, as multiprocessing does."""
    main = _mpp.current_process()
    main._inheriting = True
    try:
        if 'name' in data:
            main.name = data['name']
        if 'authkey' in data:
            main.authkey = data['authkey']
        if data.get('log_to_stderr') or 'log_level' in data:
            import multiprocessing.util as util
            if data.get('log_to_stderr'):
                util.log_to_stderr()
            if 'log_level' in data:
                util.get_logger().setLevel(data['log_level'])
        if 'sys_path' in data:
            sys.path = data['sys_path']
        if 'sys_argv' in data:
            sys.argv = data['sys_argv']
        if 'dir' in data:
            os.chdir(data['dir'])
        if 'orig_dir' in data:
            _mpp.ORIGINAL_DIR = data['orig_dir']
        if data.get('start_method') is not None:
            from .context import set_start_method
            set_start_method(data['start_method'], force=True)
        if 'init_main_from_name' in data:
            _fixup_main_from_name(data['init_main_from_name'])
        elif 'init_main_from_path' in data:
            _fixup_main_from_path(data['init_main_from_path'])
    finally:
        del main._inheriting


# The child's original __main__, kept alive (multiprocessing.spawn.old_main_modules).
_old_main_modules = []


def _run_as_mp_main(run):
    """Make `run()`'s namespace the module __mp_main__, also known as __main__."""
    import types
    _old_main_modules.append(sys.modules['__main__'])
    main_module = types.ModuleType("__mp_main__")
    main_module.__dict__.update(run())
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main_module


def _fixup_main_from_name(mod_name):
    # As multiprocessing: a package's __main__ runs its main-only code unconditionally, so
    # it is not run again; a main module already in place is kept.
    if mod_name == "__main__" or mod_name.endswith(".__main__"):
        return
    if getattr(sys.modules['__main__'].__spec__, "name", None) == mod_name:
        return
    import runpy
    _run_as_mp_main(lambda: runpy.run_module(mod_name, run_name="__mp_main__", alter_sys=True))


def _fixup_main_from_path(main_path):
    # As multiprocessing: IPython's launch script has no main guard; a main module already
    # in place is kept.
    if os.path.splitext(os.path.basename(main_path))[0] == 'ipython':
        return
    if getattr(sys.modules['__main__'], '__file__', None) == main_path:
        return
    import runpy
    _run_as_mp_main(lambda: runpy.run_path(main_path, run_name="__mp_main__"))


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

def spawn_main(f, nfds=0):
    """Entry point of a spawned child: read the preparation data and the process object
    from the pipe `f`, run it, exit with its exit code."""
    import pickle
    _inherited_fds[:] = range(PIPE_FD + 1, PIPE_FD + 1 + nfds)
    with f:
        prepare(pickle.load(f))
        main = _mpp.current_process()
        main._inheriting = True
        try:
            self = pickle.load(f)
        finally:
            del main._inheriting
    sys.exit(self._bootstrap())
