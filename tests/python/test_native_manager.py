"""mpx.native_manager: Python as a client of the C manager (mpx/manager.h), and starting C
manager servers from Python. Every object type through real processes: dicts, namespaces,
lists, queues (timeouts, maxsize, joinable), locks (owner death), semaphores, conditions,
events, barriers, values and arrays; names and tokens; wrong keys; server death and shutdown."""

import multiprocessing
import os
import queue
import signal
import threading
import time
import warnings

from _support import TIMING_SLACK, TestCase, mpx  # noqa: F401
from mpx import native_manager as nm

KEY = b"native manager test key"


def _have_manager():
    try:
        nm._bind()
        return True
    except ImportError:
        return False


HAVE_MANAGER = _have_manager()


class _ServerTest(TestCase):
    """One C manager (a forked child) per test class; a fresh client per test."""

    method = "fork"
    socket_only = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not HAVE_MANAGER:
            raise __import__("unittest").SkipTest("libmpx has no manager API")
        cls.server = nm.start(authkey=KEY, method=cls.method)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.c = nm.connect(self.server.address, KEY, socket_only=self.socket_only)
        self.addCleanup(self.c.close)

    def client(self):
        c = nm.connect(self.server.address, KEY, socket_only=self.socket_only)
        self.addCleanup(c.close)
        return c

    def assertTimesOut(self, fn, timeout, exc=None):
        t0 = time.monotonic()
        if exc is None:
            self.assertFalse(fn())
        else:
            with self.assertRaises(exc):
                fn()
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, timeout - 0.001)
        self.assertLess(took, timeout + TIMING_SLACK + 0.1)


class DictListTest(_ServerTest):
    def test_dict_operations(self):
        d = self.c.dict()
        self.assertEqual(len(d), 0)
        d["a"] = b"1"
        d[b"b"] = b"\0\1\xff"
        d["s"] = "text"  # str values are sent as UTF-8
        self.assertEqual(d["a"], b"1")
        self.assertEqual(d["b"], b"\0\1\xff")
        self.assertEqual(d["s"], b"text")
        self.assertEqual(sorted(d.keys()), ["a", "b", "s"])
        self.assertEqual(len(d), 3)
        self.assertIn("a", d)
        self.assertNotIn("zz", d)
        with self.assertRaises(KeyError):
            d["zz"]
        self.assertEqual(d.get("zz", b"dflt"), b"dflt")
        self.assertFalse(d.add("a", b"x"))
        self.assertEqual(d["a"], b"1")
        self.assertTrue(d.add("c", b"3"))
        self.assertEqual(d.pop("c"), b"3")
        self.assertIsNone(d.pop("c", None))
        with self.assertRaises(KeyError):
            d.pop("c")
        del d["s"]
        with self.assertRaises(KeyError):
            del d["s"]
        self.assertEqual(dict(d.items()), {"a": b"1", "b": b"\0\1\xff"})
        big = os.urandom(2 << 20)
        d["big"] = big
        self.assertEqual(d["big"], big)
        d.clear()
        self.assertEqual(len(d), 0)
        with self.assertRaises(TypeError):
            d["k"] = 12

    def test_namespace(self):
        ns = self.c.Namespace()
        ns.x = b"1"
        self.assertEqual(ns.x, b"1")
        self.assertEqual(ns["x"], b"1")
        with self.assertRaises(AttributeError):
            ns.missing
        del ns.x
        self.assertEqual(len(ns), 0)

    def test_list_operations(self):
        lst = self.c.list()
        for v in (b"a", b"b", b"c"):
            lst.append(v)
        self.assertEqual(len(lst), 3)
        self.assertEqual(lst[0], b"a")
        self.assertEqual(lst[-1], b"c")
        with self.assertRaises(IndexError):
            lst[3]
        with self.assertRaises(IndexError):
            lst[-4]
        lst[-1] = b"C"
        lst.insert(0, b"z")
        lst.insert(100, b"end")
        self.assertEqual(lst.tolist(), [b"z", b"a", b"b", b"C", b"end"])
        self.assertEqual(lst[1:3], [b"a", b"b"])
        self.assertEqual(lst.pop(), b"end")
        self.assertEqual(lst.pop(0), b"z")
        with self.assertRaises(IndexError):
            lst.pop(10)
        lst.reverse()
        self.assertEqual(list(lst), [b"C", b"b", b"a"])
        lst.extend([b"ab", b"", b"\xff"])
        lst.sort()
        self.assertEqual(lst.tolist(), sorted([b"C", b"b", b"a", b"ab", b"", b"\xff"]))
        lst.clear()
        self.assertEqual(len(lst), 0)
        with self.assertRaises(IndexError):
            lst.pop()


