"""mpx.Pipe, mpx.connection.Connection and mpx.connection.wait: multiprocessing's semantics,
wire compatibility with Python's own Connection, and connections passed to children of the
three start methods."""

import array
import multiprocessing
import multiprocessing.connection as mpc
import os
import pickle
import signal
import socket
import struct
import threading
import time
import unittest

from _support import TestCase, mpx
from mpx import connection
from mpx.connection import Connection, wait

MiB = 1 << 20


def _pattern(n, seed=0):
    """n bytes that differ from one message to the next."""
    block = bytes((i * 7 + seed) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]


def _in_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


class Interrupted(Exception):
    pass


# ---- targets: module level, so that spawn and forkserver children unpickle them ----------

def _echo(conn, n):
    """Receive n objects and send each back; then send the process's name."""
    for _ in range(n):
        conn.send(conn.recv())
    conn.send(mpx.current_process().name)
    conn.close()


def _send_and_exit(conn, payload):
    conn.send_bytes(payload)
    os._exit(0)


def _send_name(conn):
    conn.send(("name", mpx.current_process().name))
    conn.close()


def _forward(inbox, reply):
    """Get a Connection from `inbox` (a Connection or a queue-like with get) and reply on it."""
    conn = inbox.recv()
    conn.send(("via", type(conn).__module__, mpx.current_process().name))
    conn.close()
    reply.send("done")


def _sleep_then_exit(seconds):
    time.sleep(seconds)


# ---- one process ---------------------------------------------------------------------------

