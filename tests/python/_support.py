"""Shared test support: finds the package and the library, gives every test a deadline,
and runs code in real os.fork() children that are always reaped (killed if need be).

Run the suite with either:
    python3 -m pytest tests/python
    python3 -m unittest discover -s tests/python
"""

import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINDINGS = os.path.join(ROOT, "bindings", "python")
if BINDINGS not in sys.path:
    sys.path.insert(0, BINDINGS)
if not os.environ.get("MPX_LIBRARY"):
    _built = os.path.join(ROOT, "build", "default", "src", "libmpx.so.0")
    if os.path.exists(_built):
        os.environ["MPX_LIBRARY"] = _built

import mpx  # noqa: E402

# Seconds each test may take (children included) before it fails.
DEADLINE = float(os.environ.get("MPX_TEST_DEADLINE", "60"))
# Slack allowed past a timeout (the brief: within 50 ms of the deadline).
TIMING_SLACK = float(os.environ.get("MPX_TEST_TIMING_SLACK", "0.05"))


class DeadlineExceeded(Exception):
    pass


def wait_until(predicate, timeout=5.0, interval=0.001):
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def subprocess_env(**extra):
    """Environment for a Python subprocess that imports mpx the same way this one does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = BINDINGS + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MPX_LIBRARY"] = mpx.library_path
    env.update(extra)
    return env


class TestCase(unittest.TestCase):
    """A test with a deadline (SIGALRM raises DeadlineExceeded in the test) whose forked
    children are killed and reaped when it ends."""

    deadline = DEADLINE

    def setUp(self):
        super().setUp()
        self._children = []
        old = signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.deadline)
        self.addCleanup(self._cleanup, old)

    def _on_alarm(self, signum, frame):
        raise DeadlineExceeded(f"{self.id()} exceeded its {self.deadline:g} s deadline")

    def _cleanup(self, old_handler):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        for pid in self._children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self._children = []

    # ---- children ----

    def fork(self, fn, *args):
        """Run fn(*args) in an os.fork() child. Exit status 0 if it returns (or its int
        result if it returns one), 1 with a traceback if it raises; SIGALRM kills it at
        the test's deadline."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(int(self.deadline) + 1)
                rv = fn(*args)
                code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self._children.append(pid)
        return pid

    def join(self, pid, timeout=None):
        """Wait for a child; its exit code, or -signal if killed. Fails (after killing it)
        if it does not end within `timeout` seconds (default: the test deadline)."""
        end = time.monotonic() + (self.deadline if timeout is None else timeout)
        while True:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                self._children.remove(pid)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() >= end:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                self._children.remove(pid)
                self.fail(f"child {pid} did not finish within {timeout} s")
            time.sleep(0.002)

    def assertChildOk(self, pid, timeout=None):
        code = self.join(pid, timeout)
        self.assertEqual(code, 0, f"child {pid} failed with exit code {code}")

    def run_children(self, fn, n, *args, timeout=None):
        """Fork n children running fn(i, *args) and require each to exit 0."""
        pids = [self.fork(fn, i, *args) for i in range(n)]
        for pid in pids:
            self.assertChildOk(pid, timeout)

    def kill(self, pid, sig=signal.SIGKILL):
        os.kill(pid, sig)
        return self.join(pid, 5)

    def assertTakes(self, low, high=None):
        """Context manager: the block must take between low and low + slack seconds."""
        return _Takes(self, low, low + TIMING_SLACK if high is None else high)


class _Takes:
    def __init__(self, tc, low, high):
        self.tc, self.low, self.high = tc, low, high

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        self.elapsed = time.monotonic() - self.t0
        self.tc.assertGreaterEqual(self.elapsed, self.low - 0.001, "returned before the timeout")
        self.tc.assertLessEqual(self.elapsed, self.high,
                                f"took {self.elapsed:.3f} s, more than {self.high:.3f} s")
        return False
