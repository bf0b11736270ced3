"""Process objects and the current process: ``multiprocessing.process`` for mpx.

``BaseProcess`` has the API, results and exceptions of ``multiprocessing.process.BaseProcess``
(``start/join/is_alive/terminate/kill/close``, ``name``, ``daemon``, ``pid``, ``exitcode``,
``sentinel``, ``authkey``; and ``interrupt``, Python 3.14's); how a child is made is the
business of a *Popen* class per start method (``mpx.popen_fork``, ``mpx.popen_spawn``,
``mpx.popen_forkserver``). Children of the fork and spawn methods are libmpx process objects:
the library reaps them, signals them and gives their sentinel (a pidfd).

The current process is the library's: its name is ``mpx_current_name``, its authkey the
process-wide ``mpx_authkey``, its daemon flag ``mpx_current_daemon``. A child's Process object
is also ``multiprocessing``'s current process there, so that ``logging``'s processName,
``multiprocessing.current_process()`` and multiprocessing objects used inside an mpx child
behave as in a multiprocessing child.

After a fork every page a child writes costs it a copy-on-write fault (about 20 us here, the
price of twenty ctypes calls), so a forked child does as little as it can: the list of its
own children and its child counter are made when first used (they belong to the pid that
made them), its parent's Process object and its stdin are made by the parent before forking.
"""

import itertools
import os
import sys
import threading

import multiprocessing.process as _mpp
from multiprocessing.process import AuthenticationString

from . import _lib
from ._lib import C, check

if not _lib.DEFERRED and not _lib.HAVE_PROCESS:
    raise ImportError(f"mpx: {_lib.library_path} has no process API (built before process.h)")

__all__ = ["BaseProcess", "current_process", "active_children", "parent_process",
           "AuthenticationString"]

ORIGINAL_DIR = _mpp.ORIGINAL_DIR
_getpid = os.getpid


# ---- the library's view of this process ------------------------------------------------

def _c_authkey():
    size = 256
    fn = C.mpx_authkey      # loads the library first if it is deferred
    buf = _lib.ctypes.create_string_buffer(size)
    n = _lib.c_size_t(size)
    check(fn(buf, _lib.byref(n)), "authkey")
    return buf.raw[:n.value]


def _set_c_authkey(key):
    key = bytes(key)
    check(C.mpx_set_authkey(key, len(key)), "set authkey")


def _c_current_name():
    fn = C.mpx_current_name
    return _lib.get_string(lambda _h, buf, n: fn(buf, n), None)


def _c_parent_pid():
    fn = C.mpx_parent_pid
    return _lib.out_value(lambda _h, p: fn(p), None, _lib.c_int64)


def _c_current_daemon():
    fn = C.mpx_current_daemon
    return bool(_lib.out_value(lambda _h, p: fn(p), None, _lib.c_int))


# ---- this process's children -------------------------------------------------------------

_owner = _getpid()                  # the process the two below belong to
_children = set()                   # started and not yet known to have ended
_process_counter = itertools.count(1)


def _own():
    """Make _children and _process_counter this process's (fresh after any fork)."""
    global _owner, _children, _process_counter
    pid = _getpid()
    if pid != _owner:
        _owner = pid
        _children = set()
        _process_counter = itertools.count(1)


def _cleanup():
    _own()
    for p in list(_children):
        popen = p._popen
        if popen is not None and popen.poll() is not None:
            _children.discard(p)


# ---- public functions -------------------------------------------------------------------

def current_process():
    """The Process object of the calling process."""
    return _current_process


def active_children():
    """The children started by this process that are still running (reaping the others)."""
    _cleanup()
    return list(_children)


def parent_process():
    """The process that started this one (None in a process not started by mpx)."""
    return _parent_process


# ---- Process -----------------------------------------------------------------------------

