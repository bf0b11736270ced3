"""mpx.managers: Python's Manager programs and semantics on mpx's server, with real processes:
the seeds' programs, proxies of every SyncManager type, nested proxies, reference counting,
RemoteError, children of every start method (mpx.Process and multiprocessing.Process), two
unrelated processes over TCP, a killed lock holder, malformed frames, clean shutdown."""

import gc
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
import unittest

from _support import TestCase, mpx, subprocess_env, wait_until
from mpx import managers
from mpx.managers import BaseManager, BaseProxy, RemoteError, SyncManager


# ---- targets: module level, so that spawn and forkserver children unpickle them ----------

def _seed_f(d, l):
    d[1] = '1'
    d['2'] = 2
    d[0.25] = None
    l.reverse()


def _set_a(ns):
    ns.a = 10


def _child_work(d, l, ns, v, q, lock, tag):
    with lock:
        d[tag] = os.getpid()
    l.append(tag)
    ns.x = tag
    v.value = v.value + 1 if isinstance(v.value, int) else 1
    q.put(tag)


def _square(x):
    return x * x


def _add(a, b):
    return a + b


def _nested_reader(d, out):
    inner = d['inner']
    inner.append('from-child')
    out.put(list(inner))


def _wait_event(ev, q):
    q.put(ev.wait(10))


def _cond_waiter(cond, v, q):
    with cond:
        ok = cond.wait_for(lambda: v.value >= 3, timeout=10)
    q.put(ok)


def _barrier_wait(b, q):
    q.put(b.wait(10))


class MathsClass:
    def add(self, x, y):
        return x + y

    def mul(self, x, y):
        return x * y

    def _private(self):
        return "secret"

    def fail(self):
        raise ValueError("failed in the server")


class Operator:
    def __init__(self, base):
        self.base = base

    def apply(self, x):
        return self.base + x

    def maths(self):
        return MathsClass()


class Boom:
    def __init__(self):
        raise ValueError("boom while creating")


class MyManager(BaseManager):
    pass


MyManager.register('Maths', MathsClass)
MyManager.register('Operator', Operator, method_to_typeid={'maths': 'Maths'})
MyManager.register('Boom', Boom)
MyManager.register('Exposed', MathsClass, exposed=('add', '_private'))


def _fds():
    return set(os.listdir("/proc/self/fd"))


