"""Queue and Pipe throughput beside multiprocessing (not a test; run it directly).

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/python/bench_queue.py [--quick]

One forked producer puts (or sends) N items of a payload size, the parent gets (receives)
them; items per second over the whole transfer, best of several rounds, mpx and
multiprocessing interleaved, with the ratio. The machine is noisy: read ratios, not times.
"""

import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402,F401  (finds the library)
import mpx  # noqa: E402

mpc = multiprocessing.get_context("fork")
QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 5


def _items(size):
    return 20_000 if size >= 65536 else 200_000


def queue_rate(make, size, n):
    q = make()
    payload = b"x" * size
    pid = os.fork()
    if pid == 0:
        put = q.put
        for _ in range(n):
            put(payload)
        if hasattr(q, "join_thread"):   # multiprocessing's feeder thread must finish first
            q.close()
            q.join_thread()
        os._exit(0)
    get = q.get
    t0 = time.perf_counter()
    for _ in range(n):
        get()
    dt = time.perf_counter() - t0
    os.waitpid(pid, 0)
    return n / dt


def pipe_rate(make, size, n):
    r, w = make()
    payload = b"x" * size
    pid = os.fork()
    if pid == 0:
        r.close()
        send = w.send_bytes
        for _ in range(n):
            send(payload)
        os._exit(0)
    w.close()
    recv = r.recv_bytes
    t0 = time.perf_counter()
    for _ in range(n):
        recv()
    dt = time.perf_counter() - t0
    os.waitpid(pid, 0)
    r.close()
    return n / dt


def main():
    cases = [
        ("Queue put/get", queue_rate, mpx.Queue, mpc.Queue),
        ("SimpleQueue put/get", queue_rate, mpx.SimpleQueue, mpc.SimpleQueue),
        ("Pipe send_bytes/recv_bytes", pipe_rate, lambda: mpx.Pipe(False), lambda: mpc.Pipe(False)),
    ]
    print(f"mpx {mpx.__version__}, Python {sys.version.split()[0]}, best of {ROUNDS}; items/s")
    print(f"{'':34}{'size':>8}{'mpx':>12}{'multiproc':>12}{'mpx/mp':>8}")
    for label, fn, ours, theirs in cases:
        for size in (64, 65536):
            n = _items(size) // (4 if QUICK else 1)
            best_ours = best_theirs = 0.0
            for _ in range(ROUNDS):
                best_ours = max(best_ours, fn(ours, size, n))
                best_theirs = max(best_theirs, fn(theirs, size, n // 4))
            print(f"{label:34}{size:8}{best_ours:12,.0f}{best_theirs:12,.0f}{best_ours / best_theirs:8.1f}")


if __name__ == "__main__":
    main()
