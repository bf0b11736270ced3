#!/usr/bin/env python3
"""bench_manager.py: mpx.Manager() beside multiprocessing.Manager() from Python, both servers
started with fork, measured in the same run.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_manager.py [--quick]

Rows (microseconds per operation, lower is better; mpx/base < 1: mpx faster):
* dict set+get: ``d['k'] = i; d['k']`` on a managed dict: two round trips to the server.
* queue put+get: ``q.put(i); q.get()`` on a managed Queue from one process: two round trips.
* queue stream: a forked child puts N items on a managed Queue, this process gets them:
  time per item from the first get to the last (both clients talk to the server at once).
Each figure is the median of MPX_BENCH_REPS repetitions (default 5); within a repetition
mpx's manager and Python's run one after the other. Target (issue 6): at least 2x faster
than Python's, mpx/base <= 0.50, for the dict and queue round trips. The results are
checked; exit status 1 only on a wrong result, never on timing.

Environment: MPX_BENCH_SCALE (multiplies every N), MPX_BENCH_REPS, MPX_BENCH_MANAGER_OPS
(default 20000: the round trips and the streamed items per repetition), MPX_MANAGER_NO_SHM=1
(mpx's socket path instead of the shared-memory one).
"""

import multiprocessing
import os
import sys
import time

import ipc_common as ic

N = int(os.environ.get("MPX_BENCH_MANAGER_OPS") or 0) or ic.n_of(20_000, 500)
N_STREAM = N


def dict_round_trips(d, n):
    t0 = time.perf_counter()
    for i in range(n):
        d['k'] = i
        if d['k'] != i:
            ic.fail(f"{type(d).__module__} dict: read back a wrong value")
            return float("nan")
    return (time.perf_counter() - t0) / n * 1e6


def queue_round_trips(q, n):
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
        if q.get() != i:
            ic.fail(f"{type(q).__module__} queue: got a wrong item")
            return float("nan")
    return (time.perf_counter() - t0) / n * 1e6


def _producer(q, n):
    for i in range(n):
        q.put(i)


def queue_stream(ctx, q, n):
    p = ctx.Process(target=_producer, args=(q, n))
    p.start()
    first = q.get(timeout=30)
    t0 = time.perf_counter()
    ok = first == 0
    for i in range(1, n):
        if q.get(timeout=30) != i:
            ok = False
    dt = time.perf_counter() - t0
    p.join(30)
    if not ok or p.exitcode != 0:
        ic.fail(f"queue stream: items lost or reordered, or the producer failed ({p.exitcode})")
        return float("nan")
    return dt / (n - 1) * 1e6


def main():
    t_start = time.perf_counter()
    mpx, version, note = ic.import_mpx("Manager")
    print(f"bench_manager.py: mpx {version} vs multiprocessing, same run. Python {sys.version.split()[0]}, "
          f"CPUs {os.cpu_count()}; servers started with fork; median of {ic.REPS}; "
          f"{N} round trips, {N_STREAM} streamed items"
          + ("; MPX_MANAGER_NO_SHM=1 (socket path)" if os.environ.get("MPX_MANAGER_NO_SHM", "0") != "0" else ""),
          flush=True)
    if note:
        print(note, flush=True)
    libs = {"mp": multiprocessing.get_context("fork")}
    if mpx:
        libs["mpx"] = mpx.get_context("fork")
    managers = {lib: ctx.Manager() for lib, ctx in libs.items()}
    samples = {}
    try:
        objs = {lib: (m.dict(), m.Queue()) for lib, m in managers.items()}
        for lib, (d, q) in objs.items():           # warm up: connections, code paths
            dict_round_trips(d, min(N, 2000))
            queue_round_trips(q, min(N, 2000))
        for _ in range(ic.REPS):
            for lib, (d, q) in objs.items():
                samples.setdefault((lib, "dict"), []).append(dict_round_trips(d, N))
                samples.setdefault((lib, "queue"), []).append(queue_round_trips(q, N))
                samples.setdefault((lib, "stream"), []).append(queue_stream(libs[lib], q, N_STREAM))
    finally:
        for m in managers.values():
            m.shutdown()

    nan = float("nan")
    rows = []
    for key, label, target in (("dict", "dict set+get (2 round trips)", 0.5),
                               ("queue", "Queue put+get (2 round trips)", 0.5),
                               ("stream", "Queue, child puts, parent gets, per item", None)):
        mv = ic.median(samples.get(("mpx", key), [nan]))
        bv = ic.median(samples[("mp", key)])
        rows.append(ic.Row(f"Manager() {label}", "us", mv,
                           [("multiprocessing.Manager()", bv, target)], higher_is_better=False))
    ic.print_rows("Manager proxies from Python, per operation", rows)
    print("\nPer repetition (us per operation):")
    for (lib, key), xs in samples.items():
        name = ("mpx.Manager()" if lib == "mpx" else "multiprocessing.Manager()") + " " + key
        print(f"  {name:<40}" + "".join(f" {ic.fmt(x):>9}" for x in xs))
    return ic.report_end("bench_manager.py", t_start)


if __name__ == "__main__":
    sys.exit(main())