def _readlink(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


class _ManagerTest(TestCase):
    deadline = 30

    def start_manager(self, cls=SyncManager, ctx="fork", **kw):
        m = cls(ctx=mpx.get_context(ctx), **kw)
        m.start()
        self.addCleanup(m.shutdown)
        return m


class SeedProgramsTest(_ManagerTest):
    def test_docs_dict_list_program(self):
        with mpx.Manager() as manager:
            d = manager.dict()
            l = manager.list(range(10))
            p = mpx.Process(target=_seed_f, args=(d, l))
            p.start()
            p.join()
            self.assertEqual(p.exitcode, 0)
            self.assertEqual(str(d), "{1: '1', '2': 2, 0.25: None}")
            self.assertEqual(str(l), "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]")
            self.assertEqual(d.copy(), {1: '1', '2': 2, 0.25: None})
            self.assertEqual(l[:], list(range(9, -1, -1)))

    def test_namespace_program(self):
        m = self.start_manager()
        n = m.Namespace()
        p = mpx.Process(target=_set_a, args=(n,))
        p.start()
        p.join()
        self.assertEqual(n.a, 10)
        n.b = "x"
        self.assertEqual(repr(n._getvalue()), "Namespace(a=10, b='x')")
        del n.b
        with self.assertRaises(AttributeError):
            n.b

    def test_custom_manager_maths_and_operator(self):
        with MyManager(ctx=mpx.get_context("fork")) as m:
            maths = m.Maths()
            self.assertEqual(maths.add(4, 3), 7)
            self.assertEqual(maths.mul(7, 8), 56)
            op = m.Operator(100)
            self.assertEqual(op.apply(5), 105)
            inner = op.maths()                      # method_to_typeid: a proxy
            self.assertIsInstance(inner, BaseProxy)
            self.assertEqual(inner.mul(6, 7), 42)
            self.assertFalse(hasattr(maths, "_private"))
            e = m.Exposed()
            self.assertEqual(e._private(), "secret")
            self.assertFalse(hasattr(e, "mul"))


class ProxyTypesTest(_ManagerTest):
    @classmethod
    def setUpClass(cls):
        cls.m = SyncManager(ctx=mpx.get_context("fork"))
        cls.m.start()

    @classmethod
    def tearDownClass(cls):
        cls.m.shutdown()

    def test_dict(self):
        d = self.m.dict(a=1)
        d['b'] = 2
        d.update(c=3)
        self.assertEqual(len(d), 3)
        self.assertIn('a', d)
        self.assertEqual(sorted(d.keys()), ['a', 'b', 'c'])
        self.assertEqual(sorted(iter(d)), ['a', 'b', 'c'])
        self.assertEqual(d.get('zz', 5), 5)
        self.assertEqual(d.pop('a'), 1)
        with self.assertRaises(KeyError):
            d['missing']
        del d['b']
        self.assertEqual(d._getvalue(), {'c': 3})
        self.assertEqual(d.setdefault('e', []), [])
        d |= {'f': 6}
        self.assertEqual(d['f'], 6)

    def test_list(self):
        l = self.m.list([3, 1, 2])
        l.sort()
        self.assertEqual(l[:], [1, 2, 3])
        l.reverse()
        self.assertEqual(l[:], [3, 2, 1])
        l += [0]
        self.assertEqual(l[:], [3, 2, 1, 0])
        l *= 2
        self.assertEqual(len(l), 8)
        self.assertEqual(l[1:3], [2, 1])
        l[0] = 'x'
        self.assertEqual(l[0], 'x')
        self.assertEqual(l.index(2), 1)
        self.assertEqual(l.count(0), 2)
        self.assertEqual(l.pop(), 0)
        del l[0]
        self.assertEqual(l + [9], [2, 1, 0, 3, 2, 1, 9])
        with self.assertRaises(IndexError):
            l[100]
        self.assertIsInstance(l, managers.ListProxy)
        self.assertEqual(list(l), [2, 1, 0, 3, 2, 1])

    def test_value_array(self):
        v = self.m.Value('i', 5)
        self.assertEqual(v.value, 5)
        v.value = 7
        self.assertEqual(v.get(), 7)
        a = self.m.Array('d', [1.0, 2.0])
        self.assertEqual(len(a), 2)
        a[1] = 5.5
        self.assertEqual(a[1], 5.5)
        self.assertEqual(a[:], __import__('array').array('d', [1.0, 5.5]))

    def test_queues(self):
        q = self.m.Queue()
        q.put(1)
        q.put_nowait("two")
        self.assertEqual(q.qsize(), 2)
        self.assertEqual(q.get(), 1)
        self.assertEqual(q.get_nowait(), "two")
        with self.assertRaises(Exception) as cm:
            q.get(timeout=0.05)
        self.assertEqual(type(cm.exception).__name__, "Empty")
        jq = self.m.JoinableQueue()
        jq.put(1)
        jq.get()
        jq.task_done()
        jq.join()

    def test_locks_and_semaphores(self):
        for lock in (self.m.Lock(), self.m.RLock()):
            with lock:
                pass
            self.assertTrue(lock.acquire())
            lock.release()
        r = self.m.RLock()
        with r:
            with r:
                pass
        s = self.m.Semaphore(2)
        self.assertTrue(s.acquire())
        self.assertTrue(s.acquire())
        self.assertFalse(s.acquire(timeout=0.01))
        s.release()
        s.release()
        b = self.m.BoundedSemaphore(1)
        with self.assertRaises(ValueError):
            b.release()
        lock = self.m.Lock()
        with self.assertRaises(RuntimeError):
            lock.release()

    def test_iterator_proxy(self):
        d = self.m.dict.__get__(self.m)(x=1, y=2)
        it = iter(d)
        self.assertIsInstance(it, managers.IteratorProxy)
        self.assertEqual(sorted(it), ['x', 'y'])

    def test_str_repr_getvalue(self):
        l = self.m.list([1])
        self.assertEqual(str(l), "[1]")
        self.assertTrue(repr(l).startswith("<ListProxy object, typeid 'list' at"))
        self.assertEqual(l._getvalue(), [1])

    def test_threads_share_a_proxy(self):
        l = self.m.list()

        def work(k):
            for i in range(50):
                l.append((k, i))

        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(l), 200)


