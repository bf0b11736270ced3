#!/usr/bin/env python3
"""bench_sync.py: mpx's Python binding side by side with multiprocessing and a bare ctypes call,
all measured in the same run (timeit-style loops, median of the repetitions).

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_sync.py [--quick]

Environment: MPX_BENCH_SCALE (multiplies every N, default 1), MPX_BENCH_REPS (default 5),
MPX_BENCH_PIN=none (do not pin the two contending processes to CPUs 0 and 1).

Every figure is time per operation, lower is better; ratio = mpx / baseline (< 1: mpx faster).
Exit status 1 only on a wrong result (a counter mismatch, a failed child), never on timing.
"""

import ctypes
import mmap
import multiprocessing
import os
import struct
import sys
import time
import timeit

try:
    import mpx
except Exception as e:  # noqa: BLE001 - report any import failure and stop
    sys.exit(f"bench_sync.py: cannot import mpx ({e}); run with PYTHONPATH=bindings/python "
             "MPX_LIBRARY=build/default/src/libmpx.so.0")

QUICK = "--quick" in sys.argv[1:]
SCALE = float(os.environ.get("MPX_BENCH_SCALE", "1") or 1)
REPS = int(os.environ.get("MPX_BENCH_REPS", "1" if QUICK else "5") or 5)
PIN = os.environ.get("MPX_BENCH_PIN", "contended") not in ("none", "0")
NCPU = os.cpu_count() or 1


def n_of(default, quick):
    return max(1, int((quick if QUICK else default) * SCALE))


N_CALL = n_of(300_000, 2_000)      # single-process loops
N_CONTENDED = n_of(100_000, 2_000)  # per process, two contending
N_PINGPONG = n_of(2_000, 50)       # round trips

failed = False


