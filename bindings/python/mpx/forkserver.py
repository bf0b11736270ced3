"""The forkserver: a single-threaded Python process that forks the children of the
forkserver start method.

It is started once per client process, as a spawned interpreter (``main()`` below), gets the
client's preparation data and imports the main module once (as multiprocessing's preload of
``__main__``: children do not run it again), then serves requests on a SOCK_SEQPACKET
control socket. A request carries, by SCM_RIGHTS, one end of a socketpair made for that child
(plus any descriptor the pickled process object needs) and the pickled process object (in
the message, or when large on the child's socket). The server forks with ``os.fork()``; the
child unpickles the object and runs it; the server writes the child's pid on the child's
socket at once, and its exit code (as ``Process.exitcode``) when it has reaped it. The
client's end of that socket is the child's sentinel.

When the control socket reaches EOF the client has died (or exited): the server kills its
daemonic children with SIGKILL and exits; non-daemonic children go on. Children call
``mpx_process_after_fork`` with their daemon flag, so a daemon also dies if the server is
killed.
"""

import _signal
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading

from . import _lib

__all__ = ["ensure_running", "set_forkserver_preload", "stop", "main"]

# Request: daemon flag, payload inline (1) or following on the child's socket (0), payload size.
_REQUEST = struct.Struct("<BBxxxxxxQ")
_PID = struct.Struct("<q")
_STATUS = struct.Struct("<i")
_FDS = struct.Struct("i")
_SIGINT = signal.SIGINT.value
_default_int_handler = signal.default_int_handler
_INLINE_MAX = 32 * 1024
_MAX_FDS = 64
_SERVER_NAME = "ForkServer"


# ---- the client: this process's forkserver -------------------------------------------------

class _Client:
    def __init__(self):
        self.lock = threading.Lock()
        self.ctl = None          # our end of the control socket
        self.handle = None       # the server's mpx_process handle (the library reaps it)
        self.pid = None
        self.sys_path = None     # sys.path when the server was prepared
        self.authkey = None      # the library's authkey when the server was started
        self.preload = []        # modules the server imports at start (set_forkserver_preload)
        self.method = None       # mpx's default start method when it was started
        self.cwd = None

    def ensure_running(self):
        with self.lock:
            if self.ctl is None:
                self._start()
            return self

    def _start(self):
        from . import spawn
        from .popen_spawn import start_program
        from .process import _c_authkey, current_process
        prep = spawn.get_preparation_data(_SERVER_NAME)
        prep.pop('name', None)
        me = current_process()
        prep['mpx_client'] = (me.name, os.getpid())   # children's parent_process()
        prep['mpx_preload'] = list(self.preload)
        code = spawn.shipped_code()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r, w = os.pipe()
        try:
            argv = spawn.get_command_line("from mpx.forkserver import main; main(f, 4)")
            handle = start_program(argv, [r, theirs.fileno()], _SERVER_NAME)
        except BaseException:
            mine.close()
            os.close(w)
            raise
        finally:
            theirs.close()
            os.close(r)
        self.authkey = _c_authkey()   # what the server and its children inherit
        self.pid = _lib.out_value(_lib.C.mpx_process_pid, handle, _lib.c_int64)
        self.handle = handle
        self.sys_path = list(sys.path)
        self.cwd = prep['dir']
        self.method = prep['start_method']
        spawn.write_to_child(w, code, pickle.dumps(prep, pickle.HIGHEST_PROTOCOL))
        self.ctl = mine
        _register_at_fork()

    def _forget(self, destroy=True):
        ctl, self.ctl = self.ctl, None
        if ctl is not None:
            ctl.close()
        handle, self.handle = self.handle, None
        self.pid = None
        if destroy and handle is not None:
            # The library reaps the server when it ends (a forked child must not: the
            # handle is its parent's).
            _lib.C.mpx_process_destroy(handle)

    def stop(self, timeout):
        with self.lock:
            handle = self.handle
            self._forget(False)   # EOF on its control socket: the server exits
            if handle is not None:
                C = _lib.C
                if C.mpx_process_join(handle, _lib.ms_from_timeout(timeout)) < 0:
                    C.mpx_process_kill(handle)
                    C.mpx_process_join(handle, -1)
                C.mpx_process_destroy(handle)

    def request(self, sock_fd, fds, daemon, payload):
        """Ask for a child; `payload` goes inline when small (True is returned), else the
        caller sends it on its end of the child's socket (False)."""
        inline = len(payload) <= _INLINE_MAX
        msg = _REQUEST.pack(1 if daemon else 0, 1 if inline else 0, len(payload))
        if inline:
            msg += payload
        with self.lock:
            for attempt in (0, 1):
                if self.ctl is None:
                    self._start()
                try:
                    socket.send_fds(self.ctl, [msg], [sock_fd, *fds])
                    return inline
                except (BrokenPipeError, ConnectionResetError, ConnectionRefusedError):
                    # The server died: start another once.
                    self._forget()
                    if attempt:
                        raise


_client = _Client()
_at_fork_registered = False


def ensure_running():
    """The forkserver of this process, started if needed."""
    return _client.ensure_running()


def set_forkserver_preload(module_names):
    """Modules the forkserver imports when it starts, besides the main module, so that its
    children do not import them each (multiprocessing's set_forkserver_preload; a hint:
    one that fails to import is skipped). Takes effect when the next server starts."""
    if not all(isinstance(m, str) for m in module_names):
        raise TypeError('module_names must be a list of strings')
    _client.preload = list(module_names)