class FastPathTest(_ManagerTest):
    def test_local_client_uses_the_queues(self):
        m = self.start_manager()
        d = m.dict()
        d['x'] = 1
        ch = managers._tls.chans[m.address]
        self.assertIsNotNone(ch.req)
        self.assertEqual(ch.call.__name__, "_call_shm")

    def test_switches_between_queues_and_socket(self):
        m = self.start_manager()
        d = m.dict()
        saved = managers._SLOW, managers._PROBE_EVERY
        managers._SLOW, managers._PROBE_EVERY = -1.0, 5      # every call "slow"
        try:
            modes = []
            for i in range(60):
                d[i] = [i] * i
                self.assertEqual(d[i], [i] * i)
                modes.append(managers._tls.chans[m.address].call.__name__)
        finally:
            managers._SLOW, managers._PROBE_EVERY = saved
        self.assertEqual(set(modes), {"_call_shm", "_call_socket_probing"})
        self.assertEqual(len(d), 60)

    def test_large_items(self):
        m = self.start_manager()
        l = m.list()
        big = os.urandom(3 << 20)
        l.append(big)
        self.assertEqual(l[0], big)
        q = m.Queue()
        q.put(big * 2)
        self.assertEqual(q.get(), big * 2)


class ErrorsTest(_ManagerTest):
    def test_unknown_and_private_methods(self):
        m = self.start_manager(MyManager)
        maths = m.Maths()
        for name in ("nonexistent", "_private", "__class__"):
            with self.assertRaises(RemoteError) as cm:
                maths._callmethod(name)
            self.assertIn("AttributeError", str(cm.exception))
            self.assertIn("not in exposed", str(cm.exception))
        with self.assertRaises(AttributeError):
            maths._private()
        self.assertEqual(maths.add(1, 2), 3)      # still served

    def test_method_exception_is_reraised(self):
        m = self.start_manager(MyManager)
        maths = m.Maths()
        with self.assertRaises(ValueError) as cm:
            maths._callmethod("fail")       # not exposed: fail is public, so it is
        self.assertEqual(str(cm.exception), "failed in the server")

    def test_remote_error_has_the_traceback(self):
        m = self.start_manager(MyManager)
        with self.assertRaises(RemoteError) as cm:
            m.Boom()
        text = str(cm.exception)
        self.assertIn("Traceback (most recent call last)", text)
        self.assertIn("ValueError: boom while creating", text)
        self.assertIn("in __init__", text)
        with self.assertRaises(RemoteError):
            m._create("no-such-typeid")
        self.assertEqual(m.Maths().add(2, 2), 4)

    def test_malformed_frames(self):
        m = self.start_manager()
        d = m.dict(k=1)
        key = bytes(mpx.current_process().authkey)
        # garbage as the hello: the connection is closed
        c = mpx.connection.Client(m.address, authkey=key)
        c.send_bytes(b"\x80\x05garbage")
        with self.assertRaises((EOFError, OSError)):
            c.recv_bytes()
        c.close()
        # a good hello, then garbage and wrong shapes: error replies, connection kept
        c = mpx.connection.Client(m.address, authkey=key)
        c.send((os.urandom(16), None))
        self.assertIs(c.recv(), False)
        for frame in (b"not a pickle", pickle.dumps((1, 2)), pickle.dumps(None),
                      pickle.dumps(("nope", "get", (), None)), pickle.dumps((None, "evil", (), None))):
            c.send_bytes(frame)
            kind, text = c.recv()
            self.assertEqual(kind, 2)
            self.assertIn("Error", text)
        c.close()
        # a wrong key: refused, server alive
        with self.assertRaises(multiprocessing.AuthenticationError):
            mpx.connection.Client(m.address, authkey=b"wrong key")
        self.assertEqual(d['k'], 1)
        d['k'] = 2
        self.assertEqual(d['k'], 2)


def _hold_lock(lock, rlock, w):
    lock.acquire()
    rlock.acquire()
    rlock.acquire()
    os.write(w, b"x")
    time.sleep(60)


