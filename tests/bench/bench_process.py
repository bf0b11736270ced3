#!/usr/bin/env python3
"""bench_process.py: start + join of an empty child from Python, with mpx's binding beside
multiprocessing, for each start method, all measured in the same run.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_process.py [--quick]

One iteration: ``p = ctx.Process(target=empty); p.start(); p.join()`` and a check that
``p.exitcode == 0``, with ctx = ``mpx.get_context(method)`` or
``multiprocessing.get_context(method)``. Each forkserver is started (by a warm-up child)
before timing. Within a repetition mpx and multiprocessing take turns child by child, so
that load from elsewhere on the machine hits both alike; the median repetition is printed.
A row for ``os.fork() + os._exit(0) + os.waitpid()`` gives the floor of a fork from this
interpreter.

Environment: MPX_BENCH_SCALE (multiplies every N, default 1), MPX_BENCH_REPS (default 5).
Every figure is milliseconds per child, lower is better; ratio = mpx / baseline (< 1: mpx
faster). Exit status 1 only on a wrong result (a child that did not exit 0), never on timing.

mpx is imported inside main(), not at module level: a spawned child of either library
imports this file again as __mp_main__, and multiprocessing's children should not pay for
loading mpx. Nor should either library's children pay for the benchmark's own tools
(subprocess, imported where the python -c rows use it): the spawn row compares what each
library's child imports.
"""

import multiprocessing
import os
import sys
import time

QUICK = "--quick" in sys.argv[1:]
SCALE = float(os.environ.get("MPX_BENCH_SCALE", "1") or 1)
REPS = int(os.environ.get("MPX_BENCH_REPS", "1" if QUICK else "5") or 5)


def n_of(default, quick):
    return max(1, int((quick if QUICK else default) * SCALE))


# Children per method per repetition (each library starts this many).
N = {"fork": n_of(40, 2), "forkserver": n_of(20, 2), "spawn": n_of(10, 2)}
# Targets from issue 3: mpx / multiprocessing must be at most this.
TARGET = {"fork": 1 / 1.5, "forkserver": 1 / 3, "spawn": 1.0}
TARGET_TEXT = {"fork": "1.5x faster", "forkserver": "3x faster", "spawn": "no slower"}

failed = False


def empty():
    pass


def fail(msg):
    global failed
    failed = True
    print(f"FAILED: {msg}", file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def one_child(ctx, what):
    """Start and join one empty child; seconds taken."""
    t0 = time.perf_counter()
    p = ctx.Process(target=empty)
    p.start()
    p.join()
    t = time.perf_counter() - t0
    if p.exitcode != 0:
        fail(f"{what}: exit code {p.exitcode}")
    p.close()
    return t


def raw_fork():
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    t = time.perf_counter() - t0
    if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
        fail("os.fork: the child did not exit 0")
    return t


# Diagnosis for spawn: a spawned child is a fresh interpreter that imports its library.
INTERPRETER = {
    "python -c pass": "pass",
    "python -c 'import multiprocessing.spawn'": "import multiprocessing.spawn",
    "python -c 'import mpx.spawn'": "import mpx.spawn",
}


def run_interpreter(code):
    t0 = time.perf_counter()
    import subprocess
    r = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        fail(f"{sys.executable} -c {code!r}: exit code {r.returncode}")
    return t


def main():
    try:
        import mpx
    except Exception as e:  # noqa: BLE001 - report any import failure and stop
        sys.exit(f"bench_process.py: cannot import mpx ({e}); run with PYTHONPATH=bindings/python "
                 "MPX_LIBRARY=build/default/src/libmpx.so.0")
    t_start = time.perf_counter()
    print(f"bench_process.py: mpx {mpx.__version__} ({mpx.library_path}) vs multiprocessing, same run. "
          f"Python {sys.version.split()[0]}, CPUs {os.cpu_count()}; median of {REPS}; children per "
          f"repetition: fork {N['fork']}, forkserver {N['forkserver']}, spawn {N['spawn']} (each library)",
          flush=True)
    methods = ("fork", "forkserver", "spawn")
    ctxs = {(lib, m): lib_mod.get_context(m)
            for lib, lib_mod in (("mpx", mpx), ("mp", multiprocessing)) for m in methods}

    # Warm-up: starts both forkservers and touches every path once.
    for (lib, m), ctx in ctxs.items():
        one_child(ctx, f"{lib} {m} warm-up")
    raw_fork()
    for code in INTERPRETER.values():
        run_interpreter(code)

    samples = {}
    for _ in range(REPS):
        for m in methods:
            tot = {"mpx": 0.0, "mp": 0.0, "raw": 0.0}
            for _ in range(N[m]):
                tot["mpx"] += one_child(ctxs["mpx", m], f"mpx {m}")
                tot["mp"] += one_child(ctxs["mp", m], f"multiprocessing {m}")
                if m == "fork":
                    tot["raw"] += raw_fork()
                if m == "spawn":
                    for label, code in INTERPRETER.items():
                        tot[label] = tot.get(label, 0.0) + run_interpreter(code)
            for lib in tot:
                if tot[lib]:
                    samples.setdefault((lib, m), []).append(tot[lib] / N[m] * 1e3)

    med = {k: median(v) for k, v in samples.items()}
    print(f"\n{'start + join of an empty child':<34} {'mpx ms':>9}  {'baseline':<42} {'base ms':>9} "
          f"{'mpx/base':>9}  target")
    print("-" * 130)
    for m in methods:
        v, b = med["mpx", m], med["mp", m]
        ratio = v / b
        t = TARGET[m]
        verdict = f"<= {t:.2f}x ({TARGET_TEXT[m]}): " + (
            "met" if ratio <= t else f"MISSED by {(ratio / t - 1) * 100:.0f}%")
        print(f"{'mpx ' + m:<34} {v:9.2f}  {'multiprocessing ' + m:<42} {b:9.2f} {ratio:8.2f}x  "
              f"{verdict}; speed-up {b / v:.2f}x")
        if m == "fork":
            r = med["raw", m]
            print(f"{'':<34} {'':>9}  {'os.fork+os._exit+waitpid (floor)':<42} {r:9.2f} {v / r:8.2f}x  (information)")
        if m == "spawn":
            for label in INTERPRETER:
                r = med[label, m]
                print(f"{'':<34} {'':>9}  {label:<42} {r:9.2f} {v / r:8.2f}x  (diagnosis)")
    print("\nDiagnosis rows: a spawned child of either library is a fresh interpreter that imports its library\n"
          "(and this file, as __mp_main__); the python -c rows time just that, with subprocess.run.")
    print("\nPer-repetition figures (ms):")
    for (lib, m), xs in samples.items():
        label = {"mpx": "mpx " + m, "mp": "multiprocessing " + m, "raw": "os.fork"}.get(lib, lib)
        print(f"  {label:<44}" + "".join(f" {x:8.2f}" for x in xs))
    verdict = "WRONG RESULTS (see FAILED above)" if failed else "all results verified"
    print(f"\nbench_process.py: {time.perf_counter() - t_start:.1f} s; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