class QueueTest(_ServerTest):
    def test_fifo_timeouts_and_maxsize(self):
        q = self.c.Queue(maxsize=2)
        q.put(b"1")
        q.put(b"2")
        self.assertEqual(q.qsize(), 2)
        with self.assertRaises(queue.Full):
            q.put_nowait(b"3")
        self.assertTimesOut(lambda: q.put(b"3", timeout=0.1), 0.1, queue.Full)
        self.assertEqual(q.get(), b"1")
        self.assertEqual(q.get_nowait(), b"2")
        self.assertTrue(q.empty())
        with self.assertRaises(queue.Empty):
            q.get_nowait()
        self.assertTimesOut(lambda: q.get(timeout=0.1), 0.1, queue.Empty)

    def test_producer_and_consumer_processes(self):
        q = self.c.Queue("pc-queue")
        n = 200

        def produce(i):
            c = nm.connect(self.server.address, KEY)
            qq = c.open("pc-queue")
            for k in range(n):
                qq.put(b"%d:%d" % (i, k))
            c.close()

        self.run_children(produce, 3)
        got = sorted(q.get(timeout=5) for _ in range(3 * n))
        self.assertEqual(got, sorted(b"%d:%d" % (i, k) for i in range(3) for k in range(n)))
        self.assertTrue(q.empty())

    def test_joinable_queue(self):
        q = self.c.JoinableQueue()
        self.assertTrue(q.join(timeout=0))
        with self.assertRaises(ValueError):
            q.task_done()
        q.put(b"x")
        q.put(b"y")
        self.assertFalse(q.join(timeout=0))
        tok = q.token

        def worker():
            c = nm.connect(self.server.address, KEY)
            qq = c.open(tok)
            for _ in range(2):
                qq.get(timeout=5)
                qq.task_done()
            c.close()

        pid = self.fork(worker)
        self.assertTrue(q.join(timeout=10))
        self.assertChildOk(pid)
        with self.assertRaises(ValueError):
            q.task_done()