class LockOwnerDiesTest(_ManagerTest):
    def test_killed_holder_releases_lock_and_rlock(self):
        m = self.start_manager()
        lock = m.Lock()
        rlock = m.RLock()
        r, w = os.pipe()
        pid = self.fork(_hold_lock, lock, rlock, w)
        self.assertEqual(os.read(r, 1), b"x")
        os.close(r)
        os.close(w)
        self.assertFalse(lock.acquire(timeout=0.05))
        self.kill(pid)
        t0 = time.monotonic()
        self.assertTrue(lock.acquire(timeout=1.0))
        self.assertTrue(rlock.acquire(timeout=1.0))
        self.assertLess(time.monotonic() - t0, 1.0)
        lock.release()
        rlock.release()


def _fill(out, l, key):
    l.append(1)
    out[key] = l[:]


def _pickled_child(d, l):
    d['pid'] = os.getpid()
    l.append(len(l))


class ChildrenTest(_ManagerTest):
    def _run_in(self, make_process, ctx_name):
        m = self.start_manager(ctx=ctx_name)
        d = m.dict()
        l = m.list()
        ns = m.Namespace()
        v = m.Value('i', 0)
        q = m.Queue()
        lock = m.Lock()
        p = make_process(target=_child_work, args=(d, l, ns, v, q, lock, ctx_name))
        p.start()
        p.join(20)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(d[ctx_name], p.pid)
        self.assertEqual(l[:], [ctx_name])
        self.assertEqual(ns.x, ctx_name)
        self.assertEqual(v.value, 1)
        self.assertEqual(q.get(timeout=5), ctx_name)

    def test_mpx_process_every_start_method(self):
        for method in ("fork", "spawn", "forkserver"):
            with self.subTest(method=method):
                self._run_in(mpx.get_context(method).Process, method)

    def test_multiprocessing_process(self):
        for method in ("fork", "spawn", "forkserver"):
            with self.subTest(method=method):
                self._run_in(multiprocessing.get_context(method).Process, method)

    def test_manager_server_started_by_spawn(self):
        m = self.start_manager(MyManager, ctx="spawn")
        self.assertEqual(m.Operator(1).apply(2), 3)

    def test_inline_proxy_arguments(self):
        # The parent's proxy goes as soon as start() returns; the child's must still work.
        m = self.start_manager()
        out = m.dict()
        for method in ("fork", "spawn"):
            p = mpx.get_context(method).Process(target=_fill, args=(out, m.list([method]), method))
            p.start()
            p.join(20)
            self.assertEqual(p.exitcode, 0)
        self.assertEqual(out.copy(), {"fork": ["fork", 1], "spawn": ["spawn", 1]})

    def test_os_fork_child_uses_inherited_proxy(self):
        m = self.start_manager()
        d = m.dict()
        l = m.list()
        d['x'] = 0
        pid = self.fork(_pickled_child, d, l)
        self.assertChildOk(pid)
        self.assertIn('pid', d)
        self.assertEqual(l[:], [0])
        self.assertEqual(d['x'], 0)


