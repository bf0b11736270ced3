"""Managers: ``multiprocessing.managers`` for mpx.

A manager is a server process holding Python objects (dicts, lists, namespaces, locks,
queues, a pool, or instances of any class registered with ``BaseManager.register``) that
other processes use through proxies. The API and the semantics are Python's: ``Manager()``,
``SyncManager``, ``BaseManager`` (``register``, ``start``, ``connect``, ``shutdown``,
``get_server``/``serve_forever``, ``address``, ``join``, ``with``), ``BaseProxy`` with
``_callmethod`` and ``_getvalue``, ``AutoProxy``, ``MakeProxyType``, the proxies of
SyncManager's types, nested proxies, reference counting, ``RemoteError`` with the remote
traceback. Proxies pickle and work in children of every start method and over TCP.

The server is pure Python on mpx's Listener and Client (authenticated, wire-compatible with
multiprocessing.connection), one thread per client connection. What differs:

* The fast local path. A client on the same host (a unix socket address, or TCP to a
  loopback address) also makes two mpx queues in shared memory, for requests and replies,
  and sends their tokens when it connects; the calls then go through them: each side spins
  briefly in C before sleeping, so a call costs no socket round trip and usually no process
  wake-up. If anything in that fails, the socket carries the calls, as it does for remote
  clients (``MPX_MANAGER_NO_SHM=1`` forces the socket).
* One connection per thread per manager serves every proxy of that thread, and one control
  connection per process carries create, incref and decref. References are counted per
  client process: when a process goes away (even by SIGKILL) its references are released,
  and a Lock, RLock or Condition a connection holds when it closes is released.
* The default address is an abstract unix socket (nothing in the file system to leave
  behind); the server exits when the process that started it ends.
* Only the 'pickle' serializer.
"""

import array
import os
import pickle
import queue
import sys
import threading
import time
import traceback
import types

from multiprocessing import reduction as _mp_reduction
from multiprocessing import util as _util
from multiprocessing.context import get_spawning_popen, ProcessError
from multiprocessing.process import AuthenticationString

from . import process as _process
from .connection import Listener, Client

__all__ = ["BaseManager", "SyncManager", "BaseProxy", "Token", "RemoteError", "Namespace",
           "Value", "Array", "AutoProxy", "MakeProxyType", "IteratorProxy", "AcquirerProxy",
           "ConditionProxy", "EventProxy", "BarrierProxy", "NamespaceProxy", "ValueProxy",
           "ListProxy", "DictProxy", "ArrayProxy", "PoolProxy", "public_methods",
           "all_methods", "SharedMemoryManager"]

_getpid = os.getpid

# Reply kinds.
_RETURN, _ERROR, _TRACEBACK, _PROXY = 0, 1, 2, 3


class RemoteError(Exception):
    """An error in the manager server, with its traceback as text."""

    def __str__(self):
        return ('\n' + '-' * 75 + '\n' + str(self.args[0]) + '-' * 75)


class Token:
    """What identifies a shared object: its type id, its server's address, its id there."""

    __slots__ = ("typeid", "address", "id")

    def __init__(self, typeid, address, id):
        self.typeid = typeid
        self.address = address
        self.id = id

    def __reduce__(self):
        return Token, (self.typeid, self.address, self.id)

    def __repr__(self):
        return f"{type(self).__name__}(typeid={self.typeid!r}, address={self.address!r}, id={self.id!r})"


def all_methods(obj):
    """The names of obj's callable attributes."""
    return [name for name in dir(obj) if callable(getattr(obj, name, None))]


def public_methods(obj):
    """The names of obj's callable attributes that do not start with '_'."""
    return [name for name in all_methods(obj) if name[0] != '_']


# As multiprocessing.managers: arrays pickle compactly, dict views as lists.
def _reduce_array(a):
    return array.array, (a.typecode, a.tobytes())


def _rebuild_as_list(obj):
    return list, (list(obj),)


_mp_reduction.register(array.array, _reduce_array)
for _view_type in (type({}.items()), type({}.keys()), type({}.values())):
    _mp_reduction.register(_view_type, _rebuild_as_list)
del _view_type


def _is_local(address):
    if isinstance(address, str):
        return True
    if isinstance(address, tuple):
        host = str(address[0])
        return host in ("localhost", "::1", "") or host.startswith("127.")
    return False


class _ShmLink:
    """One side of the fast local path: objects go out on one mpx queue and come in on the
    other. ``recv()`` waits one 100 ms slice in the library (spinning a moment, then
    sleeping, with the GIL released) and gives _NOTHING if nothing came."""

    __slots__ = ("send", "h", "b", "_in")

    def __init__(self, out_q, in_q):
        from . import _lib
        from .reduction import RecvBuffer
        self.send = out_q.put
        self._in = in_q
        self.h = in_q._h
        self.b = RecvBuffer(64 << 10)
        global _q_get, _SLICE, _RecvBuffer
        if _q_get is None:
            _q_get = _lib.raw("mpx_queue_get_into")
            _SLICE = _lib.SLICE
            _RecvBuffer = RecvBuffer

    def recv(self):
        b = self.b
        rc = _q_get(self.h, b.ptr, b.cap, b.pn, _SLICE)
        if not rc:
            return _loads(b.mv[:b.n.value])
        if rc == _ETIMEDOUT:
            return _NOTHING
        if rc == _ENOBUFS:
            # A large item: received into a buffer of its size (kept if not huge).
            big = _RecvBuffer(b.n.value)
            rc = _q_get(self.h, big.ptr, big.cap, big.pn, _SLICE)
            if not rc:
                if big.size <= (16 << 20):
                    self.b = big
                return _loads(big.mv[:big.n.value])
        raise EOFError(f"manager queue failed ({rc})")


