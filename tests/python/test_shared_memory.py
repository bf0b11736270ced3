"""SharedMemory and ShareableList, against multiprocessing.shared_memory."""

import errno
import multiprocessing.shared_memory as std
import os
import pickle
import stat
import unittest
import uuid

from _support import TestCase, mpx
from mpx.shared_memory import SharedMemory, ShareableList


def fresh_name():
    return "mpxtest_" + uuid.uuid4().hex[:16]


class SharedMemoryTest(TestCase):

    def setUp(self):
        super().setUp()
        self.names = []
        self.addCleanup(self._unlink_all)

    def _unlink_all(self):
        for n in self.names:
            try:
                os.unlink("/dev/shm/" + n)
            except FileNotFoundError:
                pass

    def name(self):
        n = fresh_name()
        self.names.append(n)
        return n

    def test_create_attach_close_unlink(self):
        name = self.name()
        shm = SharedMemory(name, create=True, size=100)
        self.assertEqual(shm.name, name)
        self.assertEqual(shm.size, 100)
        self.assertIsInstance(shm.buf, memoryview)
        self.assertEqual(len(shm.buf), 100)
        self.assertEqual(shm.buf.format, "B")
        self.assertEqual(bytes(shm.buf), bytes(100))
        shm.buf[:5] = b"hello"
        other = SharedMemory(name)
        self.assertEqual(other.size, 100)
        self.assertEqual(bytes(other.buf[:5]), b"hello")
        other.buf[5] = 33
        self.assertEqual(shm.buf[5], 33)
        self.assertEqual(repr(other), f"SharedMemory({name!r}, size=100)")
        other.close()
        other.close()            # idempotent, like Python
        self.assertIsNone(other.buf)
        shm.unlink()
        self.assertEqual(bytes(shm.buf[:5]), b"hello")    # still mapped here
        shm.close()
        with self.assertRaises(FileNotFoundError):
            SharedMemory(name)

    def test_mode_is_0600_even_with_umask_0(self):
        old = os.umask(0)
        try:
            shm = SharedMemory(self.name(), create=True, size=10)
        finally:
            os.umask(old)
        mode = stat.S_IMODE(os.stat("/dev/shm/" + shm.name).st_mode)
        self.assertEqual(mode, 0o600)
        shm.close()
        shm.unlink()

    def test_random_names(self):
        a = SharedMemory(create=True, size=10)
        b = SharedMemory(create=True, size=10)
        self.names += [a.name, b.name]
        self.assertNotEqual(a.name, b.name)
        self.assertRegex(a.name, r"^mpx_[0-9a-f]{16}$")
        self.assertTrue(os.path.exists("/dev/shm/" + a.name))
        for s in (a, b):
            s.close()
            s.unlink()

    def test_existing_name_is_FileExistsError_like_python(self):
        name = self.name()
        shm = SharedMemory(name, create=True, size=10)
        with self.assertRaises(FileExistsError) as ours:
            SharedMemory(name, create=True, size=10)
        with self.assertRaises(FileExistsError) as theirs:
            std.SharedMemory(name, create=True, size=10)
        self.assertEqual(ours.exception.errno, errno.EEXIST)
        self.assertEqual(str(ours.exception), str(theirs.exception))
        self.assertEqual(ours.exception.code, mpx._lib.EEXIST)
        shm.close()
        shm.unlink()

    def test_missing_name_is_FileNotFoundError_like_python(self):
        name = fresh_name()
        with self.assertRaises(FileNotFoundError) as ours:
            SharedMemory(name)
        with self.assertRaises(FileNotFoundError) as theirs:
            std.SharedMemory(name)
        self.assertEqual(str(ours.exception), str(theirs.exception))
        self.assertEqual(ours.exception.errno, errno.ENOENT)

    def test_double_unlink_is_FileNotFoundError(self):
        shm = SharedMemory(self.name(), create=True, size=10)
        shm.unlink()
        with self.assertRaises(FileNotFoundError):
            shm.unlink()
        shm.close()
        with self.assertRaises(FileNotFoundError):
            shm.unlink()

    def test_argument_errors_like_python(self):
        cases = [dict(name=None, create=False), dict(create=True, size=0), dict(create=True, size=-1),
                 dict(name="x", size=-1)]
        for kw in cases:
            with self.assertRaises(ValueError) as ours:
                SharedMemory(**kw)
            with self.assertRaises(ValueError) as theirs:
                std.SharedMemory(**kw)
            self.assertEqual(str(ours.exception), str(theirs.exception), kw)

    def test_bad_names(self):
        for bad in ("a/b", "x" * 300, ""):
            with self.assertRaises(OSError) as cm:
                SharedMemory(bad, create=True, size=10)
            self.assertEqual(cm.exception.errno, errno.EINVAL, bad)
        with self.assertRaises(ValueError):
            SharedMemory("a\0b", create=True, size=10)

    def test_leading_slash_is_accepted(self):
        name = self.name()
        shm = SharedMemory("/" + name, create=True, size=8)
        self.assertEqual(shm.name, name)
        SharedMemory(name).close()
        shm.close()
        shm.unlink()

    def test_close_with_exported_views_is_BufferError(self):
        for cls in (SharedMemory, std.SharedMemory):
            shm = cls(self.name(), create=True, size=10)
            view = shm.buf[2:4]
            with self.assertRaises(BufferError):
                shm.close()
            view.release()
            shm.close()
            shm.unlink()

    def test_python_and_mpx_attach_each_others_segments(self):
        name = self.name()
        theirs = std.SharedMemory(name, create=True, size=64)
        ours = SharedMemory(name)
        self.assertEqual(ours.size, 64)
        theirs.buf[0] = 7
        self.assertEqual(ours.buf[0], 7)
        ours.close()
        theirs.close()
        theirs.unlink()
        name2 = self.name()
        ours = SharedMemory(name2, create=True, size=32)
        theirs = std.SharedMemory(name2)
        try:
            ours.buf[1] = 9
            self.assertEqual(theirs.buf[1], 9)
        finally:
            theirs.close()
            ours.close()
            ours.unlink()
            try:   # Python's attach registered it with the resource tracker
                from multiprocessing import resource_tracker
                resource_tracker.unregister("/" + name2, "shared_memory")
            except Exception:
                pass

    def test_a_forked_child_sees_and_writes(self):
        shm = SharedMemory(self.name(), create=True, size=16)

        def child():
            assert bytes(shm.buf[:3]) == b"abc"
            shm.buf[3:6] = b"def"
            again = SharedMemory(shm.name)
            again.buf[6] = 1
            again.close()

        shm.buf[:3] = b"abc"
        self.assertChildOk(self.fork(child))
        self.assertEqual(bytes(shm.buf[:7]), b"abcdef\x01")
        shm.close()
        shm.unlink()

    def test_pickle_attaches_by_name(self):
        shm = SharedMemory(self.name(), create=True, size=16)
        other = pickle.loads(pickle.dumps(shm))
        self.assertEqual((other.name, other.size), (shm.name, shm.size))
        other.buf[0] = 5
        self.assertEqual(shm.buf[0], 5)
        other.close()
        shm.close()
        shm.unlink()

    def test_token(self):
        shm = SharedMemory(self.name(), create=True, size=16)
        self.assertIn(shm.name, shm.token)
        shm.close()
        shm.unlink()

    def test_track_keyword_is_accepted(self):
        shm = SharedMemory(self.name(), create=True, size=8, track=False)
        shm.close()
        shm.unlink()


