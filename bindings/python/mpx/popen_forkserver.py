"""The forkserver start method, client side: children forked by this process's forkserver
(see mpx.forkserver). The child's socket is its sentinel: its pid arrives on it at start,
its exit code when the server has reaped it (EOF without one: the server died, exit code 255
as in multiprocessing).
"""

import os
import select
import signal
import socket
import sys

from . import forkserver, spawn
from ._lib import ms_from_timeout
from .process import ORIGINAL_DIR, _c_authkey

__all__ = ["Popen"]


def _readable(fd, timeout):
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(ms_from_timeout(timeout)))


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class Popen(spawn.SpawningPopen):
    method = 'forkserver'
    _sock = None

    def __init__(self, process_obj):
        self.returncode = None
        self.pid = None
        self._launch(process_obj)

    def _launch(self, process_obj):
        from .context import get_start_method
        client = forkserver.ensure_running()
        sys_path = None
        if sys.path != client.sys_path:
            sys_path = [ORIGINAL_DIR if p == '' else p for p in sys.path]
        key = _c_authkey()   # the server's children have the key it started with
        method = get_start_method()
        data = self._pickle((os.getcwd(), sys_path, method if method != client.method else None,
                             key if key != client.authkey else None, process_obj))
        mine, theirs = socket.socketpair()
        try:
            inline = client.request(theirs.fileno(), self._fds, process_obj.daemon, data)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._sock = mine
        self.sentinel = mine.fileno()
        try:
            if not inline:
                mine.sendall(data)
            raw = _recv_exactly(mine, forkserver._PID.size)
        except OSError:
            raw = b""
        if len(raw) < forkserver._PID.size:
            self.close()
            raise EOFError("the forkserver did not start the child (it died?)")
        self.pid = forkserver._PID.unpack(raw)[0]

    def poll(self, flag=os.WNOHANG):
        if self.returncode is None:
            if not _readable(self.sentinel, 0 if flag & os.WNOHANG else None):
                return None
            raw = _recv_exactly(self._sock, forkserver._STATUS.size)
            if len(raw) < forkserver._STATUS.size:
                self.returncode = 255
            else:
                self.returncode = forkserver._STATUS.unpack(raw)[0]
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            if not _readable(self.sentinel, timeout):
                return None
            return self.poll(0)
        return self.returncode

    def _send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self):
        self._send_signal(signal.SIGTERM)

    def kill(self):
        self._send_signal(signal.SIGKILL)

    def interrupt(self):
        self._send_signal(signal.SIGINT)

    def close(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    __del__ = close
