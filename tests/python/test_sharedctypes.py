"""Value, Array, RawValue, RawArray side by side with multiprocessing.sharedctypes."""

import ctypes
import multiprocessing
import pickle
import subprocess
import sys
import threading
import time
import unittest

from _support import TestCase, mpx, subprocess_env
from mpx import sharedctypes

mp = multiprocessing.get_context("fork")

TYPECODES = "cbBhHiIlLqQfd"
SAMPLES = {"c": b"x", "b": -5, "B": 250, "h": -300, "H": 65000, "i": -70000, "I": 4000000000,
           "l": -(2 ** 40), "L": 2 ** 63, "q": -(2 ** 62), "Q": 2 ** 64 - 1, "f": 1.5, "d": 2.25}


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double)]


class Wide(ctypes.Structure):
    _fields_ = [("a", ctypes.c_char), ("b", ctypes.c_longdouble)]


class RawValues(TestCase):

    def test_every_typecode_like_multiprocessing(self):
        for tc in TYPECODES:
            ours, theirs = mpx.RawValue(tc), mp.RawValue(tc)
            self.assertEqual(ours.value, theirs.value, tc)
            self.assertIsInstance(ours, type(theirs))
            self.assertEqual(ctypes.sizeof(ours), ctypes.sizeof(theirs))
            ours.value = theirs.value = SAMPLES[tc]
            self.assertEqual(ours.value, theirs.value, tc)
            self.assertEqual(mpx.RawValue(tc, SAMPLES[tc]).value, SAMPLES[tc])

    def test_ctypes_types_and_wchar(self):
        self.assertEqual(mpx.RawValue(ctypes.c_int16, 7).value, 7)
        self.assertEqual(mpx.RawValue("u", "z").value, "z")
        self.assertEqual(repr(mpx.RawValue("d", 1.5)), repr(mp.RawValue("d", 1.5)))
        self.assertEqual(repr(mpx.RawValue("i", 3)), "c_int(3)")

    def test_structures_and_alignment(self):
        p = mpx.RawValue(Point, 3, 4.5)
        self.assertEqual((p.x, p.y), (3, 4.5))
        self.assertIsInstance(p, Point)
        w = mpx.RawValue(Wide, b"a", 1.25)
        self.assertEqual(ctypes.addressof(w) % ctypes.alignment(Wide), 0)
        self.assertEqual((w.a, w.b), (b"a", 1.25))

    def test_bad_types(self):
        for bad, exc in (("z", TypeError), (object, TypeError)):
            with self.assertRaises(exc):
                mpx.RawValue(bad)
            with self.assertRaises(exc):
                mp.RawValue(bad)
        with self.assertRaises(TypeError):
            mpx.RawValue("i", "x")

    def test_zero_filled(self):
        self.assertEqual(bytes(mpx.RawArray("B", 64)), bytes(64))


class RawArrays(TestCase):

    def test_size_and_initializer_like_multiprocessing(self):
        for args in (("i", 5), ("i", [1, 2, 3]), ("d", (1.5, 2.5)), ("b", range(-3, 3)),
                     ("c", b"hello"), ("c", 3), ("B", bytearray(b"ab"))):
            ours, theirs = mpx.RawArray(*args), mp.RawArray(*args)
            self.assertEqual(ours[:], theirs[:], args)
            self.assertEqual(len(ours), len(theirs))
            self.assertEqual(type(ours).__name__, type(theirs).__name__)
            self.assertIsInstance(ours, ctypes.Array)

    def test_empty_array(self):
        a = mpx.RawArray("i", 0)
        self.assertEqual(len(a), 0)
        self.assertEqual(a[:], [])
        self.assertEqual(len(pickle.loads(pickle.dumps(a))), 0)

    def test_errors_like_multiprocessing(self):
        for fn in (lambda m: m.RawArray("i", -1), lambda m: m.RawArray("c", "abc"),
                   lambda m: m.RawArray("i", [1, "x"]), lambda m: m.RawArray("i", 3)[3],
                   lambda m: m.RawArray("i", 3).__setitem__(slice(0, 2), [1])):
            with self.assertRaises(Exception) as ours:
                fn(mpx)
            with self.assertRaises(Exception) as theirs:
                fn(mp)
            self.assertIs(type(ours.exception), type(theirs.exception))
            self.assertEqual(str(ours.exception), str(theirs.exception))

    def test_char_arrays_have_value_and_raw(self):
        a = mpx.RawArray("c", 6)
        a.value = b"abc"
        self.assertEqual(a.value, b"abc")
        self.assertEqual(a.raw, b"abc\0\0\0")
        a.raw = b"xyzxyz"
        self.assertEqual(a.value, b"xyzxyz")

    def test_no_ffi_per_element(self):
        a = mpx.RawArray("i", 4)
        addr = ctypes.addressof(a)
        ctypes.c_int.from_address(addr + 4).value = 9
        self.assertEqual(a[1], 9)
        view = memoryview(a)
        self.assertEqual(view.nbytes, 16)