class BaseProcess:
    """Activity run in a separate process: like ``threading.Thread``, and exactly like
    ``multiprocessing.process.BaseProcess``. Subclass it and override ``run()``, or pass a
    ``target``."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        raise NotImplementedError

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={}, *, daemon=None):
        assert group is None, 'group argument must be None for now'
        _own()
        current = _current_process
        self._identity = identity = current._identity + (next(_process_counter),)
        # No 'authkey' entry: the child inherits the process-wide key unless one is set.
        self._config = current._config.copy()
        self._parent_pid = _owner
        self._parent_name = current._name
        self._popen = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or type(self).__name__ + '-' + ':'.join(map(str, identity))
        if daemon is not None:
            self.daemon = daemon

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    def run(self):
        """Method to be run in the child; may be overridden in a subclass."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self):
        """Start the child process."""
        if self._closed:
            raise ValueError("process object is closed")
        assert self._popen is None, 'cannot start a process twice'
        assert self._parent_pid == _getpid(), \
            'can only start a process object created by current process'
        assert not _current_process._config.get('daemon'), \
            'daemonic processes are not allowed to have children'
        if _children:
            _cleanup()
        self._popen = self._Popen(self)
        # Avoid a reference cycle if the target holds the process object (bpo-30775).
        del self._target, self._args, self._kwargs
        _children.add(self)

    def terminate(self):
        """Send SIGTERM."""
        self._check_closed()
        self._popen.terminate()

    def kill(self):
        """Send SIGKILL."""
        self._check_closed()
        self._popen.kill()

    def interrupt(self):
        """Send SIGINT (Python 3.14's Process.interrupt)."""
        self._check_closed()
        self._popen.interrupt()

    def join(self, timeout=None):
        """Wait until the child ends, or `timeout` seconds pass."""
        if self._closed:
            raise ValueError("process object is closed")
        assert self._parent_pid == _getpid(), 'can only join a child process'
        assert self._popen is not None, 'can only join a started process'
        if self._popen.wait(timeout) is not None:
            _children.discard(self)

    def is_alive(self):
        """True from start() until the child ends."""
        self._check_closed()
        if self is _current_process:
            return True
        assert self._parent_pid == _getpid(), 'can only test a child process'
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        _children.discard(self)
        return False

    def close(self):
        """Release the process object's resources; ValueError while the child runs."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            self._popen.close()
            self._popen = None
            _children.discard(self)
        self._closed = True

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, name):
        assert isinstance(name, str), 'name must be a string'
        if self is _current_process:
            check(C.mpx_set_current_name(name.encode("utf-8")), "set name")
        self._name = name

    @property
    def daemon(self):
        """Whether the process is a daemon: killed when its parent dies, no children."""
        return self._config.get('daemon', False)

    @daemon.setter
    def daemon(self, daemonic):
        assert self._popen is None, 'process has already started'
        self._config['daemon'] = daemonic

    @property
    def authkey(self):
        """The authkey (an AuthenticationString). The current process's is the library's
        process-wide key; a child's is that key unless one was set for it."""
        if self is _current_process:
            return AuthenticationString(_c_authkey())
        key = self._config.get('authkey')
        return key if key is not None else _current_process.authkey

    @authkey.setter
    def authkey(self, authkey):
        authkey = AuthenticationString(authkey)
        if self is _current_process:
            _set_c_authkey(authkey)
            main = _mpp._current_process
            if main is not self and isinstance(getattr(main, '_config', None), dict):
                main._config['authkey'] = authkey
        else:
            self._config['authkey'] = authkey

    @property
    def exitcode(self):
        """None until the child has ended; then its exit code (-N if killed by signal N)."""
        self._check_closed()
        if self._popen is None:
            return None
        return self._popen.poll()

    @property
    def ident(self):
        """The pid; None before start."""
        self._check_closed()
        if self is _current_process:
            return _getpid()
        return self._popen and self._popen.pid

    pid = ident

    @property
    def sentinel(self):
        """A descriptor that becomes readable when the child has ended."""
        self._check_closed()
        if self._popen is None:
            raise ValueError("process not started")
        return self._popen.sentinel

    def __repr__(self):
        exitcode = None
        if self is _current_process:
            status = 'started'
        elif self._closed:
            status = 'closed'
        elif self._parent_pid != _getpid():
            status = 'unknown'
        elif self._popen is None:
            status = 'initial'
        else:
            exitcode = self._popen.poll()
            status = 'stopped' if exitcode is not None else 'started'
        info = [type(self).__name__, 'name=%r' % self._name]
        if self._popen is not None:
            info.append('pid=%s' % self._popen.pid)
        info.append('parent=%s' % self._parent_pid)
        info.append(status)
        if exitcode is not None:
            info.append('exitcode=%s' % _mpp._exitcode_to_name.get(exitcode, exitcode))
        if self.daemon:
            info.append('daemon')
        return '<%s>' % ' '.join(info)

    def __getstate__(self):
        # The handle of a started process stays with its parent.
        state = self.__dict__.copy()
        state['_popen'] = None
        return state

    def __reduce__(self):
        # Rebuilt by _rebuild_process rather than pickle's default, which interns every
        # attribute name: lookups in the interpreter's big table of interned strings that
        # cost a forkserver child a copy-on-write fault each.
        return _rebuild_process, (type(self), self.__getstate__())

    # ---- in the child ----

    def _bootstrap(self, fork=False, kit=None):
        """Run the process in the child: become the current process, run(), flush, and
        return the exit code (Python's rules: None 0, an int itself, anything else printed
        and 1; an uncaught exception's traceback printed and 1).

        `kit` is what a forking parent prepared for its children (ForkKit)."""
        global _current_process, _parent_process, _forced_start_method
        try:
            _current_process = self
            if kit is None:
                kit = ForkKit(self._parent_name, self._parent_pid, None)
            _parent_process = kit.parent
            if self._start_method is not None:
                _forced_start_method = self._start_method
            if sys.stdin is not None:
                # As multiprocessing: sys.stdin reads /dev/null; descriptor 0 is left
                # alone. (The parent's sys.stdin object, still sys.__stdin__, is not closed
                # as multiprocessing closes it: that would cost a fork child ~13 faults.)
                sys.stdin = kit.stdin if kit.stdin is not None else _open_devnull()
            key = self._config.get('authkey')
            if key is not None:
                _set_c_authkey(key)
            if _HAVE_THREAD_NATIVE_ID:
                _main_thread()._set_native_id()
            mpp = _mpp
            mpp._current_process = self
            mpp._parent_process = kit.parent
            if mpp._children:
                mpp._children = set()
                mpp._process_counter = itertools.count(1)
            if fork:
                util = _modules.get('multiprocessing.util')
                if util is not None:
                    # As multiprocessing's fork children: the parent's finalizers are not
                    # ours, and objects registered for it are reset.
                    if util._finalizer_registry:
                        util._finalizer_registry.clear()
                    if util._afterfork_registry:
                        util._run_after_forkers()
            try:
                self.run()
                exitcode = 0
            finally:
                _exit_function()
        except SystemExit as e:
            if e.code is None:
                exitcode = 0
            elif isinstance(e.code, int):
                exitcode = e.code
            else:
                sys.stderr.write(str(e.code) + '\n')
                exitcode = 1
        except:  # noqa: E722  (as multiprocessing: anything, KeyboardInterrupt included)
            exitcode = 1
            import traceback
            sys.stderr.write('Process %s:\n' % self.name)
            traceback.print_exc()
        finally:
            _threading_shutdown()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, ValueError, OSError):
                    pass
        return exitcode