_q_get = _SLICE = _RecvBuffer = None
_NOTHING = object()
_ETIMEDOUT = -4
_ENOBUFS = -15
_loads = pickle.loads


# ==== server ================================================================================

# The servers this process runs, by address: a proxy unpickled here for one of them is owned
# by the server (it holds a reference without a connection).
_servers = {}

_OWNED_TYPES = frozenset([type(threading.Lock()), type(threading.RLock()), threading.Condition])


class _Session:
    """A client process: its connections and the references it holds."""

    __slots__ = ("nconn", "refs", "states")

    def __init__(self):
        self.nconn = 0
        self.refs = {}
        self.states = []


class _ConnState:
    """One client connection: its session and the locks acquired through it."""

    __slots__ = ("session", "held")

    def __init__(self, session):
        self.session = session
        self.held = []


def _fallback_getvalue(obj):
    return obj


_FALLBACKS = {"__str__": str, "__repr__": repr, "#GETVALUE": _fallback_getvalue}


class Server:
    """The manager's server: ``serve_forever()`` accepts clients (one thread each) until a
    client asks for shutdown."""

    public = ("shutdown", "create", "incref", "decref", "get_methods", "number_of_objects",
              "debug_info", "dummy", "address")

    def __init__(self, registry, address, authkey, serializer="pickle"):
        if not isinstance(authkey, bytes):
            raise TypeError(f"Authkey {authkey!r} is type {type(authkey)!s}, not bytes")
        if serializer != "pickle":
            raise ValueError(f"serializer {serializer!r}: mpx managers only pickle")
        self.registry = registry
        self.authkey = AuthenticationString(authkey)
        if address is None:
            address = _new_address()
        self.listener = Listener(address=address, backlog=128, authkey=bytes(authkey))
        self.address = self.listener.address
        self.id_to_obj = {'0': (None, frozenset(), None)}
        self.id_to_refcount = {}
        self.mutex = threading.RLock()
        self.stop_event = threading.Event()
        self.sessions = {}
        self.local = _Session()     # the references of proxies this process unpickled
        self.conns = set()
        self.threads = []
        self.funcs = {name: getattr(self, "_f_" + name) for name in self.public}

    # ---- running ----

    def serve_forever(self):
        """Serve until shutdown; then exit the process (SystemExit), as Python's does."""
        _servers[self.address] = self
        try:
            accepter = threading.Thread(target=self._accepter, daemon=True)
            accepter.start()
            try:
                while not self.stop_event.wait(1.0):
                    pass
            except (KeyboardInterrupt, SystemExit):
                pass
        finally:
            self._stop()
        sys.exit(0)

    def _stop(self):
        self.stop_event.set()
        for address, server in list(_servers.items()):
            if server is self:
                del _servers[address]
        self.listener.close()
        with self.mutex:
            conns = list(self.conns)
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        deadline = time.monotonic() + 1.0
        for t in list(self.threads):
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def _accepter(self):
        while not self.stop_event.is_set():
            try:
                c = self.listener.accept()
            except Exception:
                if self.listener._h is None:
                    return
                continue            # a client with a wrong key, a failed handshake
            t = threading.Thread(target=self._handle, args=(c,), daemon=True)
            self.threads = [x for x in self.threads if x.is_alive()] + [t]
            t.start()

    # ---- a client connection ----

    def _handle(self, conn):
        """Serve one connection: its hello (session id, queue tokens), then its requests."""
        with self.mutex:
            self.conns.add(conn)
        st = None
        req = rep = None
        try:
            try:
                sid, tokens = conn.recv()
            except Exception:
                return                  # not a client of ours
            with self.mutex:
                sess = self.sessions.get(sid)
                if sess is None:
                    sess = self.sessions[sid] = _Session()
                sess.nconn += 1
                st = _ConnState(sess)
                sess.states.append(st)
            if tokens:
                try:
                    from .queues import Queue
                    req = Queue.from_token(tokens[0])
                    rep = Queue.from_token(tokens[1])
                except Exception:
                    req = rep = None
            conn.send(req is not None)
            if req is not None:
                self._serve_shm(conn, st, req, rep)
            else:
                self._serve_socket(conn, st)
        except Exception:
            pass
        finally:
            if st is not None:
                self._disconnected(sid, st)
            with self.mutex:
                self.conns.discard(conn)
            for q in (req, rep):
                if q is not None:
                    q.close()
            try:
                conn.close()
            except Exception:
                pass

    def _serve_socket(self, conn, st):
        """Serve requests from the socket until the client goes (False) or, when it has
        queues, switches back to them (True)."""
        recv = conn.recv
        send = conn.send
        dispatch = self._dispatch
        while not self.stop_event.is_set():
            try:
                msg = recv()
            except (EOFError, OSError):
                return False
            except Exception:
                reply = (_TRACEBACK, traceback.format_exc())   # a frame that does not unpickle
            else:
                if type(msg) is tuple and msg and msg[0] is None and msg[1:2] == ("#shm",):
                    send((_RETURN, None))
                    return True
                reply = dispatch(msg, st)
            try:
                send(reply)
            except (EOFError, OSError):
                return False
            except Exception:
                send((_TRACEBACK, traceback.format_exc()))
        return False

    def _serve_shm(self, conn, st, req, rep):
        link = _ShmLink(rep, req)
        recv = link.recv
        put = link.send
        dispatch = self._dispatch
        stop = self.stop_event
        while True:
            try:
                msg = recv()
            except EOFError:
                return
            except Exception:
                reply = (_TRACEBACK, traceback.format_exc())
            else:
                if msg is _NOTHING:
                    if stop.is_set():
                        return
                    # Nothing comes on the socket in this mode but EOF (the client is
                    # gone) or requests of a client that switched to it.
                    if conn.poll(0) and not self._serve_socket(conn, st):
                        return
                    continue
                if type(msg) is tuple and msg and msg[0] is None and msg[1:2] == ("#socket",):
                    put((_RETURN, None))
                    if not self._serve_socket(conn, st):
                        return
                    continue
                reply = dispatch(msg, st)
            try:
                put(reply)
            except (OSError, ValueError):
                return
            except Exception:
                put((_TRACEBACK, traceback.format_exc()))

    def _dispatch(self, msg, st):
        try:
            ident, name, args, kwds = msg
            if ident is None:
                fn = self.funcs.get(name)
                if fn is None:
                    raise AttributeError(f"{name!r} is not a function of the manager server")
                return (_RETURN, fn(st, *args, **kwds) if kwds else fn(st, *args))
            obj, exposed, gettypeid = self.id_to_obj[ident]
            if name in exposed:
                try:
                    res = getattr(obj, name)(*args, **kwds) if kwds else getattr(obj, name)(*args)
                except Exception as e:
                    return (_ERROR, e)
                if gettypeid is not None:
                    typeid = gettypeid.get(name)
                    if typeid:
                        rident, rexposed = self._create(st, typeid, res, _adopt=True)
                        return (_PROXY, (rexposed, Token(typeid, self.address, rident)))
                if type(obj) in _OWNED_TYPES:
                    self._track(st, obj, name, res)
                return (_RETURN, res)
            fb = _FALLBACKS.get(name)
            if fb is not None:
                return (_RETURN, fb(obj))
            raise AttributeError(f"method {name!r} of {type(obj)!r} object is not in "
                                 f"exposed={tuple(sorted(exposed))!r}")
        except Exception:
            return (_TRACEBACK, traceback.format_exc())

    def _track(self, st, obj, name, res):
        """Remember the locks a connection holds, to release them if it goes."""
        if name == "acquire":
            if res:
                st.held.append(obj)
        elif name == "release":
            # A Lock may be released through another connection of the same client.
            with self.mutex:
                for s in [st] + st.session.states:
                    for i, o in enumerate(s.held):
                        if o is obj:
                            del s.held[i]
                            return

    def _disconnected(self, sid, st):
        # Locks held through this connection: released here, in the thread that took them
        # (an RLock's owner), as many times as they were taken.
        with self.mutex:
            held, st.held = st.held, []
        for obj in reversed(held):
            try:
                obj.release()
            except Exception:
                pass
        drop = []
        with self.mutex:
            sess = st.session
            sess.states.remove(st)
            sess.nconn -= 1
            if sess.nconn == 0:
                if self.sessions.get(sid) is sess:
                    del self.sessions[sid]
                for ident, n in sess.refs.items():
                    if n > 0:
                        drop.extend(self._decref_locked(ident, n))
                sess.refs.clear()
        del drop                        # the objects go outside the lock

    # ---- objects and references ----

    def _create(self, st, typeid, *args, _adopt=False, **kwds):
        if _adopt:
            obj = args[0]
            _, exposed, method_to_typeid, _ = self.registry[typeid]
        else:
            callable_, exposed, method_to_typeid, _ = self.registry[typeid]
            if callable_ is None:
                if kwds or len(args) != 1:
                    raise ValueError("Without callable, must have one non-keyword argument")
                obj = args[0]
            else:
                obj = callable_(*args, **kwds)
        if exposed is None:
            exposed = public_methods(obj)
        if method_to_typeid is not None:
            if not isinstance(method_to_typeid, dict):
                raise TypeError(f"Method_to_typeid {method_to_typeid!r} must be a dict")
            exposed = list(exposed) + [m for m in method_to_typeid if m not in exposed]
        exposed = tuple(exposed)
        ident = '%x' % id(obj)
        with self.mutex:
            self.id_to_obj[ident] = (obj, frozenset(exposed), method_to_typeid)
            self.id_to_refcount[ident] = self.id_to_refcount.get(ident, 0) + 1
            refs = st.session.refs
            refs[ident] = refs.get(ident, 0) + 1
        return ident, exposed

    def _decref_locked(self, ident, n=1):
        """Drop n references (mutex held); returns the object when it goes, to be released
        by the caller outside the lock (its finalizers may call back in)."""
        count = self.id_to_refcount.get(ident)
        if count is None:
            return []
        count -= n
        if count > 0:
            self.id_to_refcount[ident] = count
            return []
        del self.id_to_refcount[ident]
        return [self.id_to_obj.pop(ident, None)]

    def _f_create(self, st, typeid, *args, **kwds):
        return self._create(st, typeid, *args, **kwds)

    def _f_incref(self, st, ident):
        with self.mutex:
            if ident not in self.id_to_refcount:
                raise KeyError(f"object {ident!r} is not held by the manager (released?)")
            self.id_to_refcount[ident] += 1
            refs = st.session.refs
            refs[ident] = refs.get(ident, 0) + 1

    def _f_decref(self, st, ident):
        with self.mutex:
            refs = st.session.refs
            n = refs.get(ident, 0)
            if n <= 0:
                return          # not a reference of this client: ignored
            refs[ident] = n - 1
            drop = self._decref_locked(ident)
        del drop

    def _f_get_methods(self, st, token):
        return tuple(self.id_to_obj[token.id][1])

    def _f_shutdown(self, st):
        threading.Timer(0.01, self.stop_event.set).start()

    def _f_number_of_objects(self, st):
        return len(self.id_to_refcount)

    def _f_debug_info(self, st):
        with self.mutex:
            return "\n".join(f"  {ident}:       refcount={n}\n    {str(self.id_to_obj[ident][0])[:75]}"
                             for ident, n in self.id_to_refcount.items())

    def _f_dummy(self, st):
        return None

    def _f_address(self, st):
        return self.address

    # proxies unpickled in the server process: a reference of the server's own
    def _own(self, ident):
        with self.mutex:
            self.id_to_refcount[ident] += 1
            refs = self.local.refs
            refs[ident] = refs.get(ident, 0) + 1

    def _disown(self, ident):
        with self.mutex:
            refs = self.local.refs
            n = refs.get(ident, 0)
            if n <= 0:
                return
            refs[ident] = n - 1
            drop = self._decref_locked(ident)
        del drop