class PipeBasics(TestCase):

    def test_a_duplex_pipe_sends_both_ways(self):
        a, b = mpx.Pipe()
        self.assertIsInstance(a, Connection)
        self.assertTrue(a.readable and a.writable and b.readable and b.writable)
        a.send({"x": [1, 2.5, "three"]})
        self.assertEqual(b.recv(), {"x": [1, 2.5, "three"]})
        b.send(None)
        self.assertIsNone(a.recv())
        b.send_bytes(b"raw")
        self.assertEqual(a.recv_bytes(), b"raw")
        a.close()
        b.close()

    def test_a_one_way_pipe_receives_on_the_first_end_and_sends_on_the_second(self):
        r, w = mpx.Pipe(duplex=False)
        self.assertEqual((r.readable, r.writable, w.readable, w.writable), (True, False, False, True))
        w.send(42)
        self.assertEqual(r.recv(), 42)
        with self.assertRaisesRegex(OSError, "connection is read-only"):
            r.send(1)
        with self.assertRaisesRegex(OSError, "connection is read-only"):
            r.send_bytes(b"x")
        with self.assertRaisesRegex(OSError, "connection is write-only"):
            w.recv()
        with self.assertRaisesRegex(OSError, "connection is write-only"):
            w.poll()
        # as multiprocessing's
        pr, pw = multiprocessing.Pipe(duplex=False)
        with self.assertRaisesRegex(OSError, "connection is read-only"):
            pr.send(1)
        for c in (r, w, pr, pw):
            c.close()

    def test_messages_keep_their_boundaries_and_poll_consumes_nothing(self):
        a, b = mpx.Pipe()
        for m in (b"", b"1", b"two", b"", b"x" * 70000):
            a.send_bytes(m)
        self.assertTrue(b.poll())
        self.assertTrue(b.poll(0))
        for m in (b"", b"1", b"two", b"", b"x" * 70000):
            self.assertTrue(b.poll())
            self.assertEqual(b.recv_bytes(), m)
        self.assertFalse(b.poll())

    def test_send_bytes_with_offset_and_size(self):
        a, b = mpx.Pipe()
        arr = array.array("i", range(10))
        a.send_bytes(arr)
        self.assertEqual(b.recv_bytes(), arr.tobytes())
        a.send_bytes(arr, 8, 12)   # byte offsets into the buffer, as Python's
        self.assertEqual(b.recv_bytes(), arr.tobytes()[8:20])
        a.send_bytes(memoryview(b"0123456789")[2:], 1)
        self.assertEqual(b.recv_bytes(), b"3456789")
        a.send_bytes(bytearray(b"abcdef"), 2, 0)
        self.assertEqual(b.recv_bytes(), b"")
        for args, msg in (((b"abc", -1), "offset is negative"),
                          ((b"abc", 4), "buffer length < offset"),
                          ((b"abc", 1, -1), "size is negative"),
                          ((b"abc", 1, 3), "buffer length < offset \\+ size")):
            with self.assertRaisesRegex(ValueError, msg):
                a.send_bytes(*args)
        self.assertFalse(b.poll())

    def test_recv_bytes_into_a_buffer_at_an_offset(self):
        a, b = mpx.Pipe()
        buf = bytearray(10)
        a.send_bytes(b"abc")
        self.assertEqual(b.recv_bytes_into(buf), 3)
        a.send_bytes(b"xyz")
        self.assertEqual(b.recv_bytes_into(buf, 5), 3)
        self.assertEqual(bytes(buf), b"abc\0\0xyz\0\0")
        arr = array.array("i", [0] * 4)
        a.send_bytes(array.array("i", [7, 8]))
        self.assertEqual(b.recv_bytes_into(arr, 4), 8)
        self.assertEqual(arr.tolist(), [0, 7, 8, 0])
        with self.assertRaisesRegex(ValueError, "negative offset"):
            b.recv_bytes_into(buf, -1)
        with self.assertRaisesRegex(ValueError, "offset too large"):
            b.recv_bytes_into(buf, 11)

    def test_a_message_too_long_for_the_buffer_is_buffertooshort_carrying_it(self):
        a, b = mpx.Pipe()
        a.send_bytes(b"0123456789abcdef")
        a.send_bytes(b"next")
        buf = bytearray(8)
        with self.assertRaises(multiprocessing.BufferTooShort) as cm:
            b.recv_bytes_into(buf)
        self.assertIs(type(cm.exception), multiprocessing.BufferTooShort)
        self.assertEqual(cm.exception.args[0], b"0123456789abcdef")
        self.assertEqual(bytes(buf), bytes(8))
        a.send_bytes(b"abc")
        with self.assertRaises(mpx.BufferTooShort) as cm:
            b.recv_bytes_into(buf, 6)
        self.assertEqual(cm.exception.args[0], b"next")
        self.assertEqual(b.recv_bytes(), b"abc")    # the next message, on its boundary
        big = _pattern(3 * MiB)
        t = _in_thread(a.send_bytes, big)
        with self.assertRaises(multiprocessing.BufferTooShort) as cm:
            b.recv_bytes_into(bytearray(MiB))
        self.assertEqual(cm.exception.args[0], big)
        t.join()

    def test_maxlength_refuses_a_longer_message_and_stops_reading(self):
        a, b = mpx.Pipe()
        a.send_bytes(b"short")
        self.assertEqual(b.recv_bytes(5), b"short")
        a.send_bytes(b"too long")
        with self.assertRaisesRegex(OSError, "bad message length"):
            b.recv_bytes(4)
        self.assertFalse(b.readable)          # duplex: still writable, no longer readable
        b.send(1)
        self.assertEqual(a.recv(), 1)
        with self.assertRaisesRegex(ValueError, "negative maxlength"):
            a.recv_bytes(-1)
        r, w = mpx.Pipe(duplex=False)
        w.send_bytes(b"too long")
        with self.assertRaisesRegex(OSError, "bad message length"):
            r.recv_bytes(0)
        self.assertTrue(r.closed)             # one-way: closed, as Python's

    def test_eof_once_the_peer_closed(self):
        for duplex in (True, False):
            r, w = mpx.Pipe(duplex)
            if duplex:
                r, w = w, r
            w.send("last")
            w.close()
            self.assertTrue(r.poll())
            self.assertEqual(r.recv(), "last")
            self.assertTrue(r.poll())         # readable: end of stream
            for recv in (r.recv, r.recv_bytes, lambda: r.recv_bytes_into(bytearray(4))):
                with self.assertRaises(EOFError):
                    recv()
            r.close()

    def test_sending_to_a_closed_peer_is_brokenpipeerror(self):
        for duplex in (True, False):
            r, w = mpx.Pipe(duplex)
            r.close()
            with self.assertRaises(BrokenPipeError):
                for _ in range(100):
                    w.send_bytes(b"x" * 65536)
            w.close()

    def test_poll_waits_up_to_its_timeout(self):
        a, b = mpx.Pipe()
        with self.assertTakes(0, 0.05):
            self.assertFalse(b.poll())
        with self.assertTakes(0.2):
            self.assertFalse(b.poll(0.2))
        with self.assertTakes(0.15):
            self.assertFalse(b.poll(0.15))
        with self.assertTakes(0, 0.05):
            self.assertFalse(b.poll(-1))
        timer = threading.Timer(0.2, a.send, (1,))
        with self.assertTakes(0.2, 1):
            timer.start()   # timed from before the timer starts
            self.assertTrue(b.poll(None))
        timer.join()

    def test_a_closed_connection_raises_oserror_handle_is_closed(self):
        a, b = mpx.Pipe()
        fd = a.fileno()
        self.assertIsInstance(fd, int)
        self.assertFalse(a.closed)
        a.close()
        a.close()   # twice is fine
        self.assertTrue(a.closed)
        uses = [a.fileno, a.recv, a.recv_bytes, a.poll, lambda: a.send(1),
                lambda: a.send_bytes(b"x"), lambda: a.recv_bytes_into(bytearray(3))]
        for use in uses:
            with self.assertRaisesRegex(OSError, "handle is closed"):
                use()
        with b:
            self.assertFalse(b.closed)
        self.assertTrue(b.closed)

    def test_a_descriptor_becomes_a_connection_that_owns_it(self):
        s1, s2 = socket.socketpair()
        a, b = Connection(s1.detach()), Connection(s2.detach())
        a.send([1, 2])
        self.assertEqual(b.recv(), [1, 2])
        fd = a.fileno()
        a.close()
        with self.assertRaises(OSError):
            os.fstat(fd)
        r, w = os.pipe()
        cr, cw = Connection(r, writable=False), Connection(w, readable=False)
        cw.send_bytes(b"pipe")
        self.assertEqual(cr.recv_bytes(), b"pipe")
        with self.assertRaisesRegex(ValueError, "invalid handle"):
            Connection(-1)
        with self.assertRaisesRegex(ValueError, "at least one of"):
            Connection(0, False, False)
        self.assertEqual(cw.detach(), w)
        self.assertTrue(cw.closed)
        os.close(w)

    def test_an_unpicklable_object_fails_in_send_and_the_connection_goes_on(self):
        a, b = mpx.Pipe()
        with self.assertRaises((pickle.PicklingError, TypeError, AttributeError)):
            a.send(lambda: None)
        a.send("after")
        self.assertEqual(b.recv(), "after")

    def test_large_messages_round_trip(self):
        a, b = mpx.Pipe()
        for n in (0, 1, 64 * 1024, MiB, 16 * MiB + 3):
            data = _pattern(n, n)
            t = _in_thread(a.send_bytes, data)
            self.assertEqual(b.recv_bytes(), data)
            t.join()
        obj = {"big": _pattern(8 * MiB), "list": list(range(1000))}
        t = _in_thread(b.send, obj)
        self.assertEqual(a.recv(), obj)
        t.join()
        buf = bytearray(5 * MiB)
        data = _pattern(4 * MiB + 1, 9)
        t = _in_thread(a.send_bytes, data)
        self.assertEqual(b.recv_bytes_into(buf, 1), len(data))
        self.assertEqual(buf[1:len(data) + 1], data)
        t.join()

    def test_a_peer_that_dies_inside_a_message_is_an_oserror_not_eof(self):
        s1, s2 = socket.socketpair()
        conn = Connection(s1.detach())
        s2.sendall(struct.pack("!i", 100) + b"only ten b")
        s2.close()
        with self.assertRaises(OSError) as cm:
            conn.recv_bytes()
        self.assertNotIsInstance(cm.exception, EOFError)
        with self.assertRaises(OSError):   # and it stays broken
            conn.recv_bytes()

    def test_a_header_announcing_too_much_is_refused_before_allocating(self):
        s1, s2 = socket.socketpair()
        conn = Connection(s1.detach())
        s2.sendall(struct.pack("!iQ", -1, 1 << 62))
        with self.assertRaisesRegex(OSError, "bad message length"):
            conn.recv_bytes()
        s2.close()

    def test_a_blocked_recv_is_interrupted_by_a_signal_handler(self):
        a, b = mpx.Pipe()

        def handler(signum, frame):
            raise Interrupted()

        old = signal.signal(signal.SIGUSR1, handler)
        self.addCleanup(signal.signal, signal.SIGUSR1, old)
        main = threading.get_ident()
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
        with self.assertTakes(0.2, 0.6):
            timer.start()
            with self.assertRaises(Interrupted):
                b.recv()
        timer.join()
        a.send("still works")
        self.assertEqual(b.recv(), "still works")

    def test_pipe_from_a_context_and_the_module(self):
        for ctx in (mpx, mpx.get_context("spawn"), mpx.get_context("fork")):
            r, w = ctx.Pipe(False)
            self.assertIsInstance(r, Connection)
            w.send("one way")
            self.assertEqual(r.recv(), "one way")
        self.assertIs(mpx.Pipe, connection.Pipe)


