"""The fork start method, and the Popen of every child that is a libmpx process object.

The child is made by ``os.fork()``, so that the interpreter reinitialises itself (its locks,
threads and at-fork handlers) as it does for multiprocessing; the library then adopts it
(``mpx_process_adopt``: it reaps, signals and gives the sentinel, a pidfd), and the child
takes its identity from ``mpx_process_after_fork`` (name, daemon: a daemon dies with its
parent even when the parent is SIGKILLed).

The child's path is kept short on purpose: every page it writes is a copy-on-write fault, the
main cost of a forked Python child.
"""

import ctypes
import os
import signal
import sys

from . import _lib
from ._lib import C, c_int, c_int64, c_void_p, byref, error, sliced_wait

__all__ = ["Popen"]

_join = _lib.raw("mpx_process_join")
_exitcode = _lib.raw_gil("mpx_process_exitcode")
_adopt = _lib.raw_gil("mpx_process_adopt")
_after_fork = _lib.raw_gil("mpx_process_after_fork")
_ZERO = _lib.ZERO
_ETIMEDOUT = _lib.ETIMEDOUT
_OPTS_SIZE = ctypes.sizeof(_lib.ProcessOptions)


def options(process_obj, method):
    """mpx_process_options for `process_obj` (name and daemon flag); the caller keeps the
    returned name bytes alive with the struct."""
    opts = _lib.ProcessOptions()
    _lib.check(C.mpx_process_options_init(byref(opts), _OPTS_SIZE), "process options")
    opts.method = method
    opts.name = process_obj._name.encode("utf-8")
    opts.daemon = 1 if process_obj._config.get('daemon') else 0
    return opts


class HandlePopen:
    """A started child behind an mpx_process handle: multiprocessing's Popen interface
    (pid, sentinel, returncode, poll, wait, terminate, kill, close)."""

    method = None
    _h = None

    def __init__(self, process_obj):
        self.returncode = None
        self.pid = None
        self._owner = os.getpid()
        self._launch(process_obj)

    def _take(self, handle):
        self._h = handle
        fd = c_int()
        self._check(C.mpx_process_sentinel(handle, byref(fd)), "sentinel")
        self.sentinel = fd.value

    def _check(self, rc, what):
        if rc < 0:
            raise error(rc, what)

    def _ended(self):
        code = c_int()
        rc = _exitcode(self._h, byref(code))
        if rc < 0:
            raise error(rc, "exitcode")
        self.returncode = code.value
        return self.returncode

    def poll(self, flag=os.WNOHANG):
        if self.returncode is None:
            if flag & os.WNOHANG:
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
            self._check(fn(self._h), what)

    def terminate(self):
        self._send_signal(C.mpx_process_terminate, "terminate")

    def kill(self):
        self._send_signal(C.mpx_process_kill, "kill")

    def interrupt(self):
        self._send_signal(C.mpx_process_interrupt, "interrupt")

    def close(self):
        h, self._h = self._h, None
        if h is not None:
            self._check(C.mpx_process_close(h), "close")

    def __del__(self):
        h = self._h
        if h is not None and self._owner == os.getpid():
            self._h = None
            try:
                C.mpx_process_destroy(h)
            except Exception:  # interpreter shutdown
                pass


class Popen(HandlePopen):
    """A child made by os.fork() and adopted by the library."""

    method = 'fork'

    def _launch(self, process_obj):
        opts = options(process_obj, _lib.MPX_START_FORK)
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        pid = os.fork()
        if pid == 0:
            _child(process_obj, opts, parent)
        handle = c_void_p()
        rc = _adopt(byref(handle), c_int64(pid), byref(opts))
        if rc < 0:
            exc = error(rc, "adopt the forked child")
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise exc
        self.pid = pid
        self._take(handle)


def _child(process_obj, opts, parent):
    code = 1
    try:
        rc = _after_fork(byref(opts), c_int64(parent))
        if rc < 0:
            raise error(rc, "take the child's identity")
        code = process_obj._bootstrap(fork=True)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
