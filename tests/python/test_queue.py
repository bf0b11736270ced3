"""mpx.Queue, SimpleQueue and JoinableQueue: multiprocessing's semantics, many producers and
consumers, nothing lost without a feeder thread, and queues reaching children of the three
start methods."""

import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import unittest

from _support import TestCase, mpx
from mpx.queues import Queue, SimpleQueue, JoinableQueue

MiB = 1 << 20


def _pattern(n, seed=0):
    block = bytes((i * 7 + seed) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]


def _in_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class Interrupted(Exception):
    pass


class Unpicklable:
    def __reduce__(self):
        raise TypeError("not today")


# ---- targets: module level, so that spawn and forkserver children unpickle them ----------

def _produce(q, producer, n):
    for i in range(n):
        q.put((producer, i))


def _consume(q, out, n_stop):
    """Get items until a None; put the list of them on `out`."""
    got = []
    while True:
        item = q.get()
        if item is None:
            break
        got.append(item)
    out.put(got)


def _put_and_exit(q, payload):
    q.put(payload)
    os._exit(0)


def _report(q, word):
    q.put((word, mpx.current_process().name, os.getpid()))


def _work_and_mark_done(q, results):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        time.sleep(0.001)
        results.put(item * 2)
        q.task_done()


def _get_then_reply(q, reply):
    reply.put(("got", q.get(timeout=30)))


def _use_queue_from_connection(conn):
    q = conn.recv()
    q.put(("hello from", mpx.current_process().name))


# ---- one process ---------------------------------------------------------------------------

