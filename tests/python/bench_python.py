"""Side-by-side costs of the Python binding (not a test; run it directly).

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/python/bench_python.py [--quick]

Prints, measured in this run: a bare ctypes call (the FFI floor), the two raw FFI calls a
lock operation needs, mpx's Lock/RLock/Semaphore, a locked Value increment, and Python's
multiprocessing doing the same, with ratios. The machine is noisy (a VM): every figure is
the best of several repeats, and the measurements are interleaved.
"""

import multiprocessing
import os
import sys
import time
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
import _support  # noqa: E402,F401  (finds the library)
import mpx  # noqa: E402
from mpx import _lib  # noqa: E402

mpc = multiprocessing.get_context("fork")
QUICK = "--quick" in sys.argv
N = 100_000 if QUICK else 400_000
REPEAT = 5 if QUICK else 9


class Bench:
    """Interleaved timings: every statement is timed once per round, best round wins."""

    def __init__(self):
        self.items = []

    def add(self, key, stmt, g):
        self.items.append((key, stmt, g))

    def run(self):
        best = {}
        for _ in range(REPEAT):
            for key, stmt, g in self.items:
                t = timeit.timeit(stmt, globals=g, number=N) / N * 1e9
                best[key] = min(best.get(key, t), t)
        return best


def bench_contended(lock_factory, n=20000):
    """Two processes alternately taking a lock n times each: ns per acquire+release."""
    lock = lock_factory()
    go = mpx.Event()
    pid = os.fork()
    if pid == 0:
        go.wait(10)
        for _ in range(n):
            lock.acquire()
            lock.release()
        os._exit(0)
    go.set()
    t0 = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    os.waitpid(pid, 0)
    return (time.perf_counter() - t0) / (2 * n) * 1e9


def main():
    keep = mpx.Lock()
    h = keep._h
    acq, rel = _lib.raw("mpx_lock_acquire"), _lib.raw("mpx_lock_release")
    b = Bench()
    b.add("bare", "f()", dict(f=_lib.raw("mpx_version")))
    b.add("raw_pair", "a(h, s); r(h)", dict(a=acq, r=rel, h=h, s=_lib.SLICE))
    lock, rlock = mpx.Lock(), mpx.RLock()
    mlock, mrlock = mpc.Lock(), mpc.RLock()
    for key, ours, theirs, stmt in (("lock", lock, mlock, "a(); r()"), ("lock_with", lock, mlock, "with l: pass"),
                                    ("rlock", rlock, mrlock, "a(); r()"), ("rlock_with", rlock, mrlock, "with l: pass")):
        b.add(key, stmt, dict(a=ours.acquire, r=ours.release, l=ours))
        b.add("mp_" + key, stmt, dict(a=theirs.acquire, r=theirs.release, l=theirs))
    nested, mnested = mpx.RLock(), mpc.RLock()
    nested.acquire()
    mnested.acquire()
    b.add("rlock_nested", "a(); r()", dict(a=nested.acquire, r=nested.release))
    b.add("mp_rlock_nested", "a(); r()", dict(a=mnested.acquire, r=mnested.release))
    sem, msem = mpx.Semaphore(1), mpc.Semaphore(1)
    b.add("sem", "a(); r()", dict(a=sem.acquire, r=sem.release))
    b.add("mp_sem", "a(); r()", dict(a=msem.acquire, r=msem.release))
    code = "with v.get_lock(): v.value += 1"
    v, mv = mpx.Value("i", 0), mpc.Value("i", 0)
    b.add("inc", code, dict(v=v))
    b.add("mp_inc", code, dict(v=mv))
    b.add("read", "v.value", dict(v=v))
    b.add("mp_read", "v.value", dict(v=mv))
    raw, mraw = mpx.RawValue("i", 0), mpc.RawValue("i", 0)
    b.add("raw_inc", "r.value += 1", dict(r=raw))
    b.add("mp_raw_inc", "r.value += 1", dict(r=mraw))
    ev, mev = mpx.Event(), mpc.Event()
    b.add("is_set", "e.is_set()", dict(e=ev))
    b.add("mp_is_set", "e.is_set()", dict(e=mev))
    t = b.run()
    if not QUICK:
        t["contended"] = bench_contended(mpx.Lock)
        t["mp_contended"] = bench_contended(mpc.Lock)

    print(f"mpx {mpx.__version__} ({mpx.library_path}), Python {sys.version.split()[0]}, "
          f"best of {REPEAT} x {N}")
    print(f"{'':46}{'mpx':>9}{'multiproc':>11}{'mpx/mp':>8}{'mpx/FFI':>9}")
    print(f"{'bare ctypes call (mpx_version, no arguments)':46}{t['bare']:9.0f}")
    print(f"{'the 2 FFI calls: raw acquire + release':46}{t['raw_pair']:9.0f}")
    for key, label in (("lock", "Lock acquire()+release()"), ("lock_with", "Lock `with`"),
                       ("rlock", "RLock acquire()+release()"), ("rlock_with", "RLock `with`"),
                       ("rlock_nested", "RLock nested acquire+release (owner)"),
                       ("sem", "Semaphore acquire()+release()"),
                       ("inc", "with v.get_lock(): v.value += 1"), ("read", "Value .value read (locks)"),
                       ("raw_inc", "RawValue .value += 1"), ("is_set", "Event.is_set()"),
                       ("contended", "Lock acq+rel, 2 processes contending")):
        if key not in t:
            continue
        mp_t = t.get("mp_" + key)
        ffi = f"{t[key] / t['raw_pair']:9.2f}" if key in ("lock", "lock_with", "rlock", "rlock_with", "sem") else ""
        print(f"{label:46}{t[key]:9.0f}{mp_t:11.0f}{t[key] / mp_t:8.2f}{ffi}")
    print("ns per operation; mpx/FFI compares with the two raw FFI calls the operation needs")


if __name__ == "__main__":
    main()