class NestedAndRefcountTest(_ManagerTest):
    def test_nested_proxies(self):
        m = self.start_manager()
        d = m.dict()
        inner = m.list([1])
        d['inner'] = inner
        got = d['inner']
        self.assertIsInstance(got, managers.ListProxy)
        got.append(2)
        self.assertEqual(inner[:], [1, 2])
        q = m.Queue()
        p = mpx.Process(target=_nested_reader, args=(d, q))
        p.start()
        p.join(10)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(q.get(timeout=5), [1, 2, 'from-child'])
        # a list of dicts
        outer = m.list([m.dict(a=1), m.dict(b=2)])
        outer[0]['a'] = 10
        self.assertEqual(outer[0]['a'], 10)
        self.assertEqual(outer[1].copy(), {'b': 2})

    def test_objects_released_with_their_last_proxy(self):
        saved = managers._GRACE
        managers._GRACE = 0.5           # a fork child takes its references sooner than this
        self.addCleanup(setattr, managers, "_GRACE", saved)
        m = self.start_manager()
        self.assertEqual(m._number_of_objects(), 0)
        d = m.dict()
        l = m.list()
        self.assertEqual(m._number_of_objects(), 2)
        del l
        gc.collect()
        self.assertTrue(wait_until(lambda: m._number_of_objects() == 1, 2))
        # a proxy kept only by a nested reference survives its creator's proxy
        d['l'] = m.list([5])
        gc.collect()
        self.assertEqual(d['l'][0], 5)
        self.assertEqual(m._number_of_objects(), 2)
        del d['l']
        gc.collect()
        # (the reference of a proxy just pickled lives a few seconds more: managers._GRACE)
        self.assertTrue(wait_until(lambda: m._number_of_objects() == 1, 5))
        # a child's references go with it, even when it is killed
        p = mpx.Process(target=_pickled_child, args=(d, m.list()))
        p.start()
        p.join(10)
        gc.collect()
        self.assertTrue(wait_until(lambda: m._number_of_objects() == 1, 5),
                        m._debug_info())
        pid = self.fork(_hold_lock, m.Lock(), m.RLock(), os.pipe()[1])
        time.sleep(0.3)
        self.kill(pid)
        gc.collect()
        self.assertTrue(wait_until(lambda: m._number_of_objects() == 1, 5), m._debug_info())
        del d
        gc.collect()
        self.assertTrue(wait_until(lambda: m._number_of_objects() == 0, 5))


class SyncAcrossProcessesTest(_ManagerTest):
    def test_event(self):
        m = self.start_manager()
        ev = m.Event()
        q = m.Queue()
        p = mpx.Process(target=_wait_event, args=(ev, q))
        p.start()
        time.sleep(0.1)
        self.assertFalse(ev.is_set())
        ev.set()
        self.assertIs(q.get(timeout=5), True)
        p.join(5)
        self.assertEqual(p.exitcode, 0)
        ev.clear()
        self.assertFalse(ev.wait(0.01))

    def test_condition_wait_for_and_notify(self):
        m = self.start_manager()
        cond = m.Condition()
        v = m.Value('i', 0)
        q = m.Queue()
        ps = [mpx.Process(target=_cond_waiter, args=(cond, v, q)) for _ in range(2)]
        for p in ps:
            p.start()
        for i in range(3):
            time.sleep(0.05)
            with cond:
                v.value += 1
                cond.notify_all()
        self.assertEqual([q.get(timeout=5), q.get(timeout=5)], [True, True])
        for p in ps:
            p.join(5)
            self.assertEqual(p.exitcode, 0)
        with cond:
            self.assertFalse(cond.wait(0.01))
            cond.notify()

    def test_barrier(self):
        m = self.start_manager()
        b = m.Barrier(3)
        self.assertEqual(b.parties, 3)
        q = m.Queue()
        ps = [mpx.Process(target=_barrier_wait, args=(b, q)) for _ in range(2)]
        for p in ps:
            p.start()
        me = b.wait(10)
        got = sorted([me, q.get(timeout=5), q.get(timeout=5)])
        self.assertEqual(got, [0, 1, 2])
        for p in ps:
            p.join(5)
        self.assertEqual(b.n_waiting, 0)
        self.assertFalse(b.broken)
        b.abort()
        self.assertTrue(b.broken)


def _touch_segment(shm, sl):
    shm.buf[0] = 42
    sl[0] = "changed"


class SharedMemoryManagerTest(_ManagerTest):
    def test_segments_unlinked_at_shutdown(self):
        from mpx.managers import SharedMemoryManager
        from mpx.shared_memory import SharedMemory
        with SharedMemoryManager(ctx=mpx.get_context("fork")) as smm:
            shm = smm.SharedMemory(128)
            sl = smm.ShareableList(["a", 2, 3.5])
            p = mpx.Process(target=_touch_segment, args=(shm, sl))
            p.start()
            p.join(10)
            self.assertEqual(p.exitcode, 0)
            self.assertEqual(shm.buf[0], 42)
            self.assertEqual(sl[0], "changed")
            names = [shm.name, sl.shm.name]
            self.assertEqual(sorted(smm._process and _list_segments(smm)), sorted(names))
        shm.close()
        sl.shm.close()
        for name in names:
            with self.assertRaises(FileNotFoundError):
                SharedMemory(name)