def fail(msg):
    global failed
    failed = True
    print(f"FAILED: {msg}", file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def per_op_us(stmt, n, glb):
    """One timeit run of stmt n times: microseconds per execution."""
    return timeit.Timer(stmt, globals=glb).timeit(number=n) / n * 1e6


class Samples:
    """Columns of samples; each repetition measures every column once (interleaved)."""

    def __init__(self):
        self.cols = {}

    def add(self, key, v):
        self.cols.setdefault(key, []).append(v)

    def __getitem__(self, key):
        return median(self.cols[key])


rows = []  # (operation, unit, mpx value, [(baseline name, value)], target ratio or None, note)


def row(op, unit, value, bases, target=None, note=""):
    rows.append((op, unit, value, bases, target, note))


def print_rows():
    print(f"\n{'operation':<48} {'unit':<4} {'mpx':>9}  {'baseline':<40} {'baseline':>9} {'mpx/base':>9}  target")
    print("-" * 142)
    for op, unit, v, bases, target, note in rows:
        for i, (bname, bv) in enumerate(bases):
            ratio = v / bv
            verdict = ""
            if i == 0 and target is not None:
                if ratio <= target:
                    verdict = f"<= {target:.1f}x: met"
                else:
                    verdict = f"<= {target:.1f}x: MISSED by {(ratio / target - 1) * 100:.0f}%"
            elif i == 0:
                verdict = note
            if i == 0:
                print(f"{op:<48} {unit:<4} {v:9.3f}  {bname:<40} {bv:9.3f} {ratio:8.2f}x  {verdict}")
            else:
                print(f"{'':<48} {'':<4} {'':>9}  {bname:<40} {bv:9.3f} {ratio:8.2f}x  {verdict}")
    sys.stdout.flush()


# ---- single process ------------------------------------------------------------------------

def bench_single():
    # A bare FFI call through its own CDLL object (the binding's prototypes are not touched).
    lib = ctypes.CDLL(mpx.library_path)
    version = lib.mpx_version            # no arguments, int result
    free = lib.mpx_free                  # one pointer argument, a no-op for NULL
    free.restype = None
    null = ctypes.c_void_p(None)
    libc = ctypes.CDLL(None)
    getppid = libc.getppid

    g = {
        "version": version, "free": free, "null": null, "getppid": getppid,
        "ml": mpx.Lock(), "pl": multiprocessing.Lock(),
        "mr": mpx.RLock(), "pr": multiprocessing.RLock(),
        "ms": mpx.Semaphore(1), "ps": multiprocessing.Semaphore(1),
        "mv": mpx.Value("i", 0), "pv": multiprocessing.Value("i", 0),
    }
    stmts = {
        "ffi0": "version()",
        "ffi0x2": "version(); version()",
        "ffi1": "free(null)",
        "syscall": "getppid()",
        "mpx_lock": "ml.acquire(); ml.release()",
        "mp_lock": "pl.acquire(); pl.release()",
        "mpx_lock_with": "with ml: pass",
        "mp_lock_with": "with pl: pass",
        "mpx_rlock": "mr.acquire(); mr.release()",
        "mp_rlock": "pr.acquire(); pr.release()",
        "mpx_sem": "ms.acquire(); ms.release()",
        "mp_sem": "ps.acquire(); ps.release()",
        "mpx_value": "with mv.get_lock(): mv.value += 1",
        "mp_value": "with pv.get_lock(): pv.value += 1",
        "mpx_value_lock": "with mvl: pass",
        "mp_value_lock": "with pvl: pass",
    }
    g["mvl"], g["pvl"] = g["mv"].get_lock(), g["pv"].get_lock()
    # Diagnosis: the two C calls a Lock needs, made directly with the binding's own prebuilt
    # arguments, i.e. a Lock without its Python wrapper (skipped if the internals change).
    try:
        g["la"], g["lr"] = mpx.synchronize._lock_try, mpx.synchronize._lock_release
        g["lh"] = g["ml"]._h
        if g["la"](g["lh"]) != 0 or g["lr"](g["lh"]) != 0:
            raise RuntimeError("raw lock calls failed")
        stmts["mpx_lock_raw"] = "la(lh); lr(lh)"
    except Exception as e:  # noqa: BLE001
        print(f"note: no raw-call breakdown ({e})")
    s = Samples()
    n = N_CALL
    for rep in range(REPS + 1):  # repetition 0 warms up
        for key, stmt in stmts.items():
            v = per_op_us(stmt, n, g)
            if rep:
                s.add(key, v)
    total = (REPS + 1) * n
    if g["mv"].value != total or g["pv"].value != total:
        fail(f"single-process Value: mpx {g['mv'].value}, multiprocessing {g['pv'].value}, expected {total}")
    if not g["ml"].acquire(False) or not g["ms"].acquire(False):
        fail("mpx.Lock or mpx.Semaphore not free after the loops")

    row("bare ctypes call: mpx_version()", "us", s["ffi0"],
        [("(the unit the Lock target is counted in)", s["ffi0"])], note="(reference)")
    row("bare ctypes call: mpx_free(c_void_p(None))", "us", s["ffi1"],
        [("bare ctypes call, no argument", s["ffi0"])], note="(info)")
    row("ctypes getppid() (FFI + a system call)", "us", s["syscall"],
        [("bare ctypes call, no argument", s["ffi0"])], note="(info)")
    row("Lock acquire()+release()", "us", s["mpx_lock"],
        [("2 bare ctypes calls (measured together)", s["ffi0x2"]),
         ("multiprocessing.Lock", s["mp_lock"])], target=1.0)
    if "mpx_lock_raw" in s.cols:
        row("  its 2 C calls made directly (no wrapper)", "us", s["mpx_lock_raw"],
            [("2 bare ctypes calls (measured together)", s["ffi0x2"])], note="(diagnosis)")
    row("Lock `with lock: pass`", "us", s["mpx_lock_with"],
        [("2 bare ctypes calls (measured together)", s["ffi0x2"]),
         ("multiprocessing.Lock", s["mp_lock_with"])], target=1.0)
    row("RLock acquire()+release()", "us", s["mpx_rlock"],
        [("2 bare ctypes calls (measured together)", s["ffi0x2"]),
         ("multiprocessing.RLock", s["mp_rlock"])], note="(no target; Lock's for reference)")
    row("Semaphore acquire()+release()", "us", s["mpx_sem"],
        [("2 bare ctypes calls (measured together)", s["ffi0x2"]),
         ("multiprocessing.Semaphore", s["mp_sem"])], note="(no target)")
    row("Value('i'): with v.get_lock(): v.value += 1", "us", s["mpx_value"],
        [("multiprocessing.Value", s["mp_value"]),
         ("2 bare ctypes calls (measured together)", s["ffi0x2"])], target=1.5)
    row("  of which `with v.get_lock(): pass`", "us", s["mpx_value_lock"],
        [("multiprocessing.Value's", s["mp_value_lock"])], note="(diagnosis)")


# ---- two processes -------------------------------------------------------------------------

def pin(i):
    if PIN and NCPU >= 2 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {i % NCPU})