class QueueBasics(TestCase):

    def test_items_come_out_in_order_and_equal(self):
        q = mpx.Queue()
        items = [None, 0, "s", b"", b"bytes", [1, (2, 3)], {"k": 1.5}, _pattern(70000)]
        for item in items:
            q.put(item)
        self.assertEqual(q.qsize(), len(items))
        self.assertFalse(q.empty())
        for item in items:
            self.assertEqual(q.get(), item)
        self.assertTrue(q.empty())
        self.assertEqual(q.qsize(), 0)

    def test_get_nowait_on_an_empty_queue_is_empty(self):
        for q in (mpx.Queue(), mpx.JoinableQueue()):
            with self.assertTakes(0, 0.05):
                with self.assertRaises(queue.Empty):
                    q.get_nowait()
            with self.assertRaises(queue.Empty):
                q.get(False)
            with self.assertRaises(queue.Empty):
                q.get(False, 5)        # block=False ignores the timeout
            with self.assertRaises(queue.Empty):
                q.get(True, -1)        # a negative timeout does not wait

    def test_a_timed_get_raises_empty_after_the_timeout(self):
        q = mpx.Queue()
        for t in (0.05, 0.1, 0.25):
            with self.assertTakes(t):
                with self.assertRaises(queue.Empty):
                    q.get(timeout=t)

    def test_a_bounded_queue_is_full_at_maxsize(self):
        q = mpx.Queue(2)
        self.assertFalse(q.full())
        q.put(1)
        q.put_nowait(2)
        self.assertTrue(q.full())
        self.assertEqual(q.qsize(), 2)
        with self.assertTakes(0, 0.05):
            with self.assertRaises(queue.Full):
                q.put_nowait(3)
        with self.assertRaises(queue.Full):
            q.put(3, False)
        with self.assertTakes(0.1):
            with self.assertRaises(queue.Full):
                q.put(3, timeout=0.1)
        with self.assertTakes(0.25):
            with self.assertRaises(queue.Full):
                q.put(3, True, 0.25)
        self.assertEqual(q.get(), 1)
        q.put(3)
        self.assertEqual([q.get(), q.get()], [2, 3])

    def test_a_blocked_put_goes_through_once_a_get_makes_room(self):
        q = mpx.Queue(1)
        q.put("first")
        timer = threading.Timer(0.2, q.get)
        with self.assertTakes(0.2, 1):
            timer.start()   # timed from before the timer starts
            q.put("second")
        timer.join()
        self.assertEqual(q.get(timeout=1), "second")

    def test_a_blocked_get_returns_an_item_put_later(self):
        q = mpx.Queue()
        timer = threading.Timer(0.2, q.put, ("late",))
        with self.assertTakes(0.2, 1):
            timer.start()
            self.assertEqual(q.get(), "late")
        timer.join()
        timer = threading.Timer(0.2, q.put, ("timed",))
        with self.assertTakes(0.2, 1):
            timer.start()
            self.assertEqual(q.get(timeout=5), "timed")
        timer.join()

    def test_a_full_ring_blocks_even_without_maxsize(self):
        q = mpx.Queue(capacity=64 * 1024)
        self.assertEqual(q.capacity, 64 * 1024)
        self.assertEqual(mpx.Queue().capacity, 1 << 20)
        item = b"x" * 1000
        n = 0
        with self.assertRaises(queue.Full):
            while n < 10_000:
                q.put_nowait(item)
                n += 1
        self.assertGreater(n, 10)
        self.assertLess(n, 100)
        self.assertFalse(q.full())       # full() counts items against maxsize only
        with self.assertTakes(0.1):
            with self.assertRaises(queue.Full):
                q.put(item, timeout=0.1)
        self.assertEqual(q.get(), item)
        q.put_nowait(item)

    def test_items_larger_than_the_ring_go_through(self):
        q = mpx.Queue()     # a 1 MiB ring
        big = _pattern(8 * MiB, 1)
        t = _in_thread(q.put, big)
        self.assertEqual(q.get(timeout=20), big)
        t.join()
        t = _in_thread(lambda: [q.put(x) for x in (b"a", big, b"b")])
        self.assertEqual([q.get(timeout=20) for _ in range(3)], [b"a", big, b"b"])
        t.join()
        self.assertTrue(q.empty())

    def test_an_item_over_max_message_is_refused_and_changes_nothing(self):
        q = mpx.Queue(max_message=1000)
        with self.assertRaises(OSError) as cm:
            q.put(b"x" * 2000)
        self.assertEqual(cm.exception.name, "MPX_EMSGSIZE")
        self.assertTrue(q.empty())
        q.put(b"x" * 500)
        self.assertEqual(q.get(), b"x" * 500)

    def test_an_unpicklable_item_fails_in_put_and_the_queue_goes_on(self):
        q = mpx.Queue()
        with self.assertRaisesRegex(TypeError, "not today"):
            q.put(Unpicklable())
        with self.assertRaises(Exception):
            q.put(lambda: None)
        self.assertTrue(q.empty())
        q.put("ok")
        self.assertEqual(q.get(), "ok")

    def test_close_is_per_process_and_later_calls_raise_valueerror(self):
        q = mpx.Queue()
        q.put("left")
        other = Queue.from_token(q.token)        # another handle on the same queue
        with self.assertRaises(AssertionError):
            q.join_thread()                      # multiprocessing asserts the queue is closed
        q.close()
        q.close()
        q.join_thread()
        q.cancel_join_thread()
        for use in (lambda: q.put(1), q.get, q.get_nowait, lambda: q.put_nowait(1), q.qsize,
                    q.empty, q.full):
            with self.assertRaisesRegex(ValueError, "Queue .* is closed"):
                use()
        self.assertEqual(other.get(), "left")    # the queue itself is not closed
        other.put(1)
        self.assertEqual(other.get(), 1)

    def test_close_wakes_a_thread_blocked_in_get(self):
        q = mpx.Queue()
        errors = []

        def getter():
            try:
                q.get(timeout=10)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        t = _in_thread(getter)
        time.sleep(0.1)
        q.close()
        t.join(2)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ValueError)

    def test_shutdown_is_for_every_process(self):
        q = mpx.Queue()
        other = Queue.from_token(q.token)
        q.put(1)
        q.put(2)
        self.assertFalse(other.is_shutdown)
        q.shutdown()
        q.shutdown()   # again: nothing
        self.assertTrue(other.is_shutdown)
        with self.assertRaises(mpx.QueueShutDown) as cm:
            other.put(3)
        self.assertIsInstance(cm.exception, ValueError)
        if hasattr(queue, "ShutDown"):
            self.assertIsInstance(cm.exception, queue.ShutDown)
        self.assertEqual([other.get(), q.get()], [1, 2])   # what was queued still comes out
        with self.assertTakes(0, 0.05):
            with self.assertRaises(mpx.QueueShutDown):
                q.get()

    def test_shutdown_wakes_blocked_getters_and_immediate_discards(self):
        q = mpx.JoinableQueue()
        errors = []

        def getter():
            try:
                q.get()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts = [_in_thread(getter) for _ in range(3)]
        time.sleep(0.1)
        q.shutdown()
        for t in ts:
            t.join(2)
        self.assertEqual([type(e) for e in errors], [mpx.QueueShutDown] * 3)
        q2 = mpx.JoinableQueue()
        for i in range(5):
            q2.put(i)
        q2.shutdown(immediate=True)
        self.assertTrue(q2.empty())
        with self.assertTakes(0, 0.1):
            q2.join()     # the discarded items count as done

    def test_a_blocked_get_is_interrupted_by_a_signal_handler(self):
        q = mpx.Queue()

        def handler(signum, frame):
            raise Interrupted()

        old = signal.signal(signal.SIGUSR1, handler)
        self.addCleanup(signal.signal, signal.SIGUSR1, old)
        main = threading.get_ident()
        for get in (q.get, lambda: q.get(timeout=30), mpx.SimpleQueue().get):
            timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
            with self.assertTakes(0.2, 0.6):
                timer.start()
                with self.assertRaises(Interrupted):
                    get()
            timer.join()
        q.put("still works")
        self.assertEqual(q.get(), "still works")

    def test_threads_share_one_queue_object(self):
        q = mpx.Queue(maxsize=50)
        got = [[] for _ in range(4)]

        def producer(k):
            for i in range(500):
                q.put((k, i, b"p" * (i % 3 * 20000)))   # small, and past the GIL-held tries

        def consumer(out):
            while (item := q.get(timeout=20)) is not None:
                out.append(item[:2])

        cs = [_in_thread(consumer, g) for g in got]
        ps = [_in_thread(producer, k) for k in range(4)]
        for t in ps:
            t.join(30)
        for _ in cs:
            q.put(None)
        for t in cs:
            t.join(30)
        everything = sorted(x for g in got for x in g)
        self.assertEqual(everything, sorted((k, i) for k in range(4) for i in range(500)))
        for g in got:
            for k in range(4):
                seq = [i for (kk, i) in g if kk == k]
                self.assertEqual(seq, sorted(seq))

    def test_a_queue_pickles_as_its_token(self):
        q = mpx.Queue(5)
        q2 = pickle.loads(pickle.dumps(q))
        self.assertIsInstance(q2, Queue)
        self.assertEqual(q2._maxsize, 5)
        q.put("through the copy")
        self.assertEqual(q2.get(), "through the copy")
        self.assertIsInstance(Queue.from_token(q.token), Queue)
        jq, sq, q0 = mpx.JoinableQueue(), mpx.SimpleQueue(), mpx.Queue(0)   # kept alive
        self.assertIsInstance(pickle.loads(pickle.dumps(jq)), JoinableQueue)
        self.assertIsInstance(pickle.loads(pickle.dumps(sq)), SimpleQueue)
        self.assertEqual(Queue.from_token(q0.token)._maxsize, mpx.Queue()._maxsize)

    def test_queues_from_contexts_and_generic_alias(self):
        for ctx in (mpx, mpx.get_context("spawn"), mpx.get_context("forkserver")):
            for make in (ctx.Queue, ctx.JoinableQueue, ctx.SimpleQueue):
                q = make()
                q.put(make.__name__)
                self.assertEqual(q.get(), make.__name__)
        self.assertEqual(str(mpx.Queue[int]), "mpx.queues.Queue[int]")
        self.assertTrue(mpx.Queue(maxsize=-3).put_nowait(1) is None)