# ---- Python's own Connection on the other end ------------------------------------------------

def _exchange(test, ours, theirs):
    """Messages both ways between an mpx Connection and a Python Connection."""
    msgs = [b"", b"a", b"x" * 1000, _pattern(MiB), b""]
    for sender, receiver in ((ours, theirs), (theirs, ours)):
        for m in msgs:
            t = _in_thread(sender.send_bytes, m)
            test.assertEqual(receiver.recv_bytes(), m)
            t.join()
        for obj in (None, 1, "two", {"three": [3.0]}, _pattern(MiB, 3)):
            t = _in_thread(sender.send, obj)
            test.assertEqual(receiver.recv(), obj)
            t.join()
        buf = bytearray(16)
        sender.send_bytes(b"0123456789")
        test.assertEqual(receiver.recv_bytes_into(buf, 2), 10)
        test.assertEqual(bytes(buf[2:12]), b"0123456789")
        sender.send_bytes(b"x" * 32)
        with test.assertRaises(multiprocessing.BufferTooShort) as cm:
            receiver.recv_bytes_into(buf)
        test.assertEqual(cm.exception.args[0], b"x" * 32)


def _python_side(conn):
    """In a child: answer every message with itself reversed, until b'stop'."""
    while True:
        m = conn.recv_bytes()
        if m == b"stop":
            conn.send(("bye", os.getpid()))
            return
        conn.send_bytes(m[::-1])


