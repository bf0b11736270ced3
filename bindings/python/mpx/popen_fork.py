"""The fork start method, and the Popen of every child that is a libmpx process object.

The child is made by ``os.fork()``, so that the interpreter reinitialises itself (its locks,
threads and at-fork handlers) as it does for multiprocessing; the library then adopts it
(``mpx_process_adopt``: it reaps, signals and gives the sentinel, a pidfd), and the child
takes its identity from ``mpx_process_after_fork`` (name, daemon: a daemon dies with its
parent even when the parent is SIGKILLed).

Both sides are kept short on purpose. After a fork every page either process writes costs a
copy-on-write fault (about 20 us here, against 1 us for a ctypes call), so the cost of a
child is mostly the number of distinct pages touched: arguments for the child's C call are
built before forking, and what the child's bootstrap needs is prepared once by the parent
(mpx.process.ForkKit).
"""

import ctypes
import os
import signal
import sys
import threading as _threading

from . import _lib
from ._lib import C, c_int, c_int64, c_void_p, byref, error, sliced_wait
from .process import fork_kit

__all__ = ["Popen"]

_join = _lib.raw("mpx_process_join")
_exitcode = _lib.raw_gil("mpx_process_exitcode")
_sentinel = _lib.raw_gil("mpx_process_sentinel")
_adopt = _lib.raw_gil("mpx_process_adopt")
_after_fork = _lib.raw_gil("mpx_process_after_fork")
_destroy = _lib.raw_gil("mpx_process_destroy")
_ZERO = _lib.ZERO
_ETIMEDOUT = _lib.ETIMEDOUT
_OPTS_SIZE = ctypes.sizeof(_lib.ProcessOptions)
_ProcessOptions = _lib.ProcessOptions
_START_FORK = _lib.MPX_START_FORK
_WNOHANG = os.WNOHANG
_fork = os.fork
_getpid = os.getpid


def options(process_obj, method):
    """mpx_process_options for `process_obj` (name and daemon flag). Zero is every
    field's default, so the struct needs only its size (no mpx_process_options_init call);
    it keeps the name's bytes alive itself."""
    opts = _ProcessOptions()
    opts.size = _OPTS_SIZE
    opts.method = method
    opts.name = process_obj._name.encode("utf-8")
    opts.daemon = 1 if process_obj._config.get('daemon') else 0
    return opts


class HandlePopen:
    """A started child behind an mpx_process handle: multiprocessing's Popen interface
    (pid, sentinel, returncode, poll, wait, terminate, kill, interrupt, close)."""

    method = None
    _h = None
    _sentinel_fd = None

    def __init__(self, process_obj):
        self.returncode = None
        self.pid = None
        self._owner = process_obj._parent_pid   # start() checked it is this process
        self._launch(process_obj)

    @property
    def sentinel(self):
        fd = self._sentinel_fd
        if fd is None:
            out = c_int()
            rc = _sentinel(self._h, byref(out))
            if rc < 0:
                raise error(rc, "sentinel")
            fd = self._sentinel_fd = out.value
        return fd

    def _ended(self):
        code = c_int()
        rc = _exitcode(self._h, byref(code))
        if rc < 0:
            raise error(rc, "exitcode")
        self.returncode = code.value
        return self.returncode

    def poll(self, flag=_WNOHANG):
        if self.returncode is None:
            if flag & _WNOHANG:
                rc = _join(self._h, _ZERO)
            else:
                rc = sliced_wait(_join, self._h, None)
            if rc == 0:
                return self._ended()
            if rc != _ETIMEDOUT:
                raise error(rc, "poll")
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            rc = sliced_wait(_join, self._h, timeout)
            if rc == 0:
                return self._ended()
            if rc != _ETIMEDOUT:
                raise error(rc, "join")
        return self.returncode

    def _send_signal(self, fn, what):
        if self.returncode is None:
            rc = fn(self._h)
            if rc < 0:
                raise error(rc, what)

    def terminate(self):
        self._send_signal(C.mpx_process_terminate, "terminate")

    def kill(self):
        self._send_signal(C.mpx_process_kill, "kill")

    def interrupt(self):
        self._send_signal(C.mpx_process_interrupt, "interrupt")

    def close(self):
        h, self._h = self._h, None
        if h is not None:
            rc = C.mpx_process_close(h)
            if rc < 0:
                raise error(rc, "close")

    def __del__(self):
        h = self._h
        if h is not None and self._owner == _getpid():
            self._h = None
            try:
                _destroy(h)
            except Exception:  # interpreter shutdown
                pass


class Popen(HandlePopen):
    """A child made by os.fork() and adopted by the library."""

    method = 'fork'

    def _launch(self, process_obj):
        opts = options(process_obj, _START_FORK)
        p_opts = byref(opts)
        parent = c_int64(self._owner)
        kit = fork_kit()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        if opts.daemon and _threading.current_thread() is not _threading.main_thread():
            # A daemon's parent-death signal fires when the *thread* that forked it ends:
            # fork it from a thread that lives as long as the process.
            pid = _on_forker(lambda: _fork_child(process_obj, p_opts, parent, kit))
        else:
            pid = _fork_child(process_obj, p_opts, parent, kit)
        handle = c_void_p()
        rc = _adopt(byref(handle), c_int64(pid), p_opts)
        if rc < 0:
            exc = error(rc, "adopt the forked child")
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise exc
        self.pid = pid
        self._h = handle


def _fork_child(process_obj, p_opts, parent, kit):
    pid = _fork()
    if pid == 0:
        _child(process_obj, p_opts, parent, kit)
    return pid


# ---- the forker thread ---------------------------------------------------------------------

_forker = None          # (pid, queue) of this process's forker thread
_forker_lock = None


def _on_forker(fn):
    """fn() run on this process's forker thread (started on first use); its result."""
    global _forker, _forker_lock
    if _forker_lock is None:
        _forker_lock = _threading.Lock()
        os.register_at_fork(after_in_child=_forget_forker)
    with _forker_lock:
        if _forker is None or _forker[0] != _getpid():
            import queue
            q = queue.SimpleQueue()
            _threading.Thread(target=_forker_loop, args=(q,), name="mpx-forker",
                              daemon=True).start()
            _forker = (_getpid(), q)
        q = _forker[1]
    box = [None, None, _threading.Event()]
    q.put((fn, box))
    box[2].wait()
    if box[1] is not None:
        raise box[1]
    return box[0]


def _forker_loop(q):
    while True:
        fn, box = q.get()
        try:
            box[0] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box[1] = e
        box[2].set()


def _forget_forker():
    # The forker thread does not exist in a forked child (and its lock may have been held).
    global _forker, _forker_lock
    _forker = None
    _forker_lock = _threading.Lock()


def _child(process_obj, p_opts, parent, kit):
    code = 1
    try:
        rc = _after_fork(p_opts, parent)
        if rc < 0:
            raise error(rc, "take the child's identity")
        code = process_obj._bootstrap(True, kit)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