def run_pair(body):
    """Fork two children that start together (released through a pipe), run body(i) and
    record their start and end times in shared memory. Returns elapsed seconds from the
    earlier start to the later end, or None if a child failed."""
    times = mmap.mmap(-1, 32)
    r, w = os.pipe()
    pids = []
    for i in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(w)
                pin(i)
                os.read(r, 1)
                t0 = time.perf_counter()
                ok = body(i)
                t1 = time.perf_counter()
                struct.pack_into("dd", times, 16 * i, t0, t1)
                code = 0 if ok else 1
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(r)
    time.sleep(0.05)  # let both children reach the read
    os.write(w, b"xx")
    os.close(w)
    ok = True
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
            ok = False
    t = [struct.unpack_from("dd", times, 16 * i) for i in range(2)]
    times.close()
    if not ok:
        return None
    return max(t[0][1], t[1][1]) - min(t[0][0], t[1][0])


def contended_value(what, v, n):
    v.value = 0

    def body(_):
        lock = v.get_lock()
        for _ in range(n):
            with lock:
                v.value += 1
        return True

    elapsed = run_pair(body)
    if elapsed is None:
        fail(f"{what}: a child failed")
        return float("nan")
    if v.value != 2 * n:
        fail(f"{what}: counter {v.value}, expected {2 * n}")
    return elapsed / (2 * n) * 1e6


def pingpong(what, make_event, n):
    """Parent: set e0, wait e1, clear e1; child: wait e0, clear e0, set e1. Round trip in us,
    timed by the parent after 50 warm-up round trips."""
    e0, e1 = make_event(), make_event()
    warm = 50
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(warm + n):
                if not e0.wait(10):
                    break
                e0.clear()
                e1.set()
            else:
                code = 0
        finally:
            os._exit(code)
    ok = True
    t0 = 0.0
    for k in range(warm + n):
        if k == warm:
            t0 = time.perf_counter()
        e0.set()
        if not e1.wait(10):
            ok = False
            break
        e1.clear()
    t1 = time.perf_counter()
    _, st = os.waitpid(pid, 0)
    if not ok or not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
        fail(f"{what}: ping-pong failed")
        return float("nan")
    return (t1 - t0) / n * 1e6


def bench_pair():
    mv, pv = mpx.Value("i", 0), multiprocessing.Value("i", 0)
    s = Samples()
    for _ in range(REPS):
        s.add("mpx_value", contended_value("mpx.Value, 2 processes", mv, N_CONTENDED))
        s.add("mp_value", contended_value("multiprocessing.Value, 2 processes", pv, N_CONTENDED))
        s.add("mpx_event", pingpong("mpx.Event", mpx.Event, N_PINGPONG))
        s.add("mp_event", pingpong("multiprocessing.Event", multiprocessing.Event, N_PINGPONG))
    row("Value('i') += 1 under its lock, 2 processes", "us", s["mpx_value"],
        [("multiprocessing.Value", s["mp_value"])], target=1.5)
    row("Event set/wait/clear ping-pong, round trip", "us", s["mpx_event"],
        [("multiprocessing.Event", s["mp_event"])], note="(no target)")


def main():
    t0 = time.perf_counter()
    print(f"bench_sync.py: mpx {mpx.__version__} ({mpx.library_path}) vs multiprocessing and bare "
          f"ctypes, same run. Python {sys.version.split()[0]}, CPUs {NCPU}"
          f"{' (contending processes pinned to CPUs 0 and 1)' if PIN and NCPU >= 2 else ''}; "
          f"median of {REPS}; N single-process {N_CALL}, contended {N_CONTENDED} per process, "
          f"ping-pong {N_PINGPONG} round trips", flush=True)
    bench_single()
    bench_pair()
    print_rows()
    verdict = "WRONG RESULTS (see FAILED above)" if failed else "all results verified"
    print(f"\nbench_sync.py: {time.perf_counter() - t0:.1f} s; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