class Interoperability(TestCase):

    def test_an_mpx_and_a_python_connection_understand_each_other(self):
        s1, s2 = socket.socketpair()
        ours, theirs = Connection(s1.detach()), mpc.Connection(s2.detach())
        _exchange(self, ours, theirs)
        ours.close()
        with self.assertRaises(EOFError):
            theirs.recv_bytes()
        theirs.close()

    def test_a_one_way_os_pipe_between_them(self):
        r, w = os.pipe()
        ours, theirs = Connection(r, writable=False), mpc.Connection(w, readable=False)
        theirs.send_bytes(b"")
        theirs.send(("tuple", 1))
        self.assertEqual(ours.recv_bytes(), b"")
        self.assertEqual(ours.recv(), ("tuple", 1))
        theirs.close()
        with self.assertRaises(EOFError):
            ours.recv()

    def test_across_a_fork_both_ways(self):
        for python_in_child in (True, False):
            s1, s2 = socket.socketpair()
            if python_in_child:
                mine, child_end = Connection(s1.detach()), s2
            else:
                mine, child_end = mpc.Connection(s1.detach()), s2

            def child(sock=child_end, python=python_in_child):
                cls = mpc.Connection if python else Connection
                _python_side(cls(sock.detach()))

            pid = self.fork(child)
            child_end.close()
            for m in (b"", b"abc", _pattern(MiB, 5), _pattern(3 * MiB + 1, 6)):
                t = _in_thread(mine.send_bytes, m)
                self.assertEqual(mine.recv_bytes(), m[::-1])
                t.join()
            mine.send_bytes(b"stop")
            self.assertEqual(mine.recv(), ("bye", pid))
            self.assertChildOk(pid)
            with self.assertRaises(EOFError):
                mine.recv()
            mine.close()


