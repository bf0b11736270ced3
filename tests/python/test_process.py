"""mpx.Process and the start methods: multiprocessing's semantics with fork, spawn and
forkserver children (each test class below runs the same tests with one method)."""

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

from _support import TestCase, mpx, subprocess_env, BINDINGS
from mpx import _lib
from mpx.shared_memory import SharedMemory

# The process that imported this module (a forkserver that preloads it, in its children).
_IMPORTED_BY = os.getpid()


# ---- targets: module level, so that spawn and forkserver children unpickle them ----------

def _return():
    return "ignored"


def _exit_with(code):
    sys.exit(code)


def _os_exit(code):
    os._exit(code)


def _raise(message):
    raise RuntimeError(message)


def _sleep(seconds):
    time.sleep(seconds)


def _wait_event(event, seconds=30):
    event.wait(seconds)


def _write(path, value):
    with open(path, "w") as f:
        f.write(repr(value))


def _with_stderr(path, fn, *args):
    """Run fn(*args) with fd 2 sent to `path` (what the bootstrap prints lands there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = open(2, "w", closefd=False)   # pytest may have replaced sys.stderr
    fn(*args)


def _report_identity(path):
    cur, parent = mpx.current_process(), mpx.parent_process()
    _write(path, {
        "name": cur.name, "pid": cur.pid, "getpid": os.getpid(), "daemon": cur.daemon,
        "parent_pid": parent.pid, "parent_name": parent.name, "parent_alive": parent.is_alive(),
        "authkey": bytes(cur.authkey), "mp_name": multiprocessing.current_process().name,
        "alive": cur.is_alive(), "stdin": sys.stdin.read(),
    })


def _report_child_name(path):
    p = mpx.Process(target=_return)
    p.start()
    p.join()
    _write(path, (p.name, p.exitcode))


def _try_to_start_a_child(path):
    try:
        mpx.Process(target=_return).start()
    except AssertionError as e:
        _write(path, ("AssertionError", str(e)))
    else:
        _write(path, ("started", ""))


def _catch_interrupt(ready):
    try:
        ready.set()
        time.sleep(30)
    except KeyboardInterrupt:
        sys.exit(5)


def _take_tickets(counter, lock, taken, n):
    for _ in range(n):
        with lock:
            t = counter.value
            counter.value = t + 1
        taken[t] += 1


def _use_objects(event, shm_name, value, array, done):
    event.wait(10)
    shm = SharedMemory(shm_name)
    shm.buf[0] = 42
    shm.close()
    with value.get_lock():
        value.value += 1
    array[1] = 2.5
    done.set()


def _sum_into(value, data):
    value.value = sum(data)


def _report_importer(path):
    _write(path, (_IMPORTED_BY, os.getpid(), os.getppid()))


def _send_name(conn):
    conn.send(mpx.current_process().name)
    conn.close()


def _start_daemon_and_wait(method, pid_value):
    d = mpx.get_context(method).Process(target=_report_pid_then_sleep, args=(pid_value,), daemon=True)
    d.start()
    time.sleep(60)


def _report_pid_then_sleep(pid_value):
    pid_value.value = os.getpid()
    time.sleep(60)


class _Worker(mpx.Process):
    """A subclass that overrides run(), started with the method it is given."""

    def __init__(self, method, path, word):
        super().__init__()
        self.method = method
        self.path = path
        self.word = word

    @staticmethod
    def _Popen(process_obj):
        return mpx.get_context(process_obj.method).Process._Popen(process_obj)

    def run(self):
        _write(self.path, (type(self).__name__, self.word * 2))


def _read(path):
    with open(path) as f:
        return eval(f.read())


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def child_pids():
    """Pids whose parent is this process (zombies included)."""
    me = str(os.getpid())
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                out.append(int(entry))
    return sorted(out)


def is_gone(pid):
    """True once pid is dead (exited or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# ---- the tests, once per start method ------------------------------------------------------

class _ProcessTests:
    method = None

    def setUp(self):
        super().setUp()
        self.ctx = mpx.get_context(self.method)
        self.tmp = tempfile.mkdtemp(prefix="mpx-test-process-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self._kill_children)

    def _kill_children(self):
        for p in mpx.active_children():
            p.kill()
            p.join(5)

    def path(self, name="out"):
        return os.path.join(self.tmp, name)

    def run_child(self, target, *args, timeout=30, **kw):
        p = self.ctx.Process(target=target, args=args, **kw)
        p.start()
        p.join(timeout)
        self.assertIsNotNone(p.exitcode, "the child did not end")
        return p

    # exit codes

    def test_a_target_that_returns_gives_0(self):
        p = self.run_child(_return)
        self.assertEqual(p.exitcode, 0)
        self.assertFalse(p.is_alive())

    def test_sys_exit_with_an_int_gives_that_int(self):
        self.assertEqual(self.run_child(_exit_with, 7).exitcode, 7)
        self.assertEqual(self.run_child(_exit_with, None).exitcode, 0)

    def test_sys_exit_with_a_message_prints_it_and_gives_1(self):
        err = self.path("err")
        p = self.run_child(_with_stderr, err, _exit_with, "the message")
        self.assertEqual(p.exitcode, 1)
        with open(err) as f:
            self.assertEqual(f.read(), "the message\n")

    def test_an_uncaught_exception_prints_its_traceback_and_gives_1(self):
        err = self.path("err")
        p = self.run_child(_with_stderr, err, _raise, "boom in the child")
        self.assertEqual(p.exitcode, 1)
        with open(err) as f:
            text = f.read()
        self.assertTrue(text.startswith(f"Process {p.name}:\nTraceback (most recent call last):"), text)
        self.assertIn("RuntimeError: boom in the child", text)

    def test_os_exit_gives_its_status(self):
        self.assertEqual(self.run_child(_os_exit, 3).exitcode, 3)

    def test_terminate_and_kill_give_minus_the_signal(self):
        for stop, sig in (("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)):
            p = self.ctx.Process(target=_sleep, args=(30,))
            p.start()
            getattr(p, stop)()
            p.join(10)
            self.assertEqual(p.exitcode, -sig)

    def test_interrupt_raises_keyboardinterrupt_in_the_child(self):
        ready = mpx.Event()
        p = self.ctx.Process(target=_catch_interrupt, args=(ready,))
        p.start()
        self.assertTrue(ready.wait(20))
        p.interrupt()
        p.join(10)
        self.assertEqual(p.exitcode, 5)

    def test_signals_to_an_ended_child_are_ignored(self):
        p = self.run_child(_return)
        p.terminate()
        p.kill()
        self.assertEqual(p.exitcode, 0)

    # join, is_alive, close, start

    def test_join_times_out_while_the_child_runs(self):
        event = mpx.Event()
        p = self.ctx.Process(target=_wait_event, args=(event,))
        p.start()
        with self.assertTakes(0, 0.25):
            p.join(0)
        with self.assertTakes(0.2, 0.5):
            p.join(0.2)
        self.assertTrue(p.is_alive())
        self.assertIsNone(p.exitcode)
        event.set()
        p.join(10)
        self.assertEqual(p.exitcode, 0)
        self.assertFalse(p.is_alive())

    def test_the_sentinel_is_readable_once_the_child_ended(self):
        event = mpx.Event()
        p = self.ctx.Process(target=_wait_event, args=(event,))
        with self.assertRaisesRegex(ValueError, "process not started"):
            p.sentinel
        p.start()
        self.assertEqual(multiprocessing.connection.wait([p.sentinel], 0.05), [])
        event.set()
        self.assertEqual(multiprocessing.connection.wait([p.sentinel], 10), [p.sentinel])
        p.join(5)
        self.assertEqual(p.exitcode, 0)

    def test_close_while_running_is_a_valueerror_and_after_join_frees_the_object(self):
        event = mpx.Event()
        p = self.ctx.Process(target=_wait_event, args=(event,))
        p.start()
        with self.assertRaisesRegex(ValueError, "Cannot close a process while it is still running"):
            p.close()
        event.set()
        p.join(10)
        p.close()
        p.close()   # twice is fine
        for use in (lambda: p.pid, lambda: p.exitcode, p.is_alive, p.join, lambda: p.sentinel):
            with self.assertRaisesRegex(ValueError, "process object is closed"):
                use()
        self.assertIn("closed", repr(p))

    def test_start_twice_is_an_assertionerror(self):
        p = self.ctx.Process(target=_return)
        p.start()
        with self.assertRaisesRegex(AssertionError, "cannot start a process twice"):
            p.start()
        p.join(10)

    def test_join_before_start_is_an_assertionerror(self):
        p = self.ctx.Process(target=_return)
        with self.assertRaisesRegex(AssertionError, "can only join a started process"):
            p.join()
        self.assertFalse(p.is_alive())
        self.assertIsNone(p.exitcode)
        self.assertIsNone(p.pid)
        self.assertIn("initial", repr(p))

    def test_pid_ident_and_repr(self):
        event = mpx.Event()
        p = self.ctx.Process(target=_wait_event, args=(event,))
        p.start()
        self.assertIsInstance(p.pid, int)
        self.assertEqual(p.ident, p.pid)
        self.assertIn(f"pid={p.pid}", repr(p))
        self.assertIn("started", repr(p))
        event.set()
        p.join(10)
        self.assertIn("stopped exitcode=0", repr(p))

    # names, daemon, identity

    def test_names_count_the_children_of_this_process(self):
        a = self.ctx.Process(target=_return)
        b = self.ctx.Process(target=_return)
        prefix = type(a).__name__ + "-"
        self.assertTrue(a.name.startswith(prefix), a.name)
        self.assertEqual(int(b.name[len(prefix):]), int(a.name[len(prefix):]) + 1)
        c = self.ctx.Process(target=_return, name="given")
        self.assertEqual(c.name, "given")
        with self.assertRaises(AssertionError):
            c.name = 5

    def test_a_childs_children_are_named_under_it(self):
        out = self.path()
        p = self.ctx.Process(target=_report_child_name, args=(out,), name="Process-99")
        p._identity = (99,)
        p.start()
        p.join(30)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(_read(out), ("Process-99:1", 0))

    def test_the_child_knows_itself_and_its_parent(self):
        out = self.path()
        p = self.run_child(_report_identity, out)
        self.assertEqual(p.exitcode, 0)
        got = _read(out)
        self.assertEqual(got["name"], p.name)
        self.assertEqual(got["mp_name"], p.name)
        self.assertEqual(got["pid"], p.pid)
        self.assertEqual(got["getpid"], p.pid)
        self.assertEqual(got["parent_pid"], os.getpid())
        self.assertEqual(got["parent_name"], mpx.current_process().name)
        self.assertTrue(got["parent_alive"])
        self.assertTrue(got["alive"])
        self.assertFalse(got["daemon"])
        self.assertEqual(got["authkey"], bytes(mpx.current_process().authkey))
        self.assertEqual(got["stdin"], "")   # /dev/null, as in multiprocessing

    def test_a_given_authkey_is_the_childs(self):
        out = self.path()
        p = self.ctx.Process(target=_report_identity, args=(out,))
        p.authkey = b"a key for this child"
        self.assertIsInstance(p.authkey, multiprocessing.process.AuthenticationString)
        p.start()
        p.join(30)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(_read(out)["authkey"], b"a key for this child")

    def test_the_daemon_flag(self):
        out = self.path()
        p = self.ctx.Process(target=_report_identity, args=(out,), daemon=True)
        self.assertTrue(p.daemon)
        self.assertIn("daemon", repr(p))
        p.start()
        with self.assertRaisesRegex(AssertionError, "process has already started"):
            p.daemon = False
        p.join(30)
        self.assertEqual(p.exitcode, 0)
        self.assertTrue(_read(out)["daemon"])
        q = self.ctx.Process(target=_return)
        self.assertFalse(q.daemon)
        q.daemon = True
        self.assertTrue(q.daemon)

    def test_a_daemon_may_not_have_children(self):
        out = self.path()
        p = self.run_child(_try_to_start_a_child, out, daemon=True)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(_read(out), ("AssertionError", "daemonic processes are not allowed to have children"))

    def test_a_subclass_runs_its_run_method(self):
        out = self.path()
        p = _Worker(self.method, out, "ab")
        p.start()
        p.join(30)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual(_read(out), ("_Worker", "abab"))

    def test_large_arguments(self):
        data = list(range(200_000))   # ~1 MB pickled: more than a pipe or socket buffer
        v = mpx.Value("q", 0, lock=False)
        self.assertEqual(self.run_child(_sum_into, v, data).exitcode, 0)
        self.assertEqual(v.value, sum(data))

    # children and shared objects

    def test_active_children_lists_the_running_ones_and_reaps_the_others(self):
        event = mpx.Event()
        waiting = [self.ctx.Process(target=_wait_event, args=(event,)) for _ in range(3)]
        quick = self.ctx.Process(target=_return)
        for p in waiting + [quick]:
            p.start()
        self.assertTrue(all(p in mpx.active_children() for p in waiting))
        deadline = time.monotonic() + 20
        while quick in mpx.active_children() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertNotIn(quick, mpx.active_children())
        self.assertEqual(quick.exitcode, 0)
        event.set()
        for p in waiting:
            p.join(10)
        self.assertEqual([p for p in mpx.active_children() if p in waiting], [])

    def test_a_lock_and_a_value_count_tickets_across_children(self):
        n, per = 3, 300
        counter = mpx.Value("i", 0, lock=False)
        lock = mpx.Lock()
        taken = mpx.Array("i", (n + 1) * per, lock=False)
        ps = [self.ctx.Process(target=_take_tickets, args=(counter, lock, taken, per)) for _ in range(n)]
        for p in ps:
            p.start()
        _take_tickets(counter, lock, taken, per)
        for p in ps:
            p.join(30)
            self.assertEqual(p.exitcode, 0)
        self.assertEqual(counter.value, (n + 1) * per)
        self.assertEqual(sorted(set(taken[:])), [1])

    def test_shared_memory_events_values_and_arrays_reach_the_child(self):
        event, done = mpx.Event(), mpx.Event()
        shm = SharedMemory(create=True, size=64)
        self.addCleanup(shm.unlink)
        self.addCleanup(shm.close)
        value = mpx.Value("i", 10)
        array = mpx.Array("d", 3)
        p = self.ctx.Process(target=_use_objects, args=(event, shm.name, value, array, done))
        p.start()
        event.set()
        self.assertTrue(done.wait(20))
        p.join(10)
        self.assertEqual(p.exitcode, 0)
        self.assertEqual((shm.buf[0], value.value, array[1]), (42, 11, 2.5))

    def test_a_multiprocessing_connection_reaches_the_child(self):
        # Its descriptor travels as multiprocessing sends it (reduction.DupFd).
        r, w = multiprocessing.Pipe(duplex=False)
        p = self.ctx.Process(target=_send_name, args=(w,))
        p.start()
        w.close()
        self.assertTrue(r.poll(20))
        self.assertEqual(r.recv(), p.name)
        p.join(10)
        self.assertEqual(p.exitcode, 0)
        r.close()

    def test_daemon_children_die_when_their_parent_is_killed(self):
        pid = mpx.Value("q", 0)
        helper = self.ctx.Process(target=_start_daemon_and_wait, args=(self.method, pid))
        helper.start()
        deadline = time.monotonic() + 20
        while pid.value == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertNotEqual(pid.value, 0, "the daemon did not start")
        self.assertFalse(is_gone(pid.value))
        helper.kill()
        helper.join(10)
        self.assertEqual(helper.exitcode, -signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not is_gone(pid.value) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(is_gone(pid.value), "the daemon outlived its parent")

    def test_a_daemon_started_from_a_thread_outlives_the_thread(self):
        box = []

        def starter():
            p = self.ctx.Process(target=_sleep, args=(30,), daemon=True)
            p.start()
            box.append(p)
            time.sleep(0.2)   # still running when the child takes its identity

        t = threading.Thread(target=starter)
        t.start()
        t.join()
        time.sleep(0.3)
        p = box[0]
        self.assertTrue(p.is_alive(), f"exit code {p.exitcode}")
        p.terminate()
        p.join(10)
        self.assertEqual(p.exitcode, -signal.SIGTERM)

    def test_short_children_leak_no_descriptors_and_leave_no_zombies(self):
        self.run_child(_return)     # warm up (a forkserver starts once)
        fds, kids = fd_count(), child_pids()
        for _ in range(self.leak_rounds):
            p = self.ctx.Process(target=_return)
            p.start()
            p.join(30)
            self.assertEqual(p.exitcode, 0)
            p.close()
        for _ in range(self.more_rounds):
            p = self.ctx.Process(target=_return)
            p.start()
            p.join(30)
            del p
        self.assertEqual(fd_count(), fds)
        self.assertEqual(child_pids(), kids)

    leak_rounds = 100
    more_rounds = 50


class ForkTests(_ProcessTests, TestCase):
    method = "fork"


class SpawnTests(_ProcessTests, TestCase):
    method = "spawn"
    leak_rounds = 10
    more_rounds = 10


class ForkServerTests(_ProcessTests, TestCase):
    method = "forkserver"

    @classmethod
    def setUpClass(cls):
        # As multiprocessing's: the server imports this module once, not each child.
        super().setUpClass()
        mpx.forkserver.stop()
        mpx.set_forkserver_preload([__name__])

    def test_a_preloaded_module_is_imported_by_the_server(self):
        out = self.path()
        p = self.run_child(_report_importer, out)
        self.assertEqual(p.exitcode, 0)
        importer, pid, server = _read(out)
        self.assertEqual(importer, server)
        self.assertNotEqual(importer, pid)


# ---- the module-level functions and contexts -------------------------------------------------

class Contexts(TestCase):

    def test_the_default_method_is_multiprocessings(self):
        ctx = mpx.context.DefaultContext()
        expected = multiprocessing.get_start_method(allow_none=True) or \
            multiprocessing.context._default_context._default_context._name
        self.assertIsNone(ctx.get_start_method(allow_none=True))
        self.assertEqual(ctx.get_start_method(), expected)
        self.assertEqual(ctx.get_context()._name, expected)
        with self.assertRaisesRegex(RuntimeError, "context has already been set"):
            ctx.set_start_method("spawn")
        ctx.set_start_method("spawn", force=True)
        self.assertEqual(ctx.get_start_method(), "spawn")
        ctx.set_start_method(None, force=True)
        self.assertIsNone(ctx.get_start_method(allow_none=True))

    def test_all_start_methods(self):
        methods = mpx.get_all_start_methods()
        self.assertEqual(sorted(methods), ["fork", "forkserver", "spawn"])
        self.assertEqual(methods[0], mpx.context._multiprocessing_method())

    def test_concrete_contexts(self):
        for m in ("fork", "spawn", "forkserver"):
            ctx = mpx.get_context(m)
            self.assertEqual(ctx.get_start_method(), m)
            self.assertEqual(ctx.Process._start_method, m)
            with self.assertRaisesRegex(ValueError, "cannot set start method of concrete context"):
                ctx.set_start_method("fork")
            self.assertIsInstance(ctx.Lock(), mpx.Lock)
            self.assertEqual(ctx.Value("i", 3).value, 3)
        with self.assertRaisesRegex(ValueError, "cannot find context for 'nope'"):
            mpx.get_context("nope")

    def test_cpu_count_is_the_librarys(self):
        n = _lib.c_int()
        _lib.check(_lib.C.mpx_cpu_count(_lib.byref(n)))
        self.assertEqual(mpx.cpu_count(), n.value)
        self.assertGreaterEqual(mpx.cpu_count(), 1)
        self.assertLessEqual(mpx.cpu_count(), os.cpu_count())

    def test_the_main_process(self):
        me = mpx.current_process()
        self.assertEqual(me.name, "MainProcess")
        self.assertEqual(me.pid, os.getpid())
        self.assertTrue(me.is_alive())
        self.assertFalse(me.daemon)
        self.assertIsNone(mpx.parent_process())
        self.assertIsInstance(mpx.active_children(), list)

    def test_the_authkey_is_the_librarys_and_does_not_pickle(self):
        key = mpx.current_process().authkey
        self.assertIsInstance(key, multiprocessing.process.AuthenticationString)
        buf = ctypes.create_string_buffer(256)
        n = _lib.c_size_t(256)
        _lib.check(_lib.C.mpx_authkey(buf, _lib.byref(n)))
        self.assertEqual(bytes(key), buf.raw[:n.value])
        self.assertEqual(bytes(key), bytes(multiprocessing.current_process().authkey))
        with self.assertRaisesRegex(TypeError, "disallowed for security reasons"):
            pickle.dumps(key)

    def test_setting_the_authkey_sets_the_librarys(self):
        me = mpx.current_process()
        old = me.authkey
        self.addCleanup(setattr, me, "authkey", old)
        me.authkey = b"another key"
        buf = ctypes.create_string_buffer(256)
        n = _lib.c_size_t(256)
        _lib.check(_lib.C.mpx_authkey(buf, _lib.byref(n)))
        self.assertEqual(buf.raw[:n.value], b"another key")
        self.assertEqual(mpx.Process(target=_return).authkey, b"another key")

    def test_the_options_struct_matches_the_library(self):
        opts = _lib.ProcessOptions()
        self.assertEqual(_lib.C.mpx_process_options_init(_lib.byref(opts), ctypes.sizeof(opts)), 0)
        self.assertEqual(opts.size, ctypes.sizeof(opts))
        self.assertEqual(ctypes.sizeof(opts), 176)   # LP64


# ---- a main script: the __main__ guard and the main module ----------------------------------

MAIN_SCRIPT = textwrap.dedent("""
    import os, sys
    import mpx
    print("imported", os.getpid(), flush=True)

    def greet(who):
        print("hello", who, mpx.current_process().name, flush=True)

    if __name__ == "__main__":
        for method in ("spawn", "forkserver", "forkserver"):
            p = mpx.get_context(method).Process(target=greet, args=(method,))
            p.start()
            p.join(30)
            print("exit", method, p.exitcode, flush=True)
""")


class MainModule(TestCase):

    def test_functions_of_the_main_script_run_and_its_guard_is_honoured(self):
        tmp = tempfile.mkdtemp(prefix="mpx-test-main-")
        self.addCleanup(shutil.rmtree, tmp, True)
        script = os.path.join(tmp, "main_script.py")
        with open(script, "w") as f:
            f.write(MAIN_SCRIPT)
        out = subprocess.run([sys.executable, script], env=subprocess_env(), cwd=tmp,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertIn("hello spawn SpawnProcess-1", lines)
        self.assertIn("hello forkserver ForkServerProcess-2", lines)
        self.assertIn("hello forkserver ForkServerProcess-3", lines)
        self.assertEqual([l for l in lines if l.startswith("exit")],
                         ["exit spawn 0", "exit forkserver 0", "exit forkserver 0"])
        # The script ran in the parent, once in the spawned child (as __mp_main__) and once in
        # the forkserver - not once per forkserver child.
        self.assertEqual(len([l for l in lines if l.startswith("imported")]), 3, out.stdout)

    def test_starting_a_process_at_import_time_of_a_spawned_child_is_refused(self):
        tmp = tempfile.mkdtemp(prefix="mpx-test-main-")
        self.addCleanup(shutil.rmtree, tmp, True)
        script = os.path.join(tmp, "unguarded.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent("""
                import mpx
                def f(): pass
                p = mpx.get_context("spawn").Process(target=f)
                p.start()
                p.join(30)
                print("exit", p.exitcode, flush=True)
            """))
        out = subprocess.run([sys.executable, script], env=subprocess_env(), cwd=tmp,
                             capture_output=True, text=True, timeout=60)
        self.assertIn("exit 1", out.stdout)
        self.assertIn("bootstrapping phase", out.stderr)




def tearDownModule():
    # The forkserver is a child of this process: stop it, so that later tests that count
    # this process's children see none.
    from mpx import forkserver
    forkserver.stop()


if __name__ == "__main__":
    unittest.main()
