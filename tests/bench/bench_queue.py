#!/usr/bin/env python3
"""bench_queue.py: mpx.Queue beside multiprocessing.Queue from Python, one producer process and
one consumer process, measured in the same run.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_queue.py [--quick]

One measurement: this process puts warm + N ``bytes`` items of one size (64 B or 64 KiB) with
``q.put(item)``; an ``os.fork()`` child takes them with ``q.get()`` and checks each one (its
length and sequence stamps at both ends). The clock starts when the child has taken the
warm-up items (fork, multiprocessing's feeder thread, first-touch faults are outside) and
stops when it has taken the last (ipc_common.stream). Within a repetition the two libraries
take turns; the median repetition is printed.

Environment: MPX_BENCH_SCALE (multiplies every N, default 1), MPX_BENCH_REPS (default 5).
Figures are rates, higher is better; ratio = mpx / multiprocessing (> 1: mpx faster). Target
(issue 4): mpx at least 5x multiprocessing. Exit status 1 only on a wrong result, never on
timing. If this mpx has no Queue yet, its columns are skipped with a note.
"""

import multiprocessing
import os
import sys
import time

import ipc_common as ic

TARGET = 5.0  # mpx / multiprocessing, items per second
# (item size, timed items, warm-up items)
SIZES = [(64, ic.n_of(50_000, 2_000), ic.n_of(2_000, 200)),
         (64 * 1024, ic.n_of(5_000, 100), ic.n_of(200, 20))]


def main():
    t_start = time.perf_counter()
    mpx, version, note = ic.import_mpx("Queue")
    ic.setup()
    ctx = multiprocessing.get_context("fork")
    print(f"bench_queue.py: mpx {version} vs multiprocessing, same run. Python {sys.version.split()[0]}, "
          f"CPUs {os.cpu_count()}; median of {ic.REPS}; items per measurement: "
          + ", ".join(f"{n} x {size} B" for size, n, _ in SIZES), flush=True)
    if note:
        print(note, flush=True)

    samples = {}
    for size, n, warm in SIZES:
        queues = {"mp": ctx.Queue()}
        if mpx:
            queues["mpx"] = mpx.Queue()
        for _ in range(ic.REPS):
            for lib, q in queues.items():
                secs = ic.stream(f"{lib} Queue, {size} B items", q.put, q.get, size, warm, n)
                samples.setdefault((lib, size), []).append(n / secs)
        for lib, q in queues.items():
            if not q.empty():
                ic.fail(f"{lib} Queue, {size} B items: not empty after the benchmark")
            q.close()
            q.join_thread()

    nan = float("nan")
    rows = []
    for size, _, _ in SIZES:
        label = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
        mv, bv = ic.median(samples.get(("mpx", size), [nan])), ic.median(samples[("mp", size)])
        base = "multiprocessing.Queue"
        rows.append(ic.Row(f"{label} items, put + get", "k/s", mv / 1e3, [(base, bv / 1e3, TARGET)]))
        unit, k = ("MB/s", 1e6) if size < 1024 else ("GB/s", 1e9)
        rows.append(ic.Row(f"{label} items, put + get", unit, mv * size / k, [(base, bv * size / k, TARGET)]))
    ic.print_rows("Queue, 1 producer -> 1 consumer process", rows)
    print("\nRates from the consumer's side (k = 10^3 items, MB = 10^6 and GB = 10^9 bytes per second); higher\n"
          "is better. Per repetition (k items/s):")
    for (lib, size), xs in samples.items():
        name = "mpx.Queue" if lib == "mpx" else "multiprocessing.Queue"
        print(f"  {name + f', {size} B':<34}" + "".join(f" {ic.fmt(x / 1e3):>9}" for x in xs))
    return ic.report_end("bench_queue.py", t_start)


if __name__ == "__main__":
    sys.exit(main())
