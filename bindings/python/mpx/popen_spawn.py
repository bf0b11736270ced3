"""The spawn start method: a new interpreter, started by libmpx (MPX_START_SPAWN).

The process object and the preparation data are pickled before the child starts (any
descriptor a pickled object needs is passed along), then written into a pipe whose read end
is the child's descriptor 3; see mpx.spawn for the child's side.
"""

import ctypes
import os

from . import _lib, spawn
from ._lib import C, c_int, c_char_p, c_void_p, byref, error
from .popen_fork import HandlePopen, options

__all__ = ["Popen"]


def start_program(argv, fds, name, daemon=False):
    """Start argv[0] with argv through libmpx; fds become the child's 3, 4, ...
    Returns the started handle."""
    opts = _lib.ProcessOptions()
    opts.size = ctypes.sizeof(opts)
    _fill(opts, argv, fds)
    opts.name = name.encode("utf-8")
    opts.daemon = 1 if daemon else 0
    return _create_and_start(opts)


def _fill(opts, argv, fds):
    opts.method = _lib.MPX_START_SPAWN
    args = [os.fsencode(a) for a in argv]
    opts._argv = (c_char_p * (len(args) + 1))(*args, None)
    opts._fds = (c_int * len(fds))(*fds)
    opts.file = args[0]
    opts.argv = opts._argv
    opts.fds = opts._fds
    opts.fd_count = len(fds)


def _create_and_start(opts):
    handle = c_void_p()
    rc = C.mpx_process_create(byref(handle), byref(opts))
    if rc < 0:
        raise error(rc, "create the process")
    rc = C.mpx_process_start(handle)
    if rc < 0:
        exc = error(rc, "start the process")
        C.mpx_process_destroy(handle)
        raise exc
    return handle


class Popen(spawn.SpawningPopen, HandlePopen):
    """A child running a new interpreter."""

    method = 'spawn'

    def _launch(self, process_obj):
        prep = spawn.get_preparation_data(process_obj._name)
        data = self._pickle(prep, process_obj)
        code = spawn.shipped_code()
        r, w = os.pipe()
        try:
            opts = options(process_obj, _lib.MPX_START_SPAWN)
            argv = spawn.get_command_line(
                f"from mpx.spawn import spawn_main; spawn_main(f, {len(self._fds)})")
            _fill(opts, argv, [r, *self._fds])
            handle = _create_and_start(opts)
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._h = handle
        try:
            self.pid = _lib.out_value(C.mpx_process_pid, handle, _lib.c_int64)
        finally:
            spawn.write_to_child(w, code, data)