def _new_address():
    return "\0mpx-manager-%d-%s" % (_getpid(), os.urandom(6).hex())


# ==== client side: connections ==============================================================

# Per process: a session id (new after a fork), the control connection to each server, the
# authkey known for each address. Per thread: the call channel to each server.
_session = [None, 0]
_controls = {}
_authkeys = {}
_tls = threading.local()
_aliases = {}           # the address a server gives itself -> the one this process reaches it at
_channels = {}          # address -> every channel of this process to it (to close them)
_NO_SHM = os.environ.get("MPX_MANAGER_NO_SHM", "") not in ("", "0")
_perf = time.perf_counter
_SLOW = 60e-6
_SLOW_RUN = 8
_PROBE_EVERY = 256


def _session_id():
    pid = _getpid()
    if _session[1] != pid:
        _session[0] = os.urandom(16)
        _session[1] = pid
    return _session[0]


def _after_fork_in_child():
    # Connections and queues of the parent are not this process's: forget them (their
    # descriptors stay open, unused, so that nothing of the parent's is closed or freed).
    # Only what exists: a fork child pays a copy-on-write fault for every page it touches
    # (see popen_fork), and most processes that import this module never use a manager.
    global _tls, _deferred_cv
    if _controls or _channels:
        _graveyard.append((dict(_controls), _tls))
        _controls.clear()
        _tls = threading.local()
        _channels.clear()
    if _deferred:
        del _deferred[:]
    _deferred_thread[0] = None
    if _deferred_cv._lock.locked():     # held by a parent's thread that is not here
        _deferred_cv = threading.Condition(threading.Lock())