class ShareableListTest(TestCase):

    def setUp(self):
        super().setUp()
        self.lists = []
        self.addCleanup(self._cleanup_lists)

    def _cleanup_lists(self):
        for sl in self.lists:
            try:
                sl.shm.close()
                sl.shm.unlink()
            except Exception:
                pass

    def make(self, *args, **kw):
        sl = ShareableList(*args, **kw)
        self.lists.append(sl)
        return sl

    VALUES = [1, -2, 3.5, True, False, None, "text", b"bytes", "", b"", "é" * 3, 2 ** 62]

    def test_same_values_format_and_bytes_as_python(self):
        ours = self.make(self.VALUES)
        theirs = std.ShareableList(self.VALUES)
        try:
            self.assertEqual(list(ours), list(theirs))
            self.assertEqual(list(ours), self.VALUES)
            self.assertEqual(ours.format, theirs.format)
            self.assertEqual(len(ours), len(self.VALUES))
            self.assertEqual(bytes(ours.shm.buf), bytes(theirs.shm.buf))
            self.assertIsInstance(ours, std.ShareableList)
            self.assertIsInstance(ours.shm, SharedMemory)
        finally:
            theirs.shm.close()
            theirs.shm.unlink()

    def test_assignment_rules_like_python(self):
        ours = self.make(["abc", 1, None])
        theirs = std.ShareableList(["abc", 1, None])
        try:
            for sl in (ours, theirs):
                sl[0] = "xyzxyzx"       # fits in the 8-byte slot
                sl[1] = 2.5
                sl[2] = "no"            # None's slot is 8 bytes: a short str fits
                sl[-1] = b"by"
            self.assertEqual(list(ours), list(theirs))
            for fn in (lambda s: s.__setitem__(0, "x" * 9), lambda s: s[3],
                       lambda s: s.__setitem__(5, 1), lambda s: s.index("nope")):
                with self.assertRaises(Exception) as a:
                    fn(ours)
                with self.assertRaises(Exception) as b:
                    fn(theirs)
                self.assertIs(type(a.exception), type(b.exception))
                self.assertEqual(str(a.exception), str(b.exception))
            self.assertEqual(ours.count(2.5), 1)
            self.assertEqual(ours.index(2.5), 1)
        finally:
            theirs.shm.close()
            theirs.shm.unlink()

    def test_attach_by_name_and_from_python(self):
        ours = self.make([1, "two", 3.0], name=fresh_name())
        again = ShareableList(name=ours.shm.name)
        self.assertEqual(list(again), [1, "two", 3.0])
        again[0] = 10
        self.assertEqual(ours[0], 10)
        again.shm.close()
        theirs = std.ShareableList(name=ours.shm.name)
        try:
            self.assertEqual(list(theirs), [10, "two", 3.0])
            theirs[1] = "2"
            self.assertEqual(ours[1], "2")
        finally:
            theirs.shm.close()
            from multiprocessing import resource_tracker
            try:
                resource_tracker.unregister("/" + ours.shm.name, "shared_memory")
            except Exception:
                pass

    def test_empty_and_repr_and_pickle(self):
        empty = self.make([])
        self.assertEqual(len(empty), 0)
        sl = self.make([1, "a"])
        self.assertEqual(repr(sl), f"ShareableList([1, 'a'], name={sl.shm.name!r})")
        other = pickle.loads(pickle.dumps(sl))
        self.assertIsInstance(other, ShareableList)
        other[0] = 5
        self.assertEqual(sl[0], 5)
        other.shm.close()

    def test_unsupported_types(self):
        with self.assertRaises(KeyError):
            ShareableList([[1]])

    def test_a_forked_child_updates_it(self):
        sl = self.make([0, "xxxx"])

        def child():
            sl[0] = 42
            sl[1] = "done"

        self.assertChildOk(self.fork(child))
        self.assertEqual(list(sl), [42, "done"])


if __name__ == "__main__":
    unittest.main()
