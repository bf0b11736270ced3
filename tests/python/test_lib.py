"""Loading the library, error mapping and timeout conversion."""

import math
import multiprocessing
import os
import subprocess
import sys
import threading
import unittest

from _support import TestCase, mpx, subprocess_env, ROOT
from mpx import _lib


class LibraryLoading(TestCase):

    def test_version_matches_the_header_major(self):
        self.assertEqual(_lib.version // 10000, 0)
        self.assertEqual(mpx.__version__, _lib.C.mpx_version_string().decode())

    def test_MPX_LIBRARY_is_used_when_set(self):
        out = subprocess.run([sys.executable, "-c", "import mpx; print(mpx.library_path)"],
                             env=subprocess_env(), capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), mpx.library_path)

    def test_a_bad_MPX_LIBRARY_is_an_ImportError_without_fallback(self):
        out = subprocess.run([sys.executable, "-c", "import mpx"],
                             env=subprocess_env(MPX_LIBRARY="/nonexistent/libmpx.so.0"),
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ImportError", out.stderr)
        self.assertIn("MPX_LIBRARY", out.stderr)

    @unittest.skipUnless(os.path.exists(os.path.join(ROOT, "build/default/src/libmpx.so.0")),
                         "no default build")
    def test_the_build_tree_is_found_without_MPX_LIBRARY(self):
        env = subprocess_env()
        del env["MPX_LIBRARY"]
        out = subprocess.run([sys.executable, "-c", "import mpx; print(mpx.library_path)"],
                             env=env, capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(os.path.realpath(out.stdout.strip()),
                         os.path.realpath(os.path.join(ROOT, "build/default/src/libmpx.so.0")))

    def test_exports(self):
        for name in ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event",
                     "Barrier", "Value", "Array", "RawValue", "RawArray", "MpxError",
                     "OwnerDiedWarning", "BrokenBarrierError"]:
            self.assertTrue(hasattr(mpx, name), name)
        self.assertIs(mpx.BrokenBarrierError, threading.BrokenBarrierError)
        self.assertTrue(issubclass(mpx.OwnerDiedWarning, RuntimeWarning))
        from mpx import shared_memory
        self.assertTrue(hasattr(shared_memory, "SharedMemory"))
        self.assertTrue(hasattr(shared_memory, "ShareableList"))


class ErrorMapping(TestCase):

    def test_every_code_maps_to_an_MpxError_with_code_name_and_message(self):
        for code in range(-1, -31, -1):
            exc = _lib.error(code, "doing it", detail="the detail")
            self.assertIsInstance(exc, mpx.MpxError)
            self.assertEqual(exc.code, code)
            self.assertEqual(exc.name, _lib.error_name(code))
            self.assertTrue(exc.name.startswith("MPX_E"), exc.name)
            self.assertEqual(exc.message, "the detail")
            self.assertIn("doing it", str(exc))
            self.assertIn("the detail", str(exc))

    def test_codes_map_to_the_exceptions_python_raises(self):
        expected = {
            _lib.EINVAL: ValueError, _lib.ENOMEM: MemoryError, _lib.ETIMEDOUT: TimeoutError,
            _lib.EEXIST: FileExistsError, _lib.ENOENT: FileNotFoundError,
            _lib.EACCES: PermissionError, _lib.EPERM: PermissionError,
            _lib.EOVERFLOW: OverflowError, _lib.ERANGE: IndexError, _lib.EOF: EOFError,
            _lib.EPIPE: BrokenPipeError, _lib.EAGAIN: BlockingIOError,
            _lib.EAUTH: multiprocessing.AuthenticationError, _lib.ECLOSED: ValueError,
            _lib.EBADHANDLE: ValueError, _lib.ENOTRECOVERABLE: RuntimeError,
            _lib.ESYS: OSError, _lib.EMFILE: OSError,
        }
        for code, cls in expected.items():
            self.assertIsInstance(_lib.error(code, detail=""), cls, _lib.error_name(code))

    def test_oserror_subclasses_carry_errno(self):
        import errno
        self.assertEqual(_lib.error(_lib.EEXIST, detail="").errno, errno.EEXIST)
        self.assertEqual(_lib.error(_lib.ENOENT, detail="").errno, errno.ENOENT)

    def test_a_real_failure_carries_the_library_message(self):
        with self.assertRaises(mpx.InvalidArgumentError) as cm:
            mpx.Lock.from_token("not a token")
        self.assertEqual(cm.exception.code, _lib.EINVAL)
        self.assertEqual(cm.exception.name, "MPX_EINVAL")
        self.assertIn("token", cm.exception.message)
        self.assertIsInstance(cm.exception, ValueError)

    def test_not_owned_is_both_assertion_and_runtime_error(self):
        self.assertTrue(issubclass(mpx.NotOwnedError, AssertionError))
        self.assertTrue(issubclass(mpx.NotOwnedError, RuntimeError))
        self.assertTrue(issubclass(mpx.NotOwnedError, mpx.MpxError))

    def test_barrier_broken_is_threadings(self):
        self.assertTrue(issubclass(mpx.BarrierBrokenError, threading.BrokenBarrierError))


class TimeoutConversion(TestCase):

    def test_seconds_become_milliseconds_rounded_up(self):
        ms = _lib.ms_from_timeout
        self.assertEqual(ms(None), -1)
        self.assertEqual(ms(0), 0)
        self.assertEqual(ms(-1), 0)
        self.assertEqual(ms(-0.5), 0)
        self.assertEqual(ms(0.0001), 1)
        self.assertEqual(ms(0.001), 1)
        self.assertEqual(ms(0.0011), 2)
        self.assertEqual(ms(0.1), 100)
        self.assertEqual(ms(0.3), 300)
        self.assertEqual(ms(1), 1000)
        self.assertEqual(ms(2.5), 2500)
        self.assertEqual(ms(1e300), -1)
        self.assertEqual(ms(math.inf), -1)
        with self.assertRaises(ValueError):
            ms(math.nan)
        with self.assertRaises(TypeError):
            ms("1")


if __name__ == "__main__":
    unittest.main()
