#!/usr/bin/env python3
"""bench_pipe.py: mpx.Pipe beside multiprocessing.Pipe from Python, between two processes,
measured in the same run.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 tests/bench/bench_pipe.py [--quick]

Round trip: this process ``send_bytes`` a 64 B message and ``recv_bytes`` the answer; an
``os.fork()`` child ``recv_bytes`` it and sends it back (``Pipe()``, duplex: a socketpair).
Each answer is compared with what was sent. A third column does the same with bare
``os.write``/``os.read`` on a socketpair with the same framing (4-byte big-endian length, one
write, two reads): the floor of a round trip from Python.
Throughput: this process sends 1 MiB messages one way, the child receives each with
``recv_bytes`` (or ``recv_bytes_into`` a reusable bytearray) and checks it, over
``Pipe(duplex=False)`` (a pipe) and ``Pipe()`` (a socketpair). The clock starts when the child
has the warm-up messages and stops when it has the last (ipc_common.stream).

Environment: MPX_BENCH_SCALE (multiplies every N, default 1), MPX_BENCH_REPS (default 5).
Round trips are times (lower is better, mpx/base < 1: mpx faster), throughputs rates (higher is
better, mpx/base > 1: mpx faster). Issue 4 sets its 5x target on the queue; the pipe rows
have none. Exit status 1 only on a wrong result, never on timing. If this mpx has no Pipe
yet, its columns are skipped with a note.
"""

import multiprocessing
import os
import socket
import struct
import sys
import time

import ipc_common as ic

N_RT, WARM_RT = ic.n_of(2_000, 100), ic.n_of(100, 10)
N_MB, WARM_MB = ic.n_of(200, 10), ic.n_of(10, 3)
SMALL, LARGE = 64, 1 << 20


def raw_pair():
    """A socketpair with multiprocessing's framing over bare os.write/os.read: (send, recv) for
    each end."""
    a, b = socket.socketpair()
    fds = (a.detach(), b.detach())

    def ends(fd):
        def send(data):
            os.write(fd, struct.pack("!i", len(data)) + data)

        def recv():
            hdr = os.read(fd, 4)
            while len(hdr) < 4:
                more = os.read(fd, 4 - len(hdr))
                if not more:
                    raise EOFError
                hdr += more
            n, = struct.unpack("!i", hdr)
            data = os.read(fd, n)
            while len(data) < n:
                more = os.read(fd, n - len(data))
                if not more:
                    raise EOFError
                data += more
            return data
        return send, recv
    return ends(fds[0]), ends(fds[1]), fds


def receiver_into(conn, size):
    buf = bytearray(size)
    view = memoryview(buf)
    into = conn.recv_bytes_into

    def get():
        return view[:into(buf)]
    return get


def main():
    t_start = time.perf_counter()
    mpx, version, note = ic.import_mpx("Pipe")
    ic.setup()
    print(f"bench_pipe.py: mpx {version} vs multiprocessing, same run. Python {sys.version.split()[0]}, "
          f"CPUs {os.cpu_count()}; median of {ic.REPS}; {N_RT} round trips of {SMALL} B, {N_MB} messages of "
          f"1 MiB per measurement", flush=True)
    if note:
        print(note, flush=True)
    libs = {"mp": multiprocessing}
    if mpx:
        libs["mpx"] = mpx
    duplex = {lib: m.Pipe() for lib, m in libs.items()}
    oneway = {lib: m.Pipe(duplex=False) for lib, m in libs.items()}  # (reader, writer)
    (raw_send, raw_recv), (raw_echo_send, raw_echo_recv), raw_fds = raw_pair()

    samples = {}

    def add(key, v):
        samples.setdefault(key, []).append(v)

    gb = LARGE * N_MB / 1e9
    for _ in range(ic.REPS):
        for lib in libs:
            a, b = duplex[lib]
            add((lib, "rt"), ic.pingpong(f"{lib} Pipe round trip", a.send_bytes, a.recv_bytes, b.send_bytes,
                                         b.recv_bytes, SMALL, WARM_RT, N_RT))
        add(("raw", "rt"), ic.pingpong("os.write/os.read socketpair round trip", raw_send, raw_recv, raw_echo_send,
                                       raw_echo_recv, SMALL, WARM_RT, N_RT))
        for lib in libs:
            r, w = oneway[lib]
            add((lib, "pipe"), gb / ic.stream(f"{lib} Pipe(duplex=False) 1 MiB", w.send_bytes, r.recv_bytes, LARGE,
                                              WARM_MB, N_MB))
            a, b = duplex[lib]
            add((lib, "sock"), gb / ic.stream(f"{lib} Pipe() 1 MiB", a.send_bytes, b.recv_bytes, LARGE,
                                              WARM_MB, N_MB))
            add((lib, "into"), gb / ic.stream(f"{lib} Pipe() 1 MiB, recv_bytes_into", a.send_bytes,
                                              receiver_into(b, LARGE), LARGE, WARM_MB, N_MB))
    for conns in (*duplex.values(), *oneway.values()):
        for c in conns:
            c.close()
    for fd in raw_fds:
        os.close(fd)

    nan = float("nan")

    def med(lib, what):
        return ic.median(samples.get((lib, what), [nan]))

    mp = "multiprocessing.Pipe"
    rows = [
        ic.Row("Pipe() round trip, 64 B", "us", med("mpx", "rt"),
               [(mp, med("mp", "rt"), None),
                ("os.write/os.read, socketpair (floor)", med("raw", "rt"), None)],
               higher_is_better=False, note="(no target)"),
        ic.Row("1 MiB messages one way, Pipe(duplex=False)", "GB/s", med("mpx", "pipe"),
               [(mp + "(duplex=False)", med("mp", "pipe"), None)], note="(no target)"),
        ic.Row("1 MiB messages one way, Pipe()", "GB/s", med("mpx", "sock"),
               [(mp + "()", med("mp", "sock"), None)], note="(no target)"),
        ic.Row("  the same, recv_bytes_into a bytearray", "GB/s", med("mpx", "into"),
               [(mp + "(), recv_bytes_into", med("mp", "into"), None),
                ("multiprocessing.Pipe(), recv_bytes", med("mp", "sock"), None)], note="(information)"),
    ]
    ic.print_rows("Pipe, 2 processes", rows)
    print("\nRound trips in microseconds (lower is better); throughput in GB/s = 10^9 bytes/s (higher is better).\n"
          "Per repetition:")
    names = {"rt": "round trip (us)", "pipe": "Pipe(duplex=False) 1 MiB (GB/s)", "sock": "Pipe() 1 MiB (GB/s)",
             "into": "Pipe() 1 MiB, recv_bytes_into (GB/s)"}
    for (lib, what), xs in samples.items():
        name = {"mpx": "mpx", "mp": "multiprocessing", "raw": "os.write/os.read"}[lib] + " " + names[what]
        print(f"  {name:<52}" + "".join(f" {ic.fmt(x):>9}" for x in xs))
    return ic.report_end("bench_pipe.py", t_start)


if __name__ == "__main__":
    sys.exit(main())