class SynchronizedValues(TestCase):

    def test_value_like_multiprocessing(self):
        for tc in TYPECODES:
            ours, theirs = mpx.Value(tc, SAMPLES[tc]), mp.Value(tc, SAMPLES[tc])
            self.assertEqual(ours.value, theirs.value)
            self.assertEqual(type(ours).__name__, type(theirs).__name__)
        v = mpx.Value("i", 7)
        self.assertEqual(repr(v), "<Synchronized wrapper for c_int(7)>")
        self.assertEqual(repr(v), repr(mp.Value("i", 7)))

    def test_default_lock_is_an_rlock_with_the_full_interface(self):
        v = mpx.Value("d", 0.5)
        self.assertIsInstance(v.get_lock(), mpx.RLock)
        self.assertIsInstance(v.get_obj(), ctypes.c_double)
        self.assertEqual(v.get_obj().value, 0.5)
        self.assertTrue(v.acquire())
        self.assertTrue(v.acquire())
        v.value += 1
        v.release()
        v.release()
        with v:
            v.value *= 2
        self.assertEqual(v.value, 3.0)

    def test_lock_false_none_and_given_locks(self):
        raw = mpx.Value("i", 5, lock=False)
        self.assertIsInstance(raw, ctypes.c_int)
        self.assertEqual(raw.value, 5)
        self.assertIsInstance(mpx.Value("i", lock=None).get_lock(), mpx.RLock)
        lock = mpx.Lock()
        v = mpx.Value("i", 1, lock=lock)
        self.assertIs(v.get_lock(), lock)
        v.value = 2
        self.assertFalse(lock.locked())
        r = mpx.RLock()
        a = mpx.Array("i", 3, lock=r)
        self.assertIs(a.get_lock(), r)
        for fn in (lambda m: m.Value("i", lock="x"), lambda m: m.Array("i", 2, lock=3)):
            with self.assertRaises(AttributeError) as ours:
                fn(mpx)
            with self.assertRaises(AttributeError) as theirs:
                fn(mp)
            self.assertEqual(str(ours.exception), str(theirs.exception))

    def test_value_property_takes_the_lock(self):
        v = mpx.Value("i", 1)
        held = mpx.Event()
        done = mpx.Event()

        def child():
            with v.get_lock():
                held.set()
                time.sleep(0.3)
                v.value = 2
            done.set()

        pid = self.fork(child)
        self.assertTrue(held.wait(10))
        t0 = time.monotonic()
        self.assertEqual(v.value, 2)      # waited for the child's lock, saw its write
        self.assertGreater(time.monotonic() - t0, 0.15)
        self.assertChildOk(pid)

    def test_value_property_inside_the_lock_does_not_deadlock(self):
        v = mpx.Value("q", 0)
        with v.get_lock():
            for _ in range(10):
                v.value += 1
        self.assertEqual(v.value, 10)
        self.assertFalse(v.get_lock().locked())

    def test_another_thread_cannot_use_the_recursion_shortcut(self):
        v = mpx.Value("i", 0)
        started = threading.Event()
        result = []

        def other():
            started.set()
            t0 = time.monotonic()
            v.value = 5                   # must wait for the main thread's lock
            result.append(time.monotonic() - t0)

        with v.get_lock():
            t = threading.Thread(target=other)
            t.start()
            started.wait()
            time.sleep(0.2)
            self.assertEqual(v.get_obj().value, 0)
        t.join()
        self.assertGreater(result[0], 0.1)
        self.assertEqual(v.value, 5)

    def test_structure_value(self):
        p = mpx.Value(Point, 1, 2.0)
        self.assertEqual(type(p).__name__, "SynchronizedPoint")
        p.x += 1
        self.assertEqual((p.x, p.y), (2, 2.0))


class SynchronizedArrays(TestCase):

    def test_array_like_multiprocessing(self):
        ours, theirs = mpx.Array("i", range(10)), mp.Array("i", range(10))
        self.assertEqual(len(ours), len(theirs))
        self.assertEqual(ours[:], theirs[:])
        self.assertEqual(ours[2:8:3], theirs[2:8:3])
        self.assertEqual(ours[-1], theirs[-1])
        self.assertEqual(list(ours), list(theirs))
        ours[1:3] = theirs[1:3] = [20, 30]
        ours[0] = theirs[0] = -1
        self.assertEqual(ours[:], theirs[:])
        self.assertEqual(type(ours).__name__, type(theirs).__name__)
        with self.assertRaises(IndexError):
            ours[10]
        with self.assertRaises(ValueError):
            ours[0:2] = [1]

    def test_char_array_is_a_synchronized_string(self):
        ours, theirs = mpx.Array("c", b"hello"), mp.Array("c", b"hello")
        self.assertEqual(type(ours).__name__, "SynchronizedString")
        self.assertEqual((ours.value, ours.raw), (theirs.value, theirs.raw))
        ours.value = b"hi"
        self.assertEqual(ours.raw, b"hi\0lo")
        ours.raw = b"world"
        self.assertEqual(ours[:], b"world")
        self.assertEqual(ours[1], b"o")

    def test_lock_false_gives_the_raw_array(self):
        a = mpx.Array("d", 3, lock=False)
        self.assertIsInstance(a, ctypes.Array)

    def test_negating_an_array_in_a_child(self):
        arr = mpx.Array("d", [float(i) for i in range(100)])

        def child():
            with arr.get_lock():
                for i in range(len(arr)):
                    arr[i] = -arr[i]

        self.assertChildOk(self.fork(child))
        self.assertEqual(arr[:], [-float(i) for i in range(100)])