def _list_segments(smm):
    return managers._server_call(smm.address, smm._authkey, "list_segments")


class PoolProxyTest(_ManagerTest):
    def test_pool(self):
        m = self.start_manager()
        with m.Pool(2) as pool:
            self.assertEqual(pool.apply(_square, (7,)), 49)
            r = pool.apply_async(_add, (2, 3))
            self.assertEqual(r.get(timeout=10), 5)
            self.assertTrue(r.ready())
            self.assertTrue(r.successful())
            self.assertEqual(pool.map(_square, range(10)), [x * x for x in range(10)])
            self.assertEqual(pool.map_async(_square, [1, 2]).get(timeout=10), [1, 4])
            self.assertEqual(list(pool.imap(_square, range(5))), [0, 1, 4, 9, 16])
            self.assertEqual(sorted(pool.imap_unordered(_square, range(5))), [0, 1, 4, 9, 16])
            self.assertEqual(pool.starmap(_add, [(1, 2), (3, 4)]), [3, 7])
        pool = m.Pool(1)
        pool.close()
        pool.join()


SERVER = """
import sys
from mpx.managers import BaseManager
class MathsClass:
    def add(self, x, y):
        return x + y
class QueueManager(BaseManager):
    pass
import queue
q = queue.Queue()
QueueManager.register('Maths', MathsClass)
QueueManager.register('get_queue', callable=lambda: q)
m = QueueManager(address=('127.0.0.1', 0), authkey=b'two machines')
s = m.get_server()
print(s.address[1], flush=True)
s.serve_forever()
"""

CLIENT = """
import sys
from mpx.managers import BaseManager
class QueueManager(BaseManager):
    pass
QueueManager.register('Maths')
QueueManager.register('get_queue')
m = QueueManager(address=('127.0.0.1', int(sys.argv[1])), authkey=sys.argv[2].encode())
m.connect()
assert m.Maths().add(40, 2) == 42
q = m.get_queue()
q.put(sys.argv[3])
print("client ok", flush=True)
"""


class TcpTest(_ManagerTest):
    def _server(self):
        srv = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                               env=subprocess_env(), text=True)
        self.addCleanup(self._stop, srv)
        port = int(srv.stdout.readline())
        return srv, port

    def _stop(self, srv):
        if srv.poll() is None:
            srv.kill()
        srv.wait(5)
        srv.stdout.close()

    def _client(self, port, key, word, no_shm=False):
        env = subprocess_env(MPX_MANAGER_NO_SHM="1" if no_shm else "0")
        return subprocess.run([sys.executable, "-c", CLIENT, str(port), key, word],
                              env=env, capture_output=True, text=True, timeout=20)

    def test_two_processes_share_only_address_and_authkey(self):
        srv, port = self._server()
        for word, no_shm in (("fast", False), ("socket", True)):
            r = self._client(port, "two machines", word, no_shm)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("client ok", r.stdout)
        bad = self._client(port, "wrong key", "never")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("AuthenticationError", bad.stderr)

        class QueueManager(BaseManager):
            pass
        QueueManager.register('get_queue')
        QueueManager.register('Maths')
        m = QueueManager(address=('127.0.0.1', port), authkey=b'two machines')
        m.connect()
        q = m.get_queue()
        self.assertEqual([q.get(timeout=5), q.get(timeout=5)], ["fast", "socket"])
        maths = m.Maths()
        self.assertEqual(maths.add(1, 1), 2)
        m.shutdown()
        # ask the server to stop: it exits cleanly
        c = mpx.connection.Client(('127.0.0.1', port), authkey=b'two machines')
        c.send((os.urandom(16), None))
        c.recv()
        c.send((None, "shutdown", (), None))
        self.assertEqual(c.recv(), (0, None))
        c.close()
        self.assertEqual(srv.wait(10), 0)


def _start_and_report(w):
    m = SyncManager(ctx=mpx.get_context("fork"))
    m.start()
    d = m.dict()
    d['alive'] = True
    os.write(w, str(m._process.pid).encode() + b"\n")
    time.sleep(60)


def _serve_in_thread(server):
    try:
        server.serve_forever()
    except SystemExit:
        pass