_graveyard = []
_last_fork = [0.0]      # when this process last forked a child


def _after_fork_in_parent():
    _last_fork[0] = _monotonic()


os.register_at_fork(after_in_child=_after_fork_in_child, after_in_parent=_after_fork_in_parent)

# How long a proxy's reference outlives it after it was pickled or inherited by a fork.
_GRACE = 3.0
_monotonic = time.monotonic
_deferred = []          # (due, address, ident)
_deferred_cv = threading.Condition(threading.Lock())
_deferred_thread = [None]


def _defer_decref(address, ident, due):
    with _deferred_cv:
        _deferred.append((due, address, ident))
        t = _deferred_thread[0]
        if t is None or not t.is_alive():
            t = _deferred_thread[0] = threading.Thread(target=_deferred_worker, daemon=True,
                                                       name="mpx-manager-decref")
            t.start()
        _deferred_cv.notify()


def _deferred_worker():
    while True:
        with _deferred_cv:
            if not _deferred:
                return
            now = _monotonic()
            due = [d for d in _deferred if d[0] <= now]
            if not due:
                _deferred_cv.wait(min(d[0] for d in _deferred) - now)
                continue
            _deferred[:] = [d for d in _deferred if d[0] > now]
        for _, address, ident in due:
            _decref(address, ident)


def _authkey_for(address, authkey):
    if authkey is not None:
        return bytes(authkey)
    key = _authkeys.get(address)
    return key if key is not None else bytes(_process.current_process().authkey)


class _Channel:
    """A connection to a server for the calls of one thread: the socket, and over it the
    request and reply queues of the fast local path when the server could attach them."""

    __slots__ = ("conn", "req", "rep", "call", "address", "link", "slow", "calls")

    def __init__(self, address, authkey, fast=True):
        self.address = address
        self.conn = conn = Client(address, authkey=_authkey_for(address, authkey))
        tokens = None
        self.req = self.rep = None
        if fast and not _NO_SHM and _is_local(address):
            try:
                from .queues import Queue
                self.req = Queue()
                self.rep = Queue()
                tokens = (self.req.token, self.rep.token)
            except Exception:
                self.req = self.rep = None
        try:
            conn.send((_session_id(), tokens))
            fast = conn.recv()
        except BaseException:
            conn.close()
            raise
        self.slow = self.calls = 0
        if tokens and fast:
            self.link = _ShmLink(self.req, self.rep)
            self.call = self._call_shm
        else:
            self.req = self.rep = None
            self.call = self._call_socket

    def _call_socket(self, msg):
        conn = self.conn
        conn.send(msg)
        return conn.recv()

    # The queues pay off while both processes have a CPU: each side catches the other's
    # message while it spins. When other processes take the CPUs, spinning only delays the
    # side that should run: calls then take longer than a spin, and after _SLOW_RUN such
    # calls in a row the channel goes over the socket (which sleeps at once), trying the
    # queues again every _PROBE_EVERY calls.

    def _call_shm(self, msg):
        t0 = _perf()
        r = self._shm_round_trip(msg)
        if _perf() - t0 > _SLOW:
            self.slow += 1
            if self.slow >= _SLOW_RUN:
                self._shm_round_trip((None, "#socket", (), None))
                self.calls = 0
                self.call = self._call_socket_probing
        elif self.slow:
            self.slow = 0
        return r

    def _shm_round_trip(self, msg):
        link = self.link
        link.send(msg)
        r = link.recv()
        while r is _NOTHING:
            conn = self.conn
            if conn.poll(0):
                conn.recv()             # EOFError: the server is gone
                raise EOFError("the manager sent an unexpected message")
            r = link.recv()
        return r

    def _call_socket_probing(self, msg):
        conn = self.conn
        conn.send(msg)
        r = conn.recv()
        n = self.calls + 1
        if n >= _PROBE_EVERY:
            conn.send((None, "#shm", (), None))
            conn.recv()
            self.slow = 0
            self.call = self._call_shm
        else:
            self.calls = n
        return r

    def close(self):
        for q in (self.req, self.rep):
            if q is not None:
                q.close()
        self.conn.close()


