"""What bench_queue.py and bench_pipe.py share: the knobs, prebuilt stamped items, the two-process
harness (a stream from this process to a forked consumer, and a ping-pong), failure reporting
and the table, whose rows may be rates (higher is better) or times (lower is better)."""

import os
import signal
import struct
import sys
import time
import traceback

QUICK = "--quick" in sys.argv[1:]
SCALE = float(os.environ.get("MPX_BENCH_SCALE", "1") or 1)
REPS = int(os.environ.get("MPX_BENCH_REPS", "1" if QUICK else "5") or 5)
K = 64  # distinct prebuilt items, used in turn
MIX = 0x9E3779B97F4A7C15

failed = False


def n_of(default, quick):
    return max(1, int((quick if QUICK else default) * SCALE))


def fail(msg):
    global failed
    failed = True
    print(f"FAILED: {msg}", file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


_items = {}


def items(size):
    """K items of `size` (>= 16) bytes: item k has k in its first 8 bytes and k ^ MIX in its
    last 8, so that a lost, repeated, reordered or torn item is caught. Prebuilt (and kept),
    so that no time goes into making them."""
    if size not in _items:
        pattern = bytes(range(256)) * (size // 256 + 2)
        _items[size] = [struct.pack("<Q", k) + pattern[k:k + size - 16] + struct.pack("<Q", k ^ MIX)
                        for k in range(K)]
    return _items[size]


# ---- two processes ---------------------------------------------------------------------------

class ChildDied(Exception):
    pass


_child = [0]  # the child whose early death ends the current measurement, 0: none


def _on_sigchld(_signum, _frame):
    # A child that dies early would leave this process blocked for ever (a full queue, a pipe
    # that nobody answers): stop the measurement instead.
    pid = _child[0]
    if not pid:
        return
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return
    if info is not None and not (info.si_code == os.CLD_EXITED and info.si_status == 0):
        _child[0] = 0
        raise ChildDied(f"the other process ended early (status {info.si_status})")


def setup():
    signal.signal(signal.SIGCHLD, _on_sigchld)


def _read_exact(fd, n):
    b = b""
    while len(b) < n:
        chunk = os.read(fd, n - len(b))
        if not chunk:
            raise EOFError("the other process closed its pipe")
        b += chunk
    return b


def _child_run(body):
    code = 2
    try:
        code = body()
    except BaseException:  # noqa: BLE001 - report anything, exit non-zero
        traceback.print_exc()
    finally:
        os._exit(code)


def _finish(what, pid, reported, wrong, total):
    _child[0] = 0
    _, st = os.waitpid(pid, 0)
    if reported:
        return
    if wrong > 0:
        fail(f"{what}: {wrong} of {total} items received wrong")
    elif not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
        fail(f"{what}: the other process failed (status {st:#x})")


def stream(what, put, get, size, warm, n):
    """Send warm + n items of `size` bytes from here with put(item); a forked child takes each
    with get() -> bytes-like and checks it. The clock starts when the child has taken the
    warm-up items (fork, feeder threads, first-touch faults are outside) and stops when it has
    taken the last. Returns seconds for the last n items (NaN after a failure)."""
    its = items(size)
    heads = [i[:8] for i in its]
    tails = [i[-8:] for i in its]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)

        def consume():
            wrong = 0
            for i in range(warm + n):
                if i == warm:
                    os.write(w, b"a")
                item = get()
                k = i % K
                if len(item) != size or item[:8] != heads[k] or item[-8:] != tails[k]:
                    wrong += 1
            os.write(w, struct.pack("<dq", time.monotonic(), wrong))
            return 0 if wrong == 0 else 1

        _child_run(consume)
    os.close(w)
    t0 = t1 = float("nan")
    wrong, reported = 0, False
    try:
        _child[0] = pid  # while sending: a dead consumer raises ChildDied
        for i in range(warm):
            put(its[i % K])
        _read_exact(r, 1)
        t0 = time.monotonic()
        for i in range(warm, warm + n):
            put(its[i % K])
        _child[0] = 0
        t1, wrong = struct.unpack("<dq", _read_exact(r, 16))
    except (ChildDied, EOFError, OSError) as e:
        fail(f"{what}: {e}")
        reported = True
    os.close(r)
    _finish(what, pid, reported, wrong, warm + n)
    return t1 - t0 if not reported else float("nan")


def pingpong(what, send, recv, echo_send, echo_recv, size, warm, n):
    """warm + n round trips: this process send(item) then recv() -> the item back; a forked
    child echo_recv() then echo_send(it). Returns microseconds per round trip over the last n."""
    its = items(size)
    pid = os.fork()
    if pid == 0:
        def answer():
            for _ in range(warm + n):
                echo_send(echo_recv())
            return 0

        _child_run(answer)
    t0 = t1 = float("nan")
    wrong, reported = 0, False
    try:
        _child[0] = pid
        for i in range(warm + n):
            if i == warm:
                t0 = time.perf_counter()
            it = its[i % K]
            send(it)
            if recv() != it:
                wrong += 1
        t1 = time.perf_counter()
    except (ChildDied, EOFError, OSError) as e:
        fail(f"{what}: {e}")
        reported = True
    _finish(what, pid, reported, wrong, warm + n)
    return (t1 - t0) / n * 1e6 if not reported else float("nan")


# ---- the table ---------------------------------------------------------------------------------

def fmt(v):
    if v != v:  # NaN
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


class Row:
    """One operation: mpx's figure and its baselines [(name, value, target or None)]. A rate's
    target is a floor on mpx / baseline (">= 5.00x"), a time's a ceiling ("<= 1.20x")."""

    def __init__(self, op, unit, mpx, bases, higher_is_better=True, note="(information)"):
        self.op, self.unit, self.mpx, self.bases = op, unit, mpx, bases
        self.higher, self.note = higher_is_better, note


def _verdict(row, ratio, target):
    if target is None:
        return row.note
    op = ">=" if row.higher else "<="
    if ratio != ratio:
        return f"{op} {target:.2f}x: not measured"
    if (ratio >= target) if row.higher else (ratio <= target):
        return f"{op} {target:.2f}x: met"
    miss = (1 - ratio / target) if row.higher else (ratio / target - 1)
    return f"{op} {target:.2f}x: MISSED by {miss * 100:.0f}%"


def print_rows(title, rows):
    print(f"\n{title:<48} {'unit':<5} {'mpx':>9}  {'baseline':<40} {'baseline':>9} {'mpx/base':>9}  target")
    print("-" * 142)
    for row in rows:
        for i, (bname, bv, target) in enumerate(row.bases):
            ratio = row.mpx / bv if bv else float("nan")
            r = "-" if ratio != ratio else fmt(ratio) + "x"
            print(f"{row.op if i == 0 else '':<48} {row.unit if i == 0 else '':<5} "
                  f"{fmt(row.mpx) if i == 0 else '':>9}  {bname:<40} {fmt(bv):>9} {r:>9}  "
                  f"{_verdict(row, ratio, target)}")
    sys.stdout.flush()


def import_mpx(*names):
    """(mpx module or None, version text, note): None with a note when mpx cannot be imported
    or lacks one of `names` (its implementation has not landed yet)."""
    try:
        import mpx
    except Exception as e:  # noqa: BLE001 - any failure: run the baselines alone
        return None, "-", f"note: cannot import mpx ({type(e).__name__}: {e}); the mpx columns are skipped"
    version = f"{mpx.__version__} ({mpx.library_path})"
    for name in names:
        try:
            getattr(mpx, name)
        except Exception as e:  # noqa: BLE001
            return None, version, (f"note: mpx.{name} is not available ({type(e).__name__}: {e}); "
                                   "the mpx columns are skipped")
    return mpx, version, ""


def report_end(script, t_start):
    verdict = "WRONG RESULTS (see FAILED above)" if failed else "all results verified"
    print(f"\n{script}: {time.perf_counter() - t_start:.1f} s; {verdict}")
    return 1 if failed else 0