# ---- wait ------------------------------------------------------------------------------------

class Wait(TestCase):

    def test_wait_returns_the_ready_objects_of_every_kind(self):
        a, b = mpx.Pipe()
        pa, pb = multiprocessing.Pipe()
        s1, s2 = socket.socketpair()
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        objs = [b, pb, s1, r]
        with self.assertTakes(0.1):
            self.assertEqual(wait(objs, 0.1), [])
        a.send(1)
        self.assertEqual(wait(objs, 5), [b])
        pa.send(2)
        s2.send(b"3")
        os.write(w, b"4")
        self.assertEqual(wait(objs, 0), objs)
        self.assertEqual(wait(objs), objs)
        self.assertEqual(b.recv(), 1)
        self.assertEqual(wait(objs, None), [pb, s1, r])
        s1.close()
        s2.close()

    def test_wait_sees_process_sentinels(self):
        for method in ("fork", "spawn"):
            p = mpx.get_context(method).Process(target=_sleep_then_exit, args=(0.3,))
            a, b = mpx.Pipe()
            p.start()
            self.assertEqual(wait([p.sentinel, b], 0.05), [])
            t0 = time.monotonic()
            self.assertEqual(wait([p.sentinel, b], 20), [p.sentinel])
            self.assertLess(time.monotonic() - t0, 10)
            p.join(5)
            self.assertEqual(p.exitcode, 0)
            # a multiprocessing child's sentinel too
            q = multiprocessing.get_context("fork").Process(target=_sleep_then_exit, args=(0.1,))
            q.start()
            self.assertEqual(wait([q.sentinel, b], 20), [q.sentinel])
            q.join()

    def test_wait_at_eof_and_with_a_thread_sending(self):
        a, b = mpx.Pipe()
        c, d = mpx.Pipe()
        timer = threading.Timer(0.15, c.send, ("x",))
        with self.assertTakes(0.15, 1):
            timer.start()
            self.assertEqual(wait([b, d], 5), [d])
        timer.join()
        a.close()
        self.assertEqual(wait([b], 1), [b])    # end of stream is ready
        with self.assertRaises(EOFError):
            b.recv()

    def test_python_wait_accepts_mpx_connections(self):
        a, b = mpx.Pipe()
        a.send(1)
        self.assertEqual(mpc.wait([b], 1), [b])

    def test_bad_objects(self):
        with self.assertRaises((ValueError, TypeError)):
            wait([object()], 0)
        a, b = mpx.Pipe()
        b.close()
        with self.assertRaisesRegex(OSError, "handle is closed"):
            wait([b], 0)
        with self.assertTakes(0.05):
            self.assertEqual(wait([], 0.05), [])


# ---- children --------------------------------------------------------------------------------