def _channel(address, authkey):
    """This thread's channel to the server at address."""
    try:
        chans = _tls.chans
    except AttributeError:
        chans = _tls.chans = {}
    ch = chans.get(address)
    if ch is None:
        ch = chans[address] = _Channel(address, authkey)
        _channels.setdefault(address, []).append(ch)
    return ch


def _drop_channel(address):
    chans = getattr(_tls, "chans", None)
    if chans:
        ch = chans.pop(address, None)
        if ch is not None:
            try:
                _channels.get(address, []).remove(ch)
            except ValueError:
                pass
            try:
                ch.close()
            except Exception:
                pass


class _Control:
    """This process's connection for create, incref, decref and the other server functions
    (its session lives as long as it does)."""

    def __init__(self, address, authkey):
        self.lock = threading.Lock()
        self.owner = None           # the thread in call(), if any
        self.pending = []           # decrefs of proxies collected while it was busy
        self.chan = _Channel(address, authkey, fast=False)

    def call(self, name, args=(), kwds=None):
        with self.lock:
            self.owner = threading.get_ident()
            try:
                self._flush()
                kind, result = self.chan.call((None, name, args, kwds))
                self._flush()
            finally:
                self.owner = None
        if kind == _RETURN:
            return result
        raise _convert_error(kind, result)

    def decref(self, ident):
        if self.owner == threading.get_ident():
            # Collected in the middle of this thread's own call: sent when it ends.
            self.pending.append(ident)
            return
        with self.lock:
            self.owner = threading.get_ident()
            try:
                self._flush()
                self.chan.call((None, "decref", (ident,), None))
            finally:
                self.owner = None

    def _flush(self):
        pending = self.pending
        while pending:
            try:
                ident = pending.pop()
            except IndexError:
                return
            self.chan.call((None, "decref", (ident,), None))


def _control(address, authkey):
    c = _controls.get(address)
    if c is None:
        c = _controls[address] = _Control(address, authkey)
    return c


def _server_call(address, authkey, name, args=(), kwds=None):
    try:
        return _control(address, authkey).call(name, args, kwds)
    except (EOFError, OSError):
        c = _controls.pop(address, None)
        if c is not None:
            c.chan.close()
        raise


def _decref(address, ident):
    c = _controls.get(address)
    if c is None:
        return
    try:
        c.decref(ident)
    except Exception:
        pass


def _close_connections(address):
    """Forget this process's connections to a server that was shut down."""
    c = _controls.pop(address, None)
    if c is not None:
        try:
            c.chan.close()
        except Exception:
            pass
    _drop_channel(address)
    for ch in _channels.pop(address, ()):
        try:
            ch.close()
        except Exception:
            pass
    _authkeys.pop(address, None)


def _convert_error(kind, result):
    if kind == _ERROR:
        return result
    if kind == _TRACEBACK:
        return RemoteError(result)
    return ValueError(f"Unrecognized message type {kind!r}")


# ==== proxies ===============================================================================

# Proxy types by type id, for proxies whose results are proxies when they have no manager.
_proxytypes = {}


class BaseProxy:
    """A proxy for an object in a manager's server."""

    _owned = False
    _pid = None
    _isauto = False
    _pickled = 0.0
    _born = 0.0

    def __init__(self, token, serializer="pickle", manager=None, authkey=None, exposed=None,
                 incref=True, manager_owned=False):
        self._token = token
        self._id = token.id
        self._address = token.address
        self._manager = manager
        self._serializer = serializer
        if authkey is not None:
            self._authkey = AuthenticationString(authkey)
            _authkeys.setdefault(token.address, bytes(authkey))
        elif manager is not None:
            self._authkey = manager._authkey
        else:
            self._authkey = AuthenticationString(_authkey_for(token.address, None))
        self._owned = manager_owned
        self._born = _monotonic()
        if manager_owned:
            self._pid = _getpid()
        elif incref:
            self._incref()
        else:
            self._pid = _getpid()       # it adopts a reference this process holds
        _util.register_after_fork(self, BaseProxy._after_fork)

    def _callmethod(self, methodname, args=(), kwds=None):
        """Call methodname(*args, **kwds) on the referent; its result, or a proxy when the
        method's type id says so."""
        if self._pid != _getpid():
            self._after_fork()
        try:
            ch = _tls.chans[self._address]
        except (AttributeError, KeyError):
            ch = _channel(self._address, self._authkey)
        try:
            kind, result = ch.call((self._id, methodname, args, kwds or None))
        except (EOFError, OSError):
            _drop_channel(self._address)
            raise
        if kind == _RETURN:
            return result
        if kind == _PROXY:
            exposed, token = result
            token.address = self._address
            proxytype = None
            if self._manager is not None:
                entry = self._manager._registry.get(token.typeid)
                if entry is not None:
                    proxytype = entry[-1]
            if proxytype is None:
                proxytype = _proxytypes.get(token.typeid, AutoProxy)
            return proxytype(token, self._serializer, manager=self._manager,
                             authkey=self._authkey, exposed=exposed, incref=False)
        raise _convert_error(kind, result)

    def _getvalue(self):
        """A copy of the referent."""
        return self._callmethod("#GETVALUE")

    def _incref(self):
        if self._owned:
            return
        _server_call(self._address, self._authkey, "incref", (self._id,))
        self._pid = _getpid()

    def _after_fork(self):
        # In a child (forked, or one that unpickled this proxy twice): a reference of its own.
        if self._pid == _getpid():
            return
        if self._owned:
            self._pid = _getpid()
            return
        try:
            self._incref()
        except Exception as e:
            _util.info("incref failed: %s", e)

    def __del__(self):
        try:
            if self._pid != _getpid():
                return
            if self._owned:
                server = _servers.get(self._address)
                if server is not None:
                    server._disown(self._id)
            else:
                # Pickled, or inherited by a child forked, a moment ago: that process may
                # not have taken its own reference yet (a proxy passed inline to a child:
                # Process(target=f, args=(manager.list(),)) drops the parent's at once).
                last = self._pickled
                if _last_fork[0] > self._born and _last_fork[0] > last:
                    last = _last_fork[0]
                if last and _monotonic() - last < _GRACE:
                    _defer_decref(self._address, self._id, last + _GRACE)
                else:
                    _decref(self._address, self._id)
        except Exception:
            pass

    def __reduce__(self):
        self._pickled = _monotonic()
        kwds = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey
        if self._isauto:
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def __deepcopy__(self, memo):
        return self._getvalue()

    def __repr__(self):
        return "<%s object, typeid %r at %#x>" % (type(self).__name__, self._token.typeid, id(self))

    def __str__(self):
        try:
            return self._callmethod("__repr__")
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def RebuildProxy(func, token, serializer, kwds):
    """Unpickle a proxy: in its server's process, one the server owns; elsewhere a proxy
    with a reference of this process."""
    alias = _aliases.get(token.address)
    if alias is not None:
        token.address = alias
    server = _servers.get(token.address)
    kwds.pop("incref", None)
    if server is not None:
        server._own(token.id)
        return func(token, serializer, incref=False, manager_owned=True, **kwds)
    return func(token, serializer, incref=True, **kwds)