class SyncTest(_ServerTest):
    def test_lock_and_rlock(self):
        lk = self.c.Lock()
        self.assertTrue(lk.acquire())
        self.assertFalse(lk.acquire(False))
        self.assertTimesOut(lambda: lk.acquire(timeout=0.1), 0.1)
        lk.release()
        with lk:
            other = self.client().open(lk.token)
            self.assertFalse(other.acquire(False))
        r = self.c.RLock()
        with r:
            with r:
                r2 = self.client().open(r.token)
                self.assertFalse(r2.acquire(timeout=0))
                with self.assertRaises(RuntimeError):
                    r2.release()
                with self.assertRaises(AssertionError):
                    r2.release()
        with self.assertRaises(RuntimeError):
            r.release()

    def test_lock_of_a_killed_client_warns_owner_died(self):
        lk = self.c.Lock("owner-dies")
        held = self.c.Event()
        tok = held.token
        rd, wr = os.pipe()

        def owner():
            c = nm.connect(self.server.address, KEY)
            c.open("owner-dies").acquire()
            c.open(tok).set()
            os.read(rd, 1)  # until killed

        pid = self.fork(owner)
        self.assertTrue(held.wait(10))
        os.kill(pid, signal.SIGKILL)
        self.join(pid)
        os.close(rd)
        os.close(wr)
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertTrue(lk.acquire(timeout=5))
        self.assertLess(time.monotonic() - t0, 1.1)
        self.assertTrue(any(issubclass(x.category, mpx.OwnerDiedWarning) for x in w), w)
        lk.release()

    def test_semaphores(self):
        s = self.c.Semaphore(2)
        self.assertTrue(s.acquire())
        self.assertTrue(s.acquire())
        self.assertEqual(s.get_value(), 0)
        self.assertFalse(s.acquire(False))
        s.release()
        s.release()
        s.release()
        self.assertEqual(s.get_value(), 3)
        b = self.c.BoundedSemaphore(1)
        with self.assertRaises(ValueError):
            b.release()
        self.assertEqual(b.get_value(), 1)

    def test_condition_between_processes(self):
        cv = self.c.Condition()
        waiting = self.c.Event()
        tc, tw = cv.token, waiting.token

        def waiter():
            c = nm.connect(self.server.address, KEY)
            cc, ww = c.open(tc), c.open(tw)
            with cc:
                ww.set()
                if not cc.wait(10):
                    return 3
            c.close()

        pid = self.fork(waiter)
        self.assertTrue(waiting.wait(10))
        with cv:
            cv.notify()
        self.assertChildOk(pid)
        with cv:
            self.assertTimesOut(lambda: cv.wait(0.1), 0.1)
        with self.assertRaises(RuntimeError):
            cv.notify()

    def test_event(self):
        e = self.c.Event()
        self.assertFalse(e.is_set())
        self.assertTimesOut(lambda: e.wait(0.1), 0.1)
        tok = e.token

        def setter():
            c = nm.connect(self.server.address, KEY)
            c.open(tok).set()
            c.close()

        pid = self.fork(setter)
        self.assertTrue(e.wait(10))
        self.assertChildOk(pid)
        self.assertTrue(e.is_set())
        e.clear()
        self.assertFalse(e.is_set())

    def test_barrier(self):
        b = self.c.Barrier(3)
        tok = b.token
        results = []

        def party():
            c = nm.connect(self.server.address, KEY)
            results.append(c.open(tok).wait(10))
            c.close()

        ts = [threading.Thread(target=party) for _ in range(2)]
        for t in ts:
            t.start()
        results.append(b.wait(10))
        for t in ts:
            t.join(10)
        self.assertEqual(sorted(results), [0, 1, 2])
        b2 = self.c.Barrier(2)
        with self.assertRaises(threading.BrokenBarrierError):
            b2.wait(0.05)
        with self.assertRaises(threading.BrokenBarrierError):
            b2.wait(1)
        b2.reset()
        b2.abort()
        with self.assertRaises(threading.BrokenBarrierError):
            b2.wait(1)


class DataTest(_ServerTest):
    def test_values(self):
        v = self.c.Value("i")
        self.assertEqual(v.value, 0)
        v.value = 41
        self.assertEqual(v.add(1), 42)
        d = self.c.Value("d", 1.5)
        self.assertEqual(d.add(0.25), 1.75)
        q = self.c.Value("q", 1 << 40, name="big-value")
        self.assertEqual(self.c.open("big-value").value, 1 << 40)
        self.assertEqual(self.c.open("big-value", typecode="q").value, 1 << 40)
        self.assertEqual(q.value, 1 << 40)
        with self.assertRaises(ValueError):
            self.c.Value("z")

    def test_value_added_from_many_processes(self):
        v = self.c.Value("q", name="counter")

        def add(i):
            c = nm.connect(self.server.address, KEY)
            vv = c.open("counter", typecode="q")
            for _ in range(100):
                vv.add(1)
            c.close()

        self.run_children(add, 4)
        self.assertEqual(v.value, 400)

    def test_arrays(self):
        a = self.c.Array("i", 5)
        self.assertEqual(len(a), 5)
        self.assertEqual(a.tolist(), [0] * 5)
        a[1] = 7
        a[-1] = 9
        a[2:4] = [3, 4]
        self.assertEqual(a[:], [0, 7, 3, 4, 9])
        self.assertEqual(a[-1], 9)
        with self.assertRaises(IndexError):
            a[5]
        d = self.c.Array("d", [0.5, 1.5])
        self.assertEqual(d.tolist(), [0.5, 1.5])