class SimpleQueueBasics(TestCase):

    def test_put_get_empty_close(self):
        q = mpx.SimpleQueue()
        self.assertTrue(q.empty())
        q.put([1, 2])
        q.put(None)
        self.assertFalse(q.empty())
        self.assertEqual(q.get(), [1, 2])
        self.assertIsNone(q.get())
        self.assertTrue(q.empty())
        q.close()
        q.close()
        for use in (q.get, lambda: q.put(1), q.empty):
            with self.assertRaisesRegex(OSError, "handle is closed"):   # as multiprocessing's
                use()

    def test_a_simple_queue_across_a_fork(self):
        q = mpx.SimpleQueue()
        pid = self.fork(lambda: [q.put(i) for i in range(1000)] and None)
        self.assertEqual([q.get() for _ in range(1000)], list(range(1000)))
        self.assertChildOk(pid)


class JoinableQueueBasics(TestCase):

    def test_task_done_and_join(self):
        q = mpx.JoinableQueue()
        with self.assertTakes(0, 0.05):
            q.join()
        q.put(1)
        q.put(2)
        self.assertEqual(q.get(), 1)
        q.task_done()
        timer = threading.Timer(0.2, lambda: (q.get(), q.task_done()))
        with self.assertTakes(0.2, 1):
            timer.start()
            q.join()
        timer.join()
        with self.assertRaisesRegex(ValueError, r"task_done\(\) called too many times"):
            q.task_done()
        pq = multiprocessing.JoinableQueue()    # as multiprocessing's
        with self.assertRaisesRegex(ValueError, r"task_done\(\) called too many times"):
            pq.task_done()
        pq.close()
        pq.join_thread()


# ---- many processes (fork) -------------------------------------------------------------------

