#!/usr/bin/env python3
"""bench_pool.py: mpx.Pool beside multiprocessing.Pool from Python, both with 2 fork workers,
measured in the same run.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_pool.py [--quick]

Per-item overhead: ``pool.map(f, range(N))`` with ``def f(x): return x`` (N = 100k), at
chunksize=1 and at the automatic chunksize (Python's rule: N / (4 x workers), rounded up);
microseconds per item from the call to the list of results (the pool is started and warmed up
before the clock starts). The results are checked.
CPU-bound: ``pool.map(spin, [n] * N)`` (N = 1000) where ``spin(n)`` is a pure Python loop of
about 10 ms, at chunksize=1; speedup = (the time one process takes for one task, measured
here serially just before and just after the map, x N) / the map's time. A third column runs the same tasks in two
bare ``os.fork()`` children without any IPC: the ceiling the host allows at that moment (on a
shared 2-CPU VM it drops well below 2 whenever something else runs).

Environment: MPX_BENCH_SCALE (multiplies every N), MPX_BENCH_REPS (default 5; the CPU-bound
map runs once), MPX_BENCH_POOL_ITEMS, MPX_BENCH_POOL_CPU_TASKS, MPX_BENCH_POOL_CPU_MS.
Times: lower is better, mpx/base < 1: mpx faster. Targets (issue 5): chunksize=1 at most
0.20x multiprocessing's time (5x faster), automatic chunksize at most 1.00x, CPU-bound
speedup at least 1.9 with 2 workers. Exit status 1 only on a wrong result, never on timing.
"""

import multiprocessing
import os
import sys
import time

import ipc_common as ic


def _env_n(name, default, quick):
    v = os.environ.get(name)
    return int(v) if v else ic.n_of(default, quick)


N_ITEMS = _env_n("MPX_BENCH_POOL_ITEMS", 100_000, 5_000)
N_CPU = _env_n("MPX_BENCH_POOL_CPU_TASKS", 1_000, 40)
CPU_MS = float(os.environ.get("MPX_BENCH_POOL_CPU_MS", "10"))
WORKERS = 2


def f(x):
    return x


def spin(n):
    x = 0
    for i in range(n):
        x += i
    return x


def calibrate(ms):
    """The n for which spin(n) takes about ms milliseconds here."""
    n = 10_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt > 0.02:
            return max(1, int(n * ms / 1000 / dt))
        n *= 2


def serial_seconds(n, count):
    """Seconds per spin(n), the median of `count` runs in this process."""
    xs = []
    for _ in range(count):
        t0 = time.perf_counter()
        spin(n)
        xs.append(time.perf_counter() - t0)
    return ic.median(xs)


def raw_fork_seconds(n, count, workers):
    """Seconds for `count` spin(n) split over `workers` os.fork() children with no IPC at
    all: the ceiling of any pool's speedup on this machine at this moment."""
    t0 = time.perf_counter()
    pids = []
    for k in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for _ in range(count // workers + (k < count % workers)):
                    spin(n)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return time.perf_counter() - t0


def timed_map(pool, fn, items, chunksize, expect):
    t0 = time.perf_counter()
    out = pool.map(fn, items, chunksize)
    dt = time.perf_counter() - t0
    if out != expect:
        ic.fail(f"{type(pool).__module__}.Pool.map({fn.__name__}, chunksize={chunksize}): wrong results")
        return float("nan")
    return dt


def main():
    t_start = time.perf_counter()
    mpx, version, note = ic.import_mpx("Pool")
    ctx = multiprocessing.get_context("fork")
    print(f"bench_pool.py: mpx {version} vs multiprocessing, same run. Python {sys.version.split()[0]}, "
          f"CPUs {os.cpu_count()}; {WORKERS} fork workers each; median of {ic.REPS}; "
          f"{N_ITEMS} trivial items, {N_CPU} CPU-bound tasks of ~{CPU_MS:g} ms", flush=True)
    if note:
        print(note, flush=True)

    pools = {"mp": ctx.Pool(WORKERS)}
    if mpx:
        pools["mpx"] = mpx.get_context("fork").Pool(WORKERS)
    items = list(range(N_ITEMS))
    samples = {}
    try:
        for pool in pools.values():         # warm up: workers started, code paths taken
            timed_map(pool, f, items[:2000], 1, items[:2000])
            timed_map(pool, f, items, None, items)
        for _ in range(ic.REPS):
            for lib, pool in pools.items():
                for cs in (1, None):
                    dt = timed_map(pool, f, items, cs, items)
                    samples.setdefault((lib, cs), []).append(dt / N_ITEMS * 1e6)

        n = calibrate(CPU_MS)
        args = [n] * N_CPU
        expect = [spin(n)] * N_CPU
        speedup = {}
        ones = []
        for lib in ["raw"] + list(pools):
            if lib != "raw":
                timed_map(pools[lib], spin, args[:2 * WORKERS], 1, expect[:2 * WORKERS])
            # Serial time just before and just after: the host's speed drifts.
            before = serial_seconds(n, 9)
            if lib == "raw":
                dt = raw_fork_seconds(n, N_CPU, WORKERS)
            else:
                dt = timed_map(pools[lib], spin, args, 1, expect)
            one = (before + serial_seconds(n, 9)) / 2
            ones.append(one)
            speedup[lib] = one * N_CPU / dt
        one = ic.median(ones)
    finally:
        for pool in pools.values():
            pool.terminate()
            pool.join()

    nan = float("nan")
    rows = []
    for cs, label, target in ((1, "map, chunksize=1", 0.2), (None, "map, automatic chunksize", 1.0)):
        mv = ic.median(samples.get(("mpx", cs), [nan]))
        bv = ic.median(samples[("mp", cs)])
        rows.append(ic.Row(f"Pool({WORKERS}).{label}", "us", mv, [("multiprocessing.Pool", bv, target)],
                           higher_is_better=False))
    ic.print_rows(f"Pool.map of {N_ITEMS} trivial items (f(x) = x), per item", rows)
    ms = one * 1e3
    rows = [ic.Row(f"Pool({WORKERS}).map, {N_CPU} tasks of {ms:.1f} ms", "x", speedup.get("mpx", nan),
                   [("multiprocessing.Pool", speedup["mp"], None),
                    (f"{WORKERS} os.fork() children, no IPC", speedup["raw"], None)])]
    ic.print_rows("CPU-bound map: speedup over one process (serial time / map time)", rows)
    sp = speedup.get("mpx", nan)
    verdict = "not measured" if sp != sp else ("met" if sp >= 1.9 else f"MISSED by {(1 - sp / 1.9) * 100:.0f}%")
    print(f"mpx speedup {ic.fmt(sp)}x with {WORKERS} workers: target >= 1.90x: {verdict}")
    print("\nPer repetition (us per item):")
    for (lib, cs), xs in samples.items():
        name = ("mpx.Pool" if lib == "mpx" else "multiprocessing.Pool") + \
            (", chunksize=1" if cs == 1 else ", automatic")
        print(f"  {name:<40}" + "".join(f" {ic.fmt(x):>9}" for x in xs))
    return ic.report_end("bench_pool.py", t_start)


if __name__ == "__main__":
    sys.exit(main())