class _Children:
    method = None

    def setUp(self):
        super().setUp()
        self.ctx = mpx.get_context(self.method)

    def test_a_pipe_end_reaches_the_child_and_echoes(self):
        a, b = mpx.Pipe()
        p = self.ctx.Process(target=_echo, args=(b, 3))
        p.start()
        b.close()
        for obj in (1, "two", _pattern(2 * MiB)):
            a.send(obj)
            self.assertEqual(a.recv(), obj)
        self.assertEqual(a.recv(), p.name)
        with self.assertRaises(EOFError):   # the child's end is its only one
            a.recv()
        p.join(20)
        self.assertEqual(p.exitcode, 0)

    def test_a_one_way_pipe_reaches_the_child(self):
        r, w = mpx.Pipe(duplex=False)
        p = self.ctx.Process(target=_send_name, args=(w,))
        p.start()
        w.close()
        self.assertTrue(r.poll(30))
        self.assertEqual(r.recv(), ("name", p.name))
        with self.assertRaises(EOFError):
            r.recv()
        p.join(20)
        self.assertEqual(p.exitcode, 0)

    def test_a_child_that_exits_right_after_sending_loses_nothing(self):
        r, w = mpx.Pipe(duplex=False)
        p = self.ctx.Process(target=_send_and_exit, args=(w, b"m" * 100_000))
        p.start()
        w.close()
        self.assertEqual(r.recv_bytes(), b"m" * 100_000)
        p.join(20)
        self.assertEqual(p.exitcode, 0)

    def test_a_connection_sent_to_a_running_child(self):
        # The child is already running: the connection travels pickled, its descriptor
        # through multiprocessing's resource sharer, as Python's connections do.
        inbox_r, inbox_w = mpx.Pipe(duplex=False)
        reply_r, reply_w = mpx.Pipe(duplex=False)
        p = self.ctx.Process(target=_forward, args=(inbox_r, reply_w))
        p.start()
        a, b = mpx.Pipe()
        inbox_w.send(b)
        b.close()
        self.assertEqual(a.recv(), ("via", "mpx.connection", p.name))
        self.assertEqual(reply_r.recv(), "done")
        p.join(20)
        self.assertEqual(p.exitcode, 0)


def _use_passed(conn):
    """Receive a Connection and a descriptor over `conn`; answer through both."""
    got = conn.recv_conn(timeout=30)
    got.send(("over the passed connection", got.readable, got.writable))
    fd = connection.recv_handle(conn)
    os.write(fd, b"through the passed descriptor")
    os.close(fd)
    conn.send("done")


class DescriptorPassing(TestCase):

    def test_a_connection_and_a_descriptor_passed_to_a_running_process(self):
        for method in ("fork", "spawn"):
            a, b = mpx.Pipe()
            p = mpx.get_context(method).Process(target=_use_passed, args=(b,))
            p.start()
            r, w = mpx.Pipe(duplex=False)
            a.send_conn(w)
            w.close()
            self.assertEqual(r.recv(), ("over the passed connection", False, True))
            pr, pw = os.pipe()
            connection.send_handle(a, pw, p.pid)
            os.close(pw)
            self.assertEqual(a.recv(), "done")
            self.assertEqual(os.read(pr, 100), b"through the passed descriptor")
            os.close(pr)
            p.join(20)
            self.assertEqual(p.exitcode, 0)

    def test_recv_conn_and_recv_fds_time_out_and_refuse_a_plain_message(self):
        a, b = mpx.Pipe()
        with self.assertTakes(0.1):
            self.assertIsNone(b.recv_conn(timeout=0.1))
        self.assertIsNone(b.recv_fds(timeout=0))
        with self.assertRaises(TypeError):
            a.send_conn(multiprocessing.Pipe()[0])
        a.send_fds([0, 1, 2])
        fds = b.recv_fds()
        self.assertEqual(len(fds), 3)
        for fd in fds:
            os.close(fd)
        a.send("not descriptors")
        with self.assertRaises(OSError):
            b.recv_fds()
        r, w = mpx.Pipe(duplex=False)
        with self.assertRaises(OSError):
            w.send_fds([0])      # a pipe cannot carry descriptors


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