class ManyProcesses(TestCase):

    def test_producers_and_consumers_deliver_every_item_exactly_once_in_order(self):
        for maxsize, capacity in ((0, 0), (1, 0), (0, 4096)):
            q = mpx.Queue(maxsize, capacity=capacity)
            out = mpx.Queue()
            n_prod, n_cons, per = 3, 3, 2000 if maxsize != 1 else 300
            consumers = [self.fork(_consume, q, out, 1) for _ in range(n_cons)]
            producers = [self.fork(_produce, q, p, per) for p in range(n_prod)]
            for pid in producers:
                self.assertChildOk(pid)
            for _ in range(n_cons):
                q.put(None)
            got = [out.get(timeout=30) for _ in range(n_cons)]
            for pid in consumers:
                self.assertChildOk(pid)
            everything = sorted(x for g in got for x in g)
            self.assertEqual(everything, sorted((p, i) for p in range(n_prod) for i in range(per)))
            for g in got:      # each consumer saw each producer's items in order
                for p in range(n_prod):
                    seq = [i for (pp, i) in g if pp == p]
                    self.assertEqual(seq, sorted(seq))

    def test_an_item_put_right_before_os_exit_is_not_lost(self):
        # multiprocessing's feeder thread loses it (gh-85927); here put returns once the item
        # is in shared memory.
        q = mpx.Queue()
        for payload in ("small", _pattern(200_000)):
            for _ in range(5):
                pid = self.fork(_put_and_exit, q, payload)
                self.assertEqual(q.get(timeout=10), payload)
                self.assertChildOk(pid)

    def test_task_done_and_join_across_processes(self):
        q = mpx.JoinableQueue()
        results = mpx.Queue()
        workers = [self.fork(_work_and_mark_done, q, results) for _ in range(3)]
        for i in range(60):
            q.put(i)
        q.join()
        self.assertEqual(results.qsize(), 60)
        self.assertEqual(sorted(results.get() for _ in range(60)), [i * 2 for i in range(60)])
        for _ in workers:
            q.put(None)
        q.join()
        for pid in workers:
            self.assertChildOk(pid)

    def test_a_large_item_between_processes(self):
        q = mpx.Queue()
        big = _pattern(8 * MiB, 4)
        pid = self.fork(lambda: q.put(big))
        self.assertEqual(q.get(timeout=30), big)
        self.assertChildOk(pid)
        pid = self.fork(lambda: 0 if q.get(timeout=30) == big else 3)
        q.put(big)
        self.assertChildOk(pid)


# ---- children of the three start methods ----------------------------------------------------

class _Children:
    method = None

    def setUp(self):
        super().setUp()
        self.ctx = mpx.get_context(self.method)

    def test_queues_reach_the_child(self):
        q, sq, jq = self.ctx.Queue(), self.ctx.SimpleQueue(), self.ctx.JoinableQueue()
        ps = [self.ctx.Process(target=_report, args=(x, w)) for x, w in
              ((q, "queue"), (sq, "simple"), (jq, "joinable"))]
        for p in ps:
            p.start()
        self.assertEqual(q.get(timeout=30)[:2], ("queue", ps[0].name))
        self.assertEqual(sq.get()[:2], ("simple", ps[1].name))
        self.assertEqual(jq.get(timeout=30)[:2], ("joinable", ps[2].name))
        jq.task_done()
        jq.join()
        for p in ps:
            p.join(20)
            self.assertEqual(p.exitcode, 0)

    def test_a_child_gets_what_the_parent_puts(self):
        q, reply = self.ctx.Queue(), self.ctx.Queue()
        p = self.ctx.Process(target=_get_then_reply, args=(q, reply))
        p.start()
        q.put({"for": "the child"})
        self.assertEqual(reply.get(timeout=30), ("got", {"for": "the child"}))
        p.join(20)
        self.assertEqual(p.exitcode, 0)

    def test_a_child_that_puts_and_exits_at_once_loses_nothing(self):
        q = self.ctx.Queue()
        p = self.ctx.Process(target=_put_and_exit, args=(q, _pattern(300_000, 2)))
        p.start()
        self.assertEqual(q.get(timeout=30), _pattern(300_000, 2))
        p.join(20)
        self.assertEqual(p.exitcode, 0)

    def test_a_queue_sent_over_a_pipe_to_a_running_child(self):
        a, b = mpx.Pipe()
        p = self.ctx.Process(target=_use_queue_from_connection, args=(b,))
        p.start()
        q = mpx.Queue()
        a.send(q)
        self.assertEqual(q.get(timeout=30), ("hello from", p.name))
        p.join(20)
        self.assertEqual(p.exitcode, 0)


class ForkChildren(_Children, TestCase):
    method = "fork"


class SpawnChildren(_Children, TestCase):
    method = "spawn"


class ForkServerChildren(_Children, TestCase):
    method = "forkserver"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        mpx.forkserver.stop()
        mpx.set_forkserver_preload([__name__])


def tearDownModule():
    from mpx import forkserver
    forkserver.stop()


if __name__ == "__main__":
    unittest.main()
