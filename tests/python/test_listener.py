"""mpx.connection.Listener and Client: Python's signatures and behaviour, addresses of each
family, the authkey handshake (a wrong key raises AuthenticationError on both sides), and
interoperability with Python's own multiprocessing.connection.Listener and Client."""

import multiprocessing
import multiprocessing.connection as mpc
import os
import socket
import tempfile
import threading
import time

from _support import TestCase, mpx  # noqa: F401
from mpx.connection import Client, Connection, Listener


def _in_thread(fn, *args):
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, box


def _echo_once(listener):
    c = listener.accept()
    try:
        m = c.recv_bytes()
        c.send_bytes(m[::-1])
    finally:
        c.close()


class ListenerTest(TestCase):
    def round_trip(self, listener, client_factory):
        t, box = _in_thread(_echo_once, listener)
        c = client_factory(listener.address)
        try:
            c.send_bytes(b"abc")
            self.assertEqual(c.recv_bytes(), b"cba")
        finally:
            c.close()
        t.join(10)
        self.assertNotIn("error", box)

    def test_unix_default_address_with_key(self):
        with Listener(authkey=b"k") as l:
            self.assertIsInstance(l.address, str)
            self.assertTrue(os.path.exists(l.address))
            self.assertEqual(os.stat(l.address).st_mode & 0o777, 0o600)
            self.round_trip(l, lambda a: Client(a, authkey=b"k"))
            self.assertEqual(l.last_accepted, "")
            path = l.address
        self.assertFalse(os.path.exists(path))

    def test_tcp_port_zero_and_last_accepted(self):
        with Listener(("127.0.0.1", 0), authkey=b"key") as l:
            host, port = l.address
            self.assertEqual(host, "127.0.0.1")
            self.assertNotEqual(port, 0)
            self.round_trip(l, lambda a: Client(a, authkey=b"key"))
            self.assertEqual(l.last_accepted[0], "127.0.0.1")

    def test_abstract_and_no_key(self):
        name = "\0mpx-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        with Listener(name, family="AF_UNIX") as l:
            self.assertEqual(l.address, name)
            self.round_trip(l, lambda a: Client(a))

    def test_objects_travel(self):
        with Listener(("127.0.0.1", 0), authkey=b"k") as l:
            def serve():
                c = l.accept()
                c.send(c.recv() + [4])
                c.close()
            t, box = _in_thread(serve)
            with Client(l.address, authkey=b"k") as c:
                c.send([1, 2, 3])
                self.assertEqual(c.recv(), [1, 2, 3, 4])
            t.join(10)
            self.assertNotIn("error", box)

    def test_wrong_key_both_sides(self):
        with Listener(("127.0.0.1", 0), authkey=b"right") as l:
            t, box = _in_thread(l.accept)
            with self.assertRaises(multiprocessing.AuthenticationError):
                Client(l.address, authkey=b"wrong")
            t.join(10)
            self.assertIsInstance(box.get("error"), multiprocessing.AuthenticationError)
            # The listener goes on.
            self.round_trip(l, lambda a: Client(a, authkey=b"right"))

    def test_authkey_type(self):
        with self.assertRaises(TypeError):
            Listener(("127.0.0.1", 0), authkey="text")

    def test_accept_after_close(self):
        l = Listener(("127.0.0.1", 0))
        l.close()
        with self.assertRaises(OSError):
            l.accept()

    def test_close_wakes_accept(self):
        l = Listener(("127.0.0.1", 0))
        t, box = _in_thread(l.accept)
        time.sleep(0.2)
        l.close()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(box.get("error"), OSError)

    def test_python_client_to_mpx_listener(self):
        with Listener(("127.0.0.1", 0), authkey=b"k") as l:
            self.round_trip(l, lambda a: mpc.Client(a, authkey=b"k"))
            t, box = _in_thread(l.accept)
            with self.assertRaises(multiprocessing.AuthenticationError):
                mpc.Client(l.address, authkey=b"nope")
            t.join(10)
            self.assertIsInstance(box.get("error"), multiprocessing.AuthenticationError)

    def test_mpx_client_to_python_listener(self):
        with mpc.Listener(("127.0.0.1", 0), authkey=b"k") as l:
            t, box = _in_thread(_echo_once, l)
            with Client(l.address, authkey=b"k") as c:
                c.send_bytes(b"xyz")
                self.assertEqual(c.recv_bytes(), b"zyx")
            t.join(10)
            self.assertNotIn("error", box)
            t, box = _in_thread(l.accept)
            with self.assertRaises(multiprocessing.AuthenticationError):
                Client(l.address, authkey=b"nope")
            t.join(10)
            self.assertIsInstance(box.get("error"), multiprocessing.AuthenticationError)

    def test_struct_mirrors_match_the_library(self):
        import ctypes
        from mpx import connection
        api = connection._listener_api()
        lo, co = api.ListenerOptions(), api.ClientOptions()
        self.assertEqual(api.mpx_listener_options_init(ctypes.byref(lo), ctypes.sizeof(lo)), 0)
        self.assertEqual(api.mpx_client_options_init(ctypes.byref(co), ctypes.sizeof(co)), 0)
        self.assertEqual((lo.size, co.size), (ctypes.sizeof(lo), ctypes.sizeof(co)))
        self.assertEqual((ctypes.sizeof(lo), ctypes.sizeof(co)), (48, 40))   # LP64
        self.assertEqual(api.ListenerOptions.max_message.offset, 40)
        self.assertEqual(api.ClientOptions.max_message.offset, 32)
