"""Process objects and the current process: ``multiprocessing.process`` for mpx.

``BaseProcess`` has the API, results and exceptions of ``multiprocessing.process.BaseProcess``
(``start/join/is_alive/terminate/kill/close``, ``name``, ``daemon``, ``pid``, ``exitcode``,
``sentinel``, ``authkey``); how a child is made is the business of a *Popen* class per start
method (``mpx.popen_fork``, ``mpx.popen_spawn``, ``mpx.popen_forkserver``). Children of the
fork and spawn methods are libmpx process objects: the library reaps them, signals them and
gives their sentinel (a pidfd).

The current process is the library's: its name is ``mpx_current_name``, its authkey the
process-wide ``mpx_authkey``, its daemon flag ``mpx_current_daemon``. In a child, this module
also makes the child's Process object ``multiprocessing``'s current process, so that
``logging``'s processName, ``multiprocessing.current_process()`` and multiprocessing objects
used inside an mpx child behave as in a multiprocessing child.
"""

import ctypes
import itertools
import os
import signal
import sys
import threading

import multiprocessing.process as _mpp
from multiprocessing.process import AuthenticationString

from . import _lib
from ._lib import C, check, c_int, c_int64, c_size_t, byref

if not _lib.HAVE_PROCESS:
    raise ImportError(f"mpx: {_lib.library_path} has no process API (built before process.h)")

__all__ = ["BaseProcess", "current_process", "active_children", "parent_process",
           "AuthenticationString"]

ORIGINAL_DIR = _mpp.ORIGINAL_DIR


# ---- the library's view of this process ------------------------------------------------

def _c_authkey():
    size = 256
    buf = ctypes.create_string_buffer(size)
    n = c_size_t(size)
    check(C.mpx_authkey(buf, byref(n)), "authkey")
    return buf.raw[:n.value]


def _set_c_authkey(key):
    key = bytes(key)
    check(C.mpx_set_authkey(key, len(key)), "set authkey")


def _c_current_name():
    return _lib.get_string(lambda _h, buf, n: C.mpx_current_name(buf, n), None)


def _c_parent_pid():
    return _lib.out_value(lambda _h, p: C.mpx_parent_pid(p), None, c_int64)


def _c_current_daemon():
    return bool(_lib.out_value(lambda _h, p: C.mpx_current_daemon(p), None, c_int))


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


def _cleanup():
    for p in list(_children):
        popen = p._popen
        if popen is not None and popen.poll() is not None:
            _children.discard(p)


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
        count = next(_process_counter)
        self._identity = _current_process._identity + (count,)
        self._config = _current_process._config.copy()
        self._config['authkey'] = _current_process.authkey
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or type(self).__name__ + '-' + ':'.join(str(i) for i in self._identity)
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
        self._check_closed()
        assert self._popen is None, 'cannot start a process twice'
        assert self._parent_pid == os.getpid(), \
            'can only start a process object created by current process'
        assert not _current_process._config.get('daemon'), \
            'daemonic processes are not allowed to have children'
        _cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
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
        self._check_closed()
        assert self._parent_pid == os.getpid(), 'can only join a child process'
        assert self._popen is not None, 'can only join a started process'
        res = self._popen.wait(timeout)
        if res is not None:
            _children.discard(self)

    def is_alive(self):
        """True from start() until the child ends."""
        self._check_closed()
        if self is _current_process:
            return True
        assert self._parent_pid == os.getpid(), 'can only test a child process'
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
            del self._sentinel
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
        if self is _current_process:
            return AuthenticationString(_c_authkey())
        return self._config['authkey']

    @authkey.setter
    def authkey(self, authkey):
        authkey = AuthenticationString(authkey)
        if self is _current_process:
            _set_c_authkey(authkey)
            main = _mpp._current_process
            if main is not self and isinstance(getattr(main, '_config', None), dict):
                main._config['authkey'] = authkey
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
            return os.getpid()
        return self._popen and self._popen.pid

    pid = ident

    @property
    def sentinel(self):
        """A descriptor that becomes readable when the child has ended."""
        self._check_closed()
        try:
            return self._sentinel
        except AttributeError:
            raise ValueError("process not started") from None

    def __repr__(self):
        exitcode = None
        if self is _current_process:
            status = 'started'
        elif self._closed:
            status = 'closed'
        elif self._parent_pid != os.getpid():
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
        state.pop('_sentinel', None)
        return state

    # ---- in the child ----

    def _bootstrap(self, fork=False):
        """Run the process in the child: become the current process, run(), flush, and
        return the exit code (Python's rules: None 0, an int itself, anything else printed
        and 1; an uncaught exception's traceback printed and 1)."""
        global _current_process, _parent_process, _process_counter, _children
        try:
            if self._start_method is not None:
                from . import context
                context._force_start_method(self._start_method)
            _process_counter = itertools.count(1)
            _children = set()
            _close_stdin()
            _current_process = self
            _parent_process = _ParentProcess(self._parent_name, self._parent_pid)
            key = self._config.get('authkey')
            if key is not None and key != _c_authkey():
                _set_c_authkey(key)
            if threading._HAVE_THREAD_NATIVE_ID:
                threading.main_thread()._set_native_id()
            _become_multiprocessing_current(self, fork)
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
            _flush_std_streams()
        return exitcode