def MakeProxyType(name, exposed, _cache={}):
    """A proxy class whose methods call the referent's methods named in exposed."""
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass
    dic = {}
    for meth in exposed:
        exec(f"def {meth}(self, /, *args, **kwds):\n"
             f"    return self._callmethod({meth!r}, args, kwds)", dic)
    ProxyType = type(name, (BaseProxy,), dic)
    ProxyType._exposed_ = exposed
    _cache[(name, exposed)] = ProxyType
    return ProxyType


def AutoProxy(token, serializer="pickle", manager=None, authkey=None, exposed=None,
              incref=True, manager_owned=False):
    """A proxy whose methods are the referent's exposed ones (asked to the server if not
    given)."""
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if exposed is None:
        exposed = _server_call(token.address, authkey, "get_methods", (token,))
    ProxyType = MakeProxyType("AutoProxy[%s]" % token.typeid, exposed)
    proxy = ProxyType(token, serializer, manager=manager, authkey=authkey, incref=incref,
                      manager_owned=manager_owned)
    proxy._isauto = True
    return proxy


# ---- the types SyncManager registers, and their proxies ----------------------------------

class Namespace:
    """A bag of attributes (what ``manager.Namespace()`` holds)."""

    def __init__(self, /, **kwds):
        self.__dict__.update(kwds)

    def __repr__(self):
        items = [f"{k}={v!r}" for k, v in self.__dict__.items() if not k.startswith('_')]
        return "%s(%s)" % (type(self).__name__, ", ".join(sorted(items)))


class Value:
    """A value with a typecode (what ``manager.Value()`` holds; the lock is not used)."""

    def __init__(self, typecode, value, lock=True):
        self._typecode = typecode
        self._value = value

    def get(self):
        return self._value

    def set(self, value):
        self._value = value

    def __repr__(self):
        return "%s(%r, %r)" % (type(self).__name__, self._typecode, self._value)

    value = property(get, set)


def Array(typecode, sequence, lock=True):
    return array.array(typecode, sequence)


class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self):
        return self

    def __next__(self, *args):
        return self._callmethod("__next__", args)

    def send(self, *args):
        return self._callmethod("send", args)

    def throw(self, *args):
        return self._callmethod("throw", args)

    def close(self, *args):
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    _exposed_ = ("acquire", "release")

    def acquire(self, blocking=True, timeout=None):
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod("acquire", args)

    def release(self):
        return self._callmethod("release")

    def __enter__(self):
        return self._callmethod("acquire")

    def __exit__(self, exc_type, exc_val, exc_tb):
        return self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))

    def notify(self, n=1):
        return self._callmethod("notify", (n,))

    def notify_all(self):
        return self._callmethod("notify_all")

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self):
        return self._callmethod("is_set")

    def set(self):
        return self._callmethod("set")

    def clear(self):
        return self._callmethod("clear")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout=None):
        return self._callmethod("wait", (timeout,))

    def abort(self):
        return self._callmethod("abort")

    def reset(self):
        return self._callmethod("reset")

    @property
    def parties(self):
        return self._callmethod("__getattribute__", ("parties",))

    @property
    def n_waiting(self):
        return self._callmethod("__getattribute__", ("n_waiting",))

    @property
    def broken(self):
        return self._callmethod("__getattribute__", ("broken",))


class NamespaceProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key):
        if key[0] == '_':
            return object.__getattribute__(self, key)
        return object.__getattribute__(self, "_callmethod")("__getattribute__", (key,))

    def __setattr__(self, key, value):
        if key[0] == '_':
            return object.__setattr__(self, key, value)
        return object.__getattribute__(self, "_callmethod")("__setattr__", (key, value))

    def __delattr__(self, key):
        if key[0] == '_':
            return object.__delattr__(self, key)
        return object.__getattribute__(self, "_callmethod")("__delattr__", (key,))


class ValueProxy(BaseProxy):
    _exposed_ = ("get", "set")

    def get(self):
        return self._callmethod("get")

    def set(self, value):
        return self._callmethod("set", (value,))

    value = property(get, set)

    __class_getitem__ = classmethod(types.GenericAlias)