class LifecycleTest(_ManagerTest):
    def test_shutdown_leaves_nothing(self):
        # The second round of each start method must leave no descriptor behind (the
        # first may open what a process keeps: the fork kit's /dev/null...).
        for i, ctx in enumerate(("fork", "spawn", "fork", "spawn")):
            if i == 2:
                gc.collect()
                before = _fds()
            m = SyncManager(ctx=mpx.get_context(ctx))
            m.start()
            pid = m._process.pid
            d = m.dict(a=1)
            q = m.Queue()
            q.put(d['a'])
            self.assertEqual(q.get(), 1)
            m.shutdown()
            self.assertFalse(m._process.is_alive())
            self.assertEqual(m._process.exitcode, 0)
            self.assertTrue(_gone(pid))
            del d, q, m
        gc.collect()
        self.assertEqual(mpx.active_children(), [])
        self.assertEqual({f: _readlink(f) for f in _fds() - before}, {})

    def test_server_exits_when_its_parent_is_killed(self):
        r, w = os.pipe()
        pid = self.fork(_start_and_report, w)
        os.close(w)
        with os.fdopen(r) as f:
            server_pid = int(f.readline())
        self.assertFalse(_gone(server_pid))
        self.kill(pid)
        self.assertTrue(wait_until(lambda: _gone(server_pid), 5), "the server outlived its parent")

    def test_get_server_in_process_and_connect(self):
        server = MyManager(address=("0.0.0.0", 0), authkey=b"k").get_server()
        t = threading.Thread(target=_serve_in_thread, args=(server,))
        t.start()
        try:
            m = MyManager(address=("127.0.0.1", server.address[1]), authkey=b"k")
            m.connect()
            maths = m.Maths()
            self.assertEqual(maths.add(2, 5), 7)
            d = m.Operator(3)
            self.assertEqual(d.apply(1), 4)
            # proxies the server sends inside objects name its address as it knows it
            # ('0.0.0.0', port): reached here at the address this manager connected to
            m0 = MyManager(address=server.address, authkey=b"k")
            m0.connect()
            maths = m0.Maths()
            self.assertEqual(maths._token.address[0], "0.0.0.0")
            m2 = MyManager(address=("127.0.0.2", server.address[1]), authkey=b"k")
            m2.connect()
            got = m2.Operator([maths])._getvalue().base[0]
            self.assertEqual(got._token.address, ("127.0.0.2", server.address[1]))
            self.assertEqual(got.add(1, 2), 3)
        finally:
            server.stop_event.set()
            t.join(5)
        self.assertFalse(t.is_alive())
        m.shutdown()

    def test_state_errors_and_context_manager(self):
        m = SyncManager(ctx=mpx.get_context("fork"))
        with self.assertRaises(multiprocessing.ProcessError):
            m.dict()
        with m:
            self.assertIsInstance(m.address, str)
            with self.assertRaises(multiprocessing.ProcessError):
                m.start()
            m.dict()
        m.join(5)
        with self.assertRaises(multiprocessing.ProcessError):
            m.start()

    def test_initializer_and_every_context_has_manager(self):
        for method in ("fork", "spawn", "forkserver"):
            ctx = mpx.get_context(method)
            self.assertTrue(callable(ctx.Manager))
        m = SyncManager(ctx=mpx.get_context("fork"))
        m.start(initializer=os.environ.__setitem__, initargs=("MPX_MGR_INIT", "yes"))
        self.addCleanup(m.shutdown)
        self.assertEqual(m.dict().__class__.__name__, "DictProxy")

    def test_default_authkey_is_the_process_key(self):
        m = self.start_manager()
        self.assertEqual(bytes(m._authkey), bytes(mpx.current_process().authkey))


def tearDownModule():
    # Forkservers started here are children of this process: stop them (and
    # multiprocessing's resource tracker), so that later tests that count children
    # (test_resources) find none.
    from mpx import forkserver
    forkserver.stop()
    import multiprocessing.forkserver as mp_forkserver
    import multiprocessing.resource_tracker as mp_tracker
    mp_forkserver._forkserver._stop()
    mp_tracker._resource_tracker._stop()


if __name__ == "__main__":
    unittest.main()