def _rebuild_process(cls, state):
    obj = cls.__new__(cls)
    setstate = getattr(obj, '__setstate__', None)
    if setstate is not None:
        setstate(state)
    else:
        obj.__dict__.update(state)
    return obj


_HAVE_THREAD_NATIVE_ID = threading._HAVE_THREAD_NATIVE_ID
_main_thread = threading.main_thread
_modules = sys.modules

# The start method a child of a context's Process class must use by default (as
# multiprocessing forces it in its children); mpx.context applies it when asked.
_forced_start_method = None


class ForkKit:
    """What a parent makes once, before forking, so that its fork children do not have
    to: the parent's Process object as their parent_process(), and their stdin."""

    __slots__ = ("parent", "stdin", "key")

    def __init__(self, name, pid, stdin):
        self.parent = _ParentProcess(name, pid)
        self.stdin = stdin
        self.key = (name, pid)


_kit = None


def fork_kit():
    """The ForkKit for children of this process, remade when its name changes."""
    global _kit
    me = _current_process
    key = (me._name, _getpid())
    kit = _kit
    if kit is None or kit.key != key:
        if kit is not None and kit.stdin is not None and kit.parent._pid == key[1]:
            kit.stdin.close()
        kit = _kit = ForkKit(me._name, key[1],
                             _open_devnull(True) if sys.stdin is not None else None)
    return kit