class AcrossProcesses(TestCase):

    def test_locked_increments_from_many_processes_are_exact(self):
        v = mpx.Value("i", 0)
        n = 3000

        def child(i):
            for _ in range(n):
                with v.get_lock():
                    v.value += 1

        self.run_children(child, 4)
        self.assertEqual(v.value, 4 * n)

    def test_threads_in_several_processes(self):
        v = mpx.Value("i", 0)
        arr = mpx.Array("i", 2)

        def work():
            for _ in range(1000):
                with v.get_lock():
                    v.value += 1
                arr[0] += 0          # item access takes the lock too
                v.value               # and so does a read

        def child(i):
            ts = [threading.Thread(target=work) for _ in range(2)]
            for t in ts:
                t.start()
            work()
            for t in ts:
                t.join()

        self.run_children(child, 2)
        self.assertEqual(v.value, 2 * 3 * 1000)
        self.assertFalse(v.get_lock().locked())

    def test_a_child_holding_the_value_lock_dies(self):
        import warnings, os
        v = mpx.Value("i", 0)
        ready = mpx.Event()

        def child():
            v.get_lock().acquire()
            v.value = 99
            ready.set()
            os._exit(0)

        pid = self.fork(child)
        self.assertTrue(ready.wait(10))
        self.join(pid)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertEqual(v.value, 99)
        self.assertEqual([x.category for x in w], [mpx.OwnerDiedWarning])


class Pickling(TestCase):

    def test_raw_objects_pickle_as_shared_memory_not_copies(self):
        for obj in (mpx.RawValue("i", 1), mpx.RawArray("d", [1.0, 2.0]), mpx.RawArray("c", b"ab"),
                    mpx.RawValue(Point, 1, 2.0), mpx.RawArray("u", "xy")):
            other = pickle.loads(pickle.dumps(obj))
            self.assertEqual(bytes(other), bytes(obj))
            self.assertIsInstance(other, sharedctypes._shared_bases[type(obj)])
            ctypes.memset(ctypes.addressof(other), 0, ctypes.sizeof(other))
            self.assertEqual(bytes(obj), bytes(ctypes.sizeof(obj)))

    def test_synchronized_objects_keep_their_lock(self):
        v = mpx.Value("i", 3)
        w = pickle.loads(pickle.dumps(v))
        self.assertEqual(w.value, 3)
        self.assertEqual(w.get_lock().token, v.get_lock().token)
        got = []
        with v.get_lock():
            t = threading.Thread(target=lambda: got.append(w.get_lock().acquire(False)))
            t.start()
            t.join()
        self.assertEqual(got, [False])
        w.value = 4
        self.assertEqual(v.value, 4)

    def test_attach_and_token_of(self):
        a = mpx.Array("h", [1, 2, 3])
        b = sharedctypes.attach(sharedctypes.token_of(a))
        self.assertEqual(b[:], [1, 2, 3])
        self.assertEqual(b.get_lock().token, a.get_lock().token)
        r = sharedctypes.attach(a.token, lock=False)
        self.assertIsInstance(r, ctypes.Array)
        v = sharedctypes.attach(mpx.Value("d", 2.5).token)
        self.assertEqual(v.value, 2.5)
        raw = sharedctypes.attach(sharedctypes.token_of(mpx.RawValue("i", 8)))
        self.assertIsInstance(raw, ctypes.c_int)
        with self.assertRaises(TypeError):
            sharedctypes.token_of(ctypes.c_int())

    def test_an_unrelated_process_writes_through_a_pickle(self):
        v = mpx.Value("q", 0)
        arr = mpx.RawArray("i", 3)
        data = pickle.dumps((v, arr)).hex()
        code = ("import pickle, sys, mpx\n"
                "v, arr = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
                "with v.get_lock():\n"
                "    v.value += 41\n"
                "arr[:] = [7, 8, 9]\n")
        out = subprocess.run([sys.executable, "-c", code, data], env=subprocess_env(),
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(v.value, 41)
        self.assertEqual(arr[:], [7, 8, 9])

    def test_copy(self):
        a = mpx.RawArray("i", [1, 2, 3])
        b = sharedctypes.copy(a)
        b[0] = 10
        self.assertEqual((a[0], b[:]), (1, [10, 2, 3]))
        c = sharedctypes.copy(mpx.RawValue("d", 1.5))
        self.assertEqual(c.value, 1.5)

    def test_synchronized_helper(self):
        s = sharedctypes.synchronized(mpx.RawValue("i", 1))
        self.assertIsInstance(s.get_lock(), mpx.RLock)
        with self.assertRaises(AssertionError):
            sharedctypes.synchronized(s)


if __name__ == "__main__":
    unittest.main()