BaseListProxy = MakeProxyType("BaseListProxy", (
    "__add__", "__contains__", "__delitem__", "__getitem__", "__len__", "__mul__",
    "__reversed__", "__rmul__", "__setitem__", "append", "count", "extend", "index", "insert",
    "pop", "remove", "reverse", "sort", "__imul__"))


class ListProxy(BaseListProxy):
    def __iadd__(self, value):
        self._callmethod("extend", (value,))
        return self

    def __imul__(self, value):
        self._callmethod("__imul__", (value,))
        return self

    __class_getitem__ = classmethod(types.GenericAlias)


_BaseDictProxy = MakeProxyType("_BaseDictProxy", (
    "__contains__", "__delitem__", "__getitem__", "__ior__", "__iter__", "__len__", "__or__",
    "__reversed__", "__ror__", "__setitem__", "clear", "copy", "get", "items", "keys", "pop",
    "popitem", "setdefault", "update", "values"))
_BaseDictProxy._method_to_typeid_ = {"__iter__": "Iterator"}


class DictProxy(_BaseDictProxy):
    def __ior__(self, value):
        self._callmethod("__ior__", (value,))
        return self

    __class_getitem__ = classmethod(types.GenericAlias)


ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))

BasePoolProxy = MakeProxyType("PoolProxy", (
    "apply", "apply_async", "close", "imap", "imap_unordered", "join", "map", "map_async",
    "starmap", "starmap_async", "terminate"))
BasePoolProxy._method_to_typeid_ = {
    "apply_async": "AsyncResult", "map_async": "AsyncResult", "starmap_async": "AsyncResult",
    "imap": "Iterator", "imap_unordered": "Iterator"}


class PoolProxy(BasePoolProxy):
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


def _make_pool(*args, **kwds):
    from .pool import Pool
    return Pool(*args, **kwds)


# ==== managers ==============================================================================

class _State:
    INITIAL, STARTED, SHUTDOWN = 0, 1, 2

    def __init__(self):
        self.value = self.INITIAL


class BaseManager:
    """A manager: a server holding shared objects, started here (``start()``), reached at an
    address (``connect()``), or run in this process (``get_server().serve_forever()``)."""

    _registry = {}
    _Server = Server

    def __init__(self, address=None, authkey=None, serializer="pickle", ctx=None, *,
                 shutdown_timeout=1.0):
        if authkey is None:
            authkey = _process.current_process().authkey
        if serializer != "pickle":
            raise ValueError(f"serializer {serializer!r}: mpx managers only pickle")
        self._address = address
        self._authkey = AuthenticationString(authkey)
        self._state = _State()
        self._serializer = serializer
        if ctx is None:
            from .context import get_context
            ctx = get_context()
        self._ctx = ctx
        self._shutdown_timeout = shutdown_timeout
        self._process = None

    def get_server(self):
        """A Server for this manager's registry, to run in this process."""
        if self._state.value != _State.INITIAL:
            raise ProcessError("server already started" if self._state.value == _State.STARTED
                               else "manager has shut down")
        return self._Server(self._registry, self._address, bytes(self._authkey), self._serializer)

    def connect(self):
        """Connect to the manager's server at address (started elsewhere)."""
        _authkeys[self._address] = bytes(self._authkey)
        own = _server_call(self._address, self._authkey, "address")
        if own != self._address:
            # A server bound to 0.0.0.0, or reached through a tunnel or another name: the
            # proxies it sends inside objects name its own address, reached here at ours.
            _aliases[own] = self._address
            server = _servers.get(own)
            if server is not None:      # it runs in this process (get_server)
                _servers[self._address] = server
        self._state.value = _State.STARTED

    def start(self, initializer=None, initargs=()):
        """Start the server in a new process (this manager's context's start method)."""
        if self._state.value != _State.INITIAL:
            raise ProcessError("Already started server" if self._state.value == _State.STARTED
                               else "Manager has shut down")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        from .connection import Pipe
        mine, theirs = Pipe()
        self._process = self._ctx.Process(
            target=type(self)._run_server,
            args=(self._registry, self._address, bytes(self._authkey), self._serializer,
                  theirs, mine, initializer, initargs))
        ident = ":".join(str(i) for i in getattr(self._process, "_identity", ()))
        self._process.name = type(self).__name__ + ("-" + ident if ident else "")
        self._process.start()
        theirs.close()
        try:
            self._address = mine.recv()
        except EOFError:
            self._process.join(5)
            raise ProcessError(f"the manager's server process failed to start "
                               f"(exit code {self._process.exitcode})") from None
        _authkeys[self._address] = bytes(self._authkey)
        self._parent_end = mine         # the server exits when this closes
        self._state.value = _State.STARTED
        self.shutdown = _util.Finalize(
            self, type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._state, mine,
                  self._shutdown_timeout),
            exitpriority=0)

    @classmethod
    def _run_server(cls, registry, address, authkey, serializer, writer, parent_end,
                    initializer=None, initargs=()):
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        parent_end.close()
        if initializer is not None:
            initializer(*initargs)
        server = cls._Server(registry, address, authkey, serializer)
        writer.send(server.address)
        # The parent's end of this pipe closes when it exits or is killed: stop then.
        threading.Thread(target=_watch_parent, args=(writer, server), daemon=True).start()
        server.serve_forever()

    def _create(self, typeid, /, *args, **kwds):
        if self._state.value != _State.STARTED:
            raise ProcessError("Manager is not started" if self._state.value == _State.INITIAL
                               else "Manager has shut down")
        ident, exposed = _server_call(self._address, self._authkey, "create",
                                      (typeid,) + args, kwds)
        return Token(typeid, self._address, ident), exposed

    def join(self, timeout=None):
        """Wait for the server process to end."""
        if self._process is not None:
            self._process.join(timeout)
            if not self._process.is_alive():
                self._process = None

    def _debug_info(self):
        return _server_call(self._address, self._authkey, "debug_info")

    def _number_of_objects(self):
        return _server_call(self._address, self._authkey, "number_of_objects")

    def __enter__(self):
        if self._state.value == _State.INITIAL:
            self.start()
        if self._state.value != _State.STARTED:
            raise ProcessError("Unable to start server" if self._state.value == _State.INITIAL
                               else "Manager has shut down")
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    def shutdown(self):
        """Stop the server (a manager that connected to one started elsewhere: forget it)."""
        if self._state.value == _State.STARTED:
            _close_connections(self._address)
            self._state.value = _State.SHUTDOWN

    @staticmethod
    def _finalize_manager(process, address, authkey, state, parent_end, timeout):
        if process.is_alive():
            try:
                c = Client(address, authkey=bytes(authkey))
                try:
                    c.send((_session_id(), None))
                    c.recv()
                    c.send((None, "shutdown", (), None))
                    c.recv()
                finally:
                    c.close()
            except Exception:
                pass
            process.join(timeout=timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout=timeout)
                if process.is_alive():
                    process.kill()
                    process.join()
        parent_end.close()
        state.value = _State.SHUTDOWN
        _close_connections(address)

    @property
    def address(self):
        return self._address

    @classmethod
    def register(cls, typeid, callable=None, proxytype=None, exposed=None,
                 method_to_typeid=None, create_method=True):
        """Register a type id: ``callable(*args, **kwds)`` makes the object in the server,
        ``proxytype`` (AutoProxy by default) is the proxy clients get."""
        if "_registry" not in cls.__dict__:
            cls._registry = cls._registry.copy()
        if proxytype is None:
            proxytype = AutoProxy
        exposed = exposed or getattr(proxytype, "_exposed_", None)
        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)
        if method_to_typeid:
            for key, value in list(method_to_typeid.items()):
                assert type(key) is str, f"{key!r} is not a string"
                assert type(value) is str, f"{value!r} is not a string"
        cls._registry[typeid] = (callable, exposed, method_to_typeid, proxytype)
        _proxytypes.setdefault(typeid, proxytype)
        if create_method:
            def temp(self, /, *args, **kwds):
                token, exp = self._create(typeid, *args, **kwds)
                return proxytype(token, self._serializer, manager=self, authkey=self._authkey,
                                 exposed=exp, incref=False)
            temp.__name__ = typeid
            setattr(cls, typeid, temp)