def _close_stdin():
    """As multiprocessing: a child's sys.stdin is /dev/null (its fd 0 closed and reopened)."""
    if sys.stdin is None:
        return
    try:
        sys.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            sys.stdin = open(fd, encoding="utf-8", closefd=False)
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        pass


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _threading_shutdown():
    # Wait for non-daemon threads, and run threading's atexit calls, as the interpreter
    # does at exit; skipped (it touches much) when the child never started a thread.
    if threading.active_count() > 1 or getattr(threading, "_threading_atexits", None):
        threading._shutdown()


def _become_multiprocessing_current(proc, fork):
    """Make `proc` multiprocessing's current process too (names in logging, daemon checks
    and authkey for multiprocessing objects used in this child)."""
    _mpp._current_process = proc
    _mpp._parent_process = _parent_process
    _mpp._process_counter = itertools.count(1)
    _mpp._children = set()
    if fork:
        util = sys.modules.get('multiprocessing.util')
        if util is not None:
            # As multiprocessing's own fork children: the parent's finalizers are not ours,
            # and objects registered for it are reset.
            util._finalizer_registry.clear()
            if util._afterfork_registry:
                util._run_after_forkers()


def _exit_function():
    """At the end of a process: terminate daemonic children, join the others (as
    multiprocessing's util._exit_function), and let multiprocessing do the same."""
    if _children:
        for p in active_children():
            if p.daemon:
                p.terminate()
        for p in active_children():
            p.join()
    util = sys.modules.get('multiprocessing.util')
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
    through mpx (then its name, parent and daemon flag come from the library)."""

    def __init__(self):
        self._name = _c_current_name()
        self._identity = _identity_from_name(self._name)
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._config = {'authkey': AuthenticationString(_c_authkey()), 'semprefix': '/mp'}
        if _c_current_daemon():
            self._config['daemon'] = True

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


# One authkey for the process: a program that did not come from mpx takes
# multiprocessing's (random) key as the library's, so that both agree; one that did
# (its key came from its parent) gives it to multiprocessing.
if _c_parent_pid() == 0:
    _set_c_authkey(_mpp.current_process().authkey)
else:
    _mpp.current_process()._config['authkey'] = AuthenticationString(_c_authkey())

_current_process = _MainProcess()
_parent_process = None
if _c_parent_pid() != 0:
    _parent_process = _ParentProcess(None, _c_parent_pid())
_process_counter = itertools.count(1)
_children = set()
del _MainProcess


def _atexit():
    _exit_function()


import atexit  # noqa: E402
atexit.register(_atexit)