class NamesAndTokensTest(_ServerTest):
    def test_named_objects(self):
        d = self.c.dict("named-dict")
        d["k"] = b"v"
        with self.assertRaises(FileExistsError):
            self.c.dict("named-dict")
        same = self.c.dict("named-dict", open_existing=True)
        self.assertEqual(same["k"], b"v")
        with self.assertRaises(ValueError):
            self.c.list("named-dict", open_existing=True)
        opened = self.client().open("named-dict")
        self.assertIsInstance(opened, nm.DictProxy)
        self.assertEqual(opened["k"], b"v")
        with self.assertRaises(KeyError):
            self.c.open("no-such-name")

    def test_anonymous_object_freed_with_its_last_proxy(self):
        lst = self.c.list()
        tok = lst.token
        other = self.client().open(tok)
        lst.close()
        other.append(b"alive")
        other.close()
        with self.assertRaises(KeyError):
            self.c.open(tok)


class SocketOnlyTest(DictListTest):
    socket_only = True

    def test_transport(self):
        self.assertFalse(self.c.shm)


class ServerLifeTest(TestCase):
    def setUp(self):
        super().setUp()
        if not HAVE_MANAGER:
            self.skipTest("libmpx has no manager API")

    def test_wrong_key_is_an_authentication_error(self):
        with nm.start(authkey=KEY) as s:
            # multiprocessing.AuthenticationError, as Python's own manager raises
            with self.assertRaises(multiprocessing.AuthenticationError):
                nm.connect(s.address, b"wrong key")
            with nm.connect(s.address, KEY) as c:
                self.assertTrue(c.shm)
                c.dict()["k"] = b"v"

    def test_in_process_and_tcp(self):
        with nm.start(address="127.0.0.1:0", authkey=KEY, in_process=True) as s:
            self.assertEqual(s.pid, os.getpid())
            self.assertTrue(s.address.startswith("127.0.0.1:"))
            self.assertNotEqual(s.address, "127.0.0.1:0")
            with s.connect() as c, s.connect(socket_only=True) as c2:
                q = c.Queue("q")
                c2.open("q").put(b"over tcp")
                self.assertEqual(q.get(timeout=5), b"over tcp")

    def test_client_shutdown_stops_the_server(self):
        s = nm.start(authkey=KEY)
        self.addCleanup(s.close)
        self.assertFalse(s.wait(0))
        with nm.connect(s.address, KEY) as c:
            c.shutdown()
        self.assertTrue(s.wait(5))

    def test_server_death_makes_calls_raise_eoferror(self):
        s = nm.start(authkey=KEY, method="fork")
        self.addCleanup(s.close)
        c = nm.connect(s.address, KEY)
        self.addCleanup(c.close)
        q = c.Queue()
        box = {}

        def blocked():
            try:
                q.get()
            except BaseException as e:  # noqa: BLE001
                box["e"] = e

        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.1)
        os.kill(s.pid, signal.SIGKILL)
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(box.get("e"), EOFError)
        with self.assertRaises(EOFError):
            c.dict()
        self.assertTrue(s.wait(5))


def tearDownModule():
    # Forkservers started here are children of this process: stop them (and
    # multiprocessing's resource tracker), so that later tests that count children
    # (test_resources) find none.
    from mpx import _lib, forkserver
    forkserver.stop()
    _lib.lib.mpx_forkserver_stop()   # the C library's zygote (a C manager's default start)
    import multiprocessing.forkserver as mp_forkserver
    import multiprocessing.resource_tracker as mp_tracker
    mp_forkserver._forkserver._stop()
    mp_tracker._resource_tracker._stop()


if __name__ == "__main__":
    __import__("unittest").main()