def _watch_parent(conn, server):
    try:
        while not conn.poll(1.0):
            if server.stop_event.is_set():
                return
    except Exception:
        pass
    server.stop_event.set()


class SyncManager(BaseManager):
    """The manager of ``mpx.Manager()``: dict, list, Namespace, Value, Array, Queue,
    JoinableQueue, Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, Pool."""


SyncManager.register("Queue", queue.Queue)
SyncManager.register("JoinableQueue", queue.Queue)
SyncManager.register("Event", threading.Event, EventProxy)
SyncManager.register("Lock", threading.Lock, AcquirerProxy)
SyncManager.register("RLock", threading.RLock, AcquirerProxy)
SyncManager.register("Semaphore", threading.Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", threading.BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", threading.Condition, ConditionProxy)
SyncManager.register("Barrier", threading.Barrier, BarrierProxy)
SyncManager.register("Pool", _make_pool, PoolProxy)
SyncManager.register("list", list, ListProxy)
SyncManager.register("dict", dict, DictProxy)
SyncManager.register("Value", Value, ValueProxy)
SyncManager.register("Array", Array, ArrayProxy)
SyncManager.register("Namespace", Namespace, NamespaceProxy)
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)


# ---- SharedMemoryManager -------------------------------------------------------------------

class SharedMemoryServer(Server):
    """A Server that also tracks shared memory segments its clients created, and unlinks
    them when it stops."""

    public = Server.public + ("track_segment", "release_segment", "list_segments")

    def __init__(self, *args, **kwargs):
        Server.__init__(self, *args, **kwargs)
        self.segment_names = []

    def _unlink_all(self):
        for name in self.segment_names[:]:
            self._f_release_segment(None, name)

    def _stop(self):
        try:
            self._unlink_all()
        finally:
            Server._stop(self)

    def _f_shutdown(self, st):
        self._unlink_all()
        return Server._f_shutdown(self, st)

    def _f_track_segment(self, st, name):
        self.segment_names.append(name)

    def _f_release_segment(self, st, name):
        from .shared_memory import SharedMemory
        try:
            self.segment_names.remove(name)
        except ValueError:
            pass
        try:
            seg = SharedMemory(name)
        except FileNotFoundError:
            return
        seg.close()
        try:
            seg.unlink()
        except FileNotFoundError:
            pass

    def _f_list_segments(self, st):
        return list(self.segment_names)


class SharedMemoryManager(BaseManager):
    """multiprocessing.managers.SharedMemoryManager: ``SharedMemory(size)`` and
    ``ShareableList(sequence)`` create mpx segments in this process that the manager's server
    unlinks when it shuts down."""

    _Server = SharedMemoryServer

    def SharedMemory(self, size):
        from .shared_memory import SharedMemory
        seg = SharedMemory(None, create=True, size=size)
        try:
            _server_call(self._address, self._authkey, "track_segment", (seg.name,))
        except BaseException:
            seg.close()
            seg.unlink()
            raise
        return seg

    def ShareableList(self, sequence):
        from .shared_memory import ShareableList
        sl = ShareableList(sequence)
        try:
            _server_call(self._address, self._authkey, "track_segment", (sl.shm.name,))
        except BaseException:
            sl.shm.close()
            sl.shm.unlink()
            raise
        return sl