def stop(timeout=5.0):
    """Stop this process's forkserver (the next forkserver child starts another). Its
    daemonic children are killed; the others go on, but their exit codes are lost (255)."""
    _client.stop(timeout)


def _after_fork_in_child():
    # A forked child is a new client: it must not share the parent's control socket (the
    # server would not see the parent's death, and two clients would mix their requests).
    if _client.ctl is not None or _client.lock.locked():
        _client.lock = threading.Lock()
        _client._forget(False)


def _register_at_fork():
    global _at_fork_registered
    if not _at_fork_registered:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _at_fork_registered = True


# ---- the server ------------------------------------------------------------------------------

def main(f, ctl_fd):
    """The forkserver process: prepare as the client says (the preparation data arrives on
    the pipe `f`), then serve the control socket `ctl_fd` until the client goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is for the client and children
    with f:
        try:
            prep = pickle.load(f)
        except EOFError:
            return
    ctl = socket.socket(fileno=ctl_fd)
    from . import spawn
    client = prep.pop('mpx_client', None)
    preload = prep.pop('mpx_preload', ())
    try:
        spawn.prepare(prep)
    except BaseException:
        # The main module failed to import: children that need it will say so.
        import traceback
        traceback.print_exc()
    for name in preload:
        try:
            __import__(name)
        except ImportError:
            pass
    _Server(ctl, client).serve()


class _Server:
    def __init__(self, ctl, client):
        # What every child needs, imported or made once here rather than in each child.
        from . import context, popen_fork, process, spawn
        self.stdin = process._open_devnull() if sys.stdin is not None else None
        self.kit = process.ForkKit(client[0], client[1], self.stdin) if client else None
        self.needs = (spawn, popen_fork.options, popen_fork._after_fork,
                      context._force_start_method, process.ForkKit, process._set_c_authkey)
        self.ctl = ctl
        self.ctl_fd = ctl.fileno()
        self.pid = os.getpid()
        self.cwd = os.getcwd()
        self.ep = select.epoll()
        self.ep.register(self.ctl_fd, select.EPOLLIN)
        self.children = {}   # pidfd -> (pid, socket fd, daemon)
        self.anc_size = socket.CMSG_SPACE(_MAX_FDS * 4)

    def serve(self):
        ctl_fd = self.ctl_fd
        poll = self.ep.poll
        while True:
            for fd, _ in poll():
                if fd == ctl_fd:
                    self._request()
                else:
                    self._reap(fd)

    def _request(self):
        fds = []
        try:
            msg, anc, _, _ = self.ctl.recvmsg(_REQUEST.size + _INLINE_MAX, self.anc_size)
        except OSError:
            msg, anc = b"", []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += _FDS.iter_unpack(data[:len(data) - len(data) % 4])
        fds = [f[0] for f in fds]
        if len(msg) < _REQUEST.size or not fds:
            for f in fds:
                os.close(f)
            if not msg:
                self._client_gone()
            return
        daemon, inline, size = _REQUEST.unpack_from(msg)
        payload = msg[_REQUEST.size:] if inline else None
        sock_fd, extra = fds[0], fds[1:]
        pid = os.fork()
        if pid == 0:
            self._in_child(sock_fd, payload, size, extra)
        for f in extra:
            os.close(f)
        try:
            os.write(sock_fd, _PID.pack(pid))
        except OSError:
            pass
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, sock_fd, daemon)
        self.ep.register(pidfd, select.EPOLLIN)

    def _reap(self, pidfd):
        pid, sock_fd, _ = self.children.pop(pidfd)
        self.ep.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        try:
            os.write(sock_fd, _STATUS.pack(os.waitstatus_to_exitcode(status)))
        except OSError:
            pass
        os.close(sock_fd)

    def _client_gone(self):
        for pid, _, daemon in self.children.values():
            if daemon:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os._exit(0)

    def _in_child(self, sock_fd, payload, size, extra):
        # Plain os.close and _signal: a fork child pays for every page it touches.
        code = 1
        try:
            self.ep.close()
            os.close(self.ctl_fd)
            for pidfd, (_, fd, _) in self.children.items():
                os.close(pidfd)
                os.close(fd)
            _signal.signal(_SIGINT, _default_int_handler)
            if payload is None:
                payload = _read_exactly(sock_fd, size)
            os.close(sock_fd)
            code = self._run_child(payload, extra)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _run_child(self, payload, extra):
        spawn, options, after_fork, force_start_method, ForkKit, set_authkey = self.needs
        if extra:
            spawn._inherited_fds[:] = extra
        cwd, sys_path, method, authkey, proc = pickle.loads(payload)
        opts = options(proc, _lib.MPX_START_FORKSERVER)
        rc = after_fork(_lib.byref(opts), _lib.c_int64(self.pid))
        if rc < 0:
            raise _lib.error(rc, "take the child's identity")
        if authkey is not None:
            set_authkey(authkey)
        if cwd != self.cwd:
            os.chdir(cwd)
        if sys_path is not None:
            sys.path[:] = sys_path
        if method is not None:
            force_start_method(method)
        kit = self.kit
        if kit is None or kit.key != (proc._parent_name, proc._parent_pid):
            kit = ForkKit(proc._parent_name, proc._parent_pid, self.stdin)
        return proc._bootstrap(True, kit)


def _read_exactly(fd, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError("the client closed the child's socket before sending it all")
        got += k
    return buf