def _open_devnull(closefd=False):
    # closefd=False as multiprocessing: a child's stdin is never closed, and then must not
    # warn (ResourceWarning) at interpreter exit.
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        return open(fd, encoding="utf-8", closefd=closefd)
    except BaseException:
        os.close(fd)
        raise


def _threading_shutdown():
    # Wait for non-daemon threads and run threading's atexit calls, as the interpreter
    # does at exit; skipped, as it touches much, when the child started no thread.
    try:
        if len(threading._active) <= 1 and not threading._limbo and \
                not threading._threading_atexits:
            return
    except AttributeError:  # pragma: no cover (another threading)
        pass
    threading._shutdown()


def _exit_function():
    """At the end of a process: terminate daemonic children, join the others (as
    multiprocessing's util._exit_function), and let multiprocessing do the same."""
    if _owner == _getpid() and _children:
        for p in active_children():
            if p.daemon:
                p.terminate()
        for p in active_children():
            p.join()
    util = _modules.get('multiprocessing.util')
    if util is not None and _mpp._current_process is _current_process and (
            util._finalizer_registry or _mpp._children):
        util._exit_function()


class _ParentProcess(BaseProcess):
    """The process that started this one. Its sentinel (a pidfd) is opened on first use."""

    def __init__(self, name, pid):
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._config = {}

    @property
    def sentinel(self):
        try:
            return self._sentinel
        except AttributeError:
            pass
        try:
            fd = os.pidfd_open(self._pid)
        except (ProcessLookupError, AttributeError, OSError):
            # Gone already: a descriptor that is always readable stands for it.
            r, w = os.pipe()
            os.close(w)
            fd = r
        self._sentinel = fd
        return fd

    def is_alive(self):
        from multiprocessing.connection import wait
        return not wait([self.sentinel], timeout=0)

    @property
    def ident(self):
        return self._pid

    pid = ident

    def join(self, timeout=None):
        from multiprocessing.connection import wait
        wait([self.sentinel], timeout=timeout)


class _MainProcess(BaseProcess):
    """The process as the library sees it: MainProcess, unless a C program started it
    through mpx (then its name, parent and daemon flag come from the library). What comes
    from the library is read when first needed (see _lib.DEFERRED)."""

    def __init__(self):
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._config = {'semprefix': '/mp'}

    @property
    def _name(self):
        try:
            return self.__dict__['_name']
        except KeyError:
            name = self.__dict__['_name'] = _c_current_name()
            return name

    @_name.setter
    def _name(self, name):
        self.__dict__['_name'] = name

    @property
    def _identity(self):
        try:
            return self.__dict__['_identity']
        except KeyError:
            identity = self.__dict__['_identity'] = _identity_from_name(self._name)
            return identity

    def close(self):
        pass


def _identity_from_name(name):
    head, _, tail = name.partition('-')
    if head != 'Process' or not tail:
        return ()
    try:
        return tuple(int(i) for i in tail.split(':'))
    except ValueError:
        return ()


_current_process = _MainProcess()
# Second references, so that replacing the current process in a fork child frees nothing
# (a free writes to the freed objects' pages: copy-on-write faults).
_main_process = _current_process
_mp_main_process = _mpp._current_process
_parent_process = None


def _library_loaded():
    """What the library knows of this process, applied once it is loaded."""
    global _parent_process
    parent = _c_parent_pid()
    # One authkey for the process: a program that did not come from mpx takes
    # multiprocessing's (random) key as the library's, so that both agree; one that did
    # (its key came from its parent) gives it to multiprocessing.
    mp_main = _mpp._current_process
    if parent == 0:
        _set_c_authkey(mp_main.authkey)
    elif mp_main is _mp_main_process:
        mp_main._config['authkey'] = AuthenticationString(_c_authkey())
    if _current_process is _main_process:
        if _c_current_daemon():
            _main_process._config['daemon'] = True
        if parent != 0 and _parent_process is None:
            _parent_process = _ParentProcess(None, parent)


_lib.on_load(_library_loaded)


def _atexit():
    _exit_function()
    kit = _kit
    if kit is not None and kit.stdin is not None and kit.parent._pid == _getpid():
        kit.stdin.close()


import atexit  # noqa: E402
atexit.register(_atexit)
