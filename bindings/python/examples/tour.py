"""tour.py - the README's tour for Python: mpx objects shared by forked Process children,
each scene run twice, with mpx and with Python's own multiprocessing, timed side by side.

    MPX_LIBRARY=build/default/src/libmpx.so.0 PYTHONPATH=bindings/python \\
        python3 bindings/python/examples/tour.py

Scenes: (1) ten processes buy five tickets through a Lock, the count in a shared Value;
(2) two processes negate a shared Array('d'), one half each; (3) processes wait for an
Event and meet at a Barrier whose action runs once, then an Event ping-pong; (4) what a
Lock and a locked Value increment cost; (5) start+join of a Process with each start method
(fork, forkserver, spawn); (6) producers and consumers over a Queue, and a Pipe echo;
(7) Pool.map of squares, at chunksize 1 and automatic, and (mpx only) a worker killed
mid-task: its task fails with WorkerDiedError and the map goes on; (8) the seeds' Manager
program (children fill a managed dict and reverse a managed list), and manager round trips.
The code of a scene is the same for both: `m` is either mpx's
or multiprocessing's fork context. Times are of this run on this
machine; "mpx takes 0.50x" means mpx needed half of multiprocessing's time. Every result
is checked: the exit status is 1 if one is wrong.

Children of scenes 1-4 are made by the side's own Process with the fork start method and
inherit the objects. multiprocessing.Process works with mpx objects as well: with fork by
inheritance, with spawn or forkserver by pickling them as tokens.
"""

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback

import mpx

MP = multiprocessing.get_context("fork")
MPX = mpx.get_context("fork")
CUSTOMERS, TICKETS = 10, 5
BOUGHT, REFUSED = 10, 11
failures = 0


def expect(ok, what):
    global failures
    if not ok:
        failures += 1
        print(f"   FAIL: {what}", flush=True)


def fmt(seconds):
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.{2 if unit != 'us' else 1}f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def versus(t_mpx, t_mp):
    return f"mpx takes {t_mpx / t_mp:.2f}x the time"


def fork(body, *args):
    """Start a Process of the side being run (scene's `m`) that runs body(*args) and exits
    with its result (99 if it raised)."""
    def run():
        code = 99
        try:
            code = body(*args)
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        os._exit(code)
    sys.stdout.flush()
    p = side.Process(target=run)
    p.start()
    return p


def join(p):
    """The child's exit code, or minus the signal that killed it."""
    p.join()
    return p.exitcode


side = MPX


def both(scene):
    """Run scene(m) with mpx, then with multiprocessing; return both results."""
    global side
    results = []
    for side in (MPX, MP):
        results.append(scene(side))
    return tuple(results)


# ---- 1. the ticket counter ------------------------------------------------------------------

def ticket_counter(m):
    lock = m.Lock()
    tickets = m.Value("i", TICKETS, lock=False)    # guarded by `lock`
    sold_to = m.Array("i", TICKETS, lock=False)     # ticket -> customer
    ready, doors = m.Semaphore(0), m.Event()

    def customer(n):
        ready.release()
        if not doors.wait(10):
            return 98
        with lock:
            left = tickets.value
            if left == 0:
                return REFUSED
            sold_to[TICKETS - left] = n
            tickets.value = left - 1
            return BOUGHT

    pids = [fork(customer, n) for n in range(1, CUSTOMERS + 1)]
    expect(all(ready.acquire(timeout=10) for _ in pids), "every customer waits at the doors")
    t0 = time.perf_counter()
    doors.set()
    codes = [join(p) for p in pids]
    took = time.perf_counter() - t0
    buyers = [n for n, c in enumerate(codes, 1) if c == BOUGHT]
    expect(sorted(codes) == [BOUGHT] * TICKETS + [REFUSED] * (CUSTOMERS - TICKETS),
           f"5 customers buy and 5 are refused (exit codes {codes})")
    expect(tickets.value == 0 and sorted(sold_to) == buyers, "each ticket sold once, to a buyer")
    return f"tickets 1-5 to customers {' '.join(map(str, sold_to))}, {tickets.value} left", took


# ---- 2. two processes negate a shared array ---------------------------------------------------

ROUNDS = 2001   # odd: each element ends negated


def negate_array(m):
    arr = m.Array("d", [float(i) for i in range(1, 11)])

    def negate(lo, hi):
        for _ in range(ROUNDS):
            with arr.get_lock():
                for i in range(lo, hi):
                    arr[i] = -arr[i]
        return 0

    t0 = time.perf_counter()
    pids = [fork(negate, 0, 5), fork(negate, 5, 10)]
    codes = [join(p) for p in pids]
    took = time.perf_counter() - t0
    expect(codes == [0, 0], "both children exit cleanly")
    expect(arr[:] == [-float(i) for i in range(1, 11)], "every element negated")
    return "[" + " ".join(f"{x:g}" for x in arr[:]) + "]", took


# ---- 3. Event and Barrier -----------------------------------------------------------------------

PARTIES, PINGS = 3, 500


def event_barrier(m):
    ready, go = m.Semaphore(0), m.Event()
    actions = m.Value("i", 0)
    barrier = m.Barrier(PARTIES, action=lambda: setattr(actions, "value", actions.value + 1), timeout=10)
    taken = m.Array("i", PARTIES, lock=False)   # arrival index -> times taken

    def party():
        ready.release()
        if not go.wait(10):
            return 98
        index = barrier.wait()
        taken[index] += 1    # indexes are unique: no two processes write one cell
        return 0

    pids = [fork(party) for _ in range(PARTIES)]
    expect(all(ready.acquire(timeout=10) for _ in pids), "every party waits for the event")
    t0 = time.perf_counter()
    go.set()
    codes = [join(p) for p in pids]
    took = time.perf_counter() - t0
    expect(codes == [0] * PARTIES, "every party passes the barrier")
    expect(taken[:] == [1] * PARTIES and actions.value == 1, "each index given once, the action run once")
    return f"indexes 0,1,2 taken {','.join(map(str, taken))}x, action ran {actions.value}x", took


def ping_pong(m):
    ping, pong = m.Event(), m.Event()

    def answer():
        for _ in range(PINGS):
            if not ping.wait(10):
                return 1
            ping.clear()
            pong.set()
        return 0

    pid = fork(answer)
    ok = True
    t0 = time.perf_counter()
    for _ in range(PINGS):
        ping.set()
        ok = ok and pong.wait(10)
        pong.clear()
    took = (time.perf_counter() - t0) / PINGS
    expect(ok and join(pid) == 0, "every ping answered")
    return f"{PINGS} round trips", took


# ---- 6. producer/consumer over a Queue, and a Pipe ---------------------------------------------

PRODUCERS, CONSUMERS, ITEMS = 2, 2, 10_000   # ITEMS per producer
ROUND_TRIPS = 2000


def producer_consumer(m):
    work, results = m.Queue(1000), m.Queue()

    def produce(p):
        for i in range(ITEMS):
            work.put((p, i, b"x" * 64))
        # multiprocessing's items may still sit in this process's feeder thread: flush them
        # before the exit (mpx: no feeder thread, both calls are no-ops)
        work.close()
        work.join_thread()
        return 0

    def consume():
        last, n, total = [-1] * PRODUCERS, 0, 0
        while (item := work.get(timeout=30)) is not None:
            p, i, _ = item
            if i <= last[p]:
                return 1    # a producer's items out of order
            last[p], n, total = i, n + 1, total + i
        results.put((n, total))
        results.close()
        results.join_thread()
        return 0

    t0 = time.perf_counter()
    consumers = [fork(consume) for _ in range(CONSUMERS)]
    producers = [fork(produce, p) for p in range(PRODUCERS)]
    codes = [join(p) for p in producers]
    for _ in consumers:
        work.put(None)
    counts = [results.get(timeout=30) for _ in consumers]
    codes += [join(c) for c in consumers]
    took = time.perf_counter() - t0
    n = sum(c for c, _ in counts)
    expect(codes == [0] * len(codes), f"producers and consumers exit 0, order kept (exit codes {codes})")
    expect(n == PRODUCERS * ITEMS and sum(t for _, t in counts) == PRODUCERS * ITEMS * (ITEMS - 1) // 2,
           "every item delivered exactly once")
    return f"{n} items ({' + '.join(str(c) for c, _ in counts)}), {n / took / 1e3:.0f} k items/s", took


def pipe_round_trip(m):
    mine, theirs = m.Pipe()

    def echo():
        mine.close()
        try:
            while True:
                theirs.send_bytes(theirs.recv_bytes())
        except EOFError:
            return 0

    pid = fork(echo)
    theirs.close()
    big = os.urandom(1 << 20)
    mine.send_bytes(big)
    ok = mine.recv_bytes() == big
    t0 = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        mine.send_bytes(b"ping")
        ok = ok and mine.recv_bytes() == b"ping"
    took = (time.perf_counter() - t0) / ROUND_TRIPS
    mine.close()
    expect(ok and join(pid) == 0, "a 1 MiB message and every ping echoed intact, then end of stream")
    return f"1 MiB echoed, then {ROUND_TRIPS} round trips", took


# ---- 4. costs ---------------------------------------------------------------------------------

LOCK_LOOPS, INCREMENTS = 200_000, 20_000


def lock_cost(m):
    lock = m.Lock()
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(LOCK_LOOPS):
        acquire()
        release()
    return "", (time.perf_counter() - t0) / LOCK_LOOPS


def increments(m):
    counter = m.Value("q", 0)    # with its own RLock, as in multiprocessing

    def add():
        for _ in range(INCREMENTS):
            with counter.get_lock():
                counter.value += 1
        return 0

    t0 = time.perf_counter()
    codes = [join(p) for p in [fork(add), fork(add)]]
    took = time.perf_counter() - t0
    expect(codes == [0, 0] and counter.value == 2 * INCREMENTS, f"no increment lost ({counter.value})")
    return f"= {counter.value}", took


# ---- 5. start methods -------------------------------------------------------------------------

def nothing():
    """The target of scene 5: an empty child (module-level, so spawn can pickle it)."""


def start_join(method, reps=5):
    """Median start+join of an empty Process, for mpx's and multiprocessing's `method`."""
    def median(ctx):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            p = ctx.Process(target=nothing)
            p.start()
            p.join()
            times.append(time.perf_counter() - t0)
            expect(p.exitcode == 0, f"{method}: an empty child exits 0")
        return sorted(times)[reps // 2]
    m = median(mpx.get_context(method))
    return (f"{method}: start+join of an empty Process", m), \
           (f"{method}: start+join of an empty Process", median(multiprocessing.get_context(method)))


def bare_ctypes_call():
    f = ctypes.CDLL(mpx.library_path).mpx_version
    t0 = time.perf_counter()
    for _ in range(LOCK_LOOPS):
        f()
    return (time.perf_counter() - t0) / LOCK_LOOPS


# ---- 7. Pool.map ------------------------------------------------------------------------------

POOL_ITEMS = 20_000


def square(x):
    return x * x


def pool_map(m, chunksize):
    def run(m):
        with m.Pool(2) as pool:
            pool.map(square, range(100))   # workers started and warm
            t0 = time.perf_counter()
            out = pool.map(square, range(POOL_ITEMS), chunksize=chunksize)
            took = time.perf_counter() - t0
        expect(out == [x * x for x in range(POOL_ITEMS)], f"{POOL_ITEMS} squares, in order")
        return f"{POOL_ITEMS} squares, {took / POOL_ITEMS * 1e6:.2f} us/item", took
    return run


def sleep_then(x, victim):
    if x == 3:
        victim.value = os.getpid()   # an mpx.Value travels to the worker as a token
        time.sleep(60)               # killed before it wakes
    return x


def worker_killed():
    victim = mpx.Value('i', 0)
    with mpx.Pool(2) as pool:
        results = [pool.apply_async(sleep_then, (x, victim)) for x in range(8)]
        deadline = time.monotonic() + 10
        while victim.value == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.perf_counter()
        os.kill(victim.value, signal.SIGKILL)
        outcome = []
        for r in results:
            try:
                outcome.append(r.get(timeout=10))
            except mpx.WorkerDiedError as e:
                outcome.append(f"WorkerDiedError: {e}")
        took = time.perf_counter() - t0
        after = pool.map(square, range(5))
    died = [o for o in outcome if isinstance(o, str)]
    expect(len(died) == 1 and outcome[3] == died[0], "only the killed worker's task fails")
    expect(after == [0, 1, 4, 9, 16], "the pool goes on after the death")
    print(f"   mpx, a worker SIGKILLed in task 3: {died[0] if died else outcome}")
    print(f"   the 7 others {[o for o in outcome if not isinstance(o, str)]}, all in {fmt(took)}; "
          f"the next map {after}")
    print("   (multiprocessing's Pool would wait for task 3 forever: CPython gh-66587)")


MANAGER_CALLS = 2000


def manager_seed(m):
    """The seeds' program: d[1] = '1'; d['2'] = 2; d[0.25] = None; l.reverse() in a child."""
    t0 = time.perf_counter()
    with m.Manager() as manager:
        d = manager.dict()
        l = manager.list(range(10))
        p = m.Process(target=_seed_child, args=(d, l))
        p.start()
        p.join()
        got = (dict(d), list(l))
        t1 = time.perf_counter()
        for i in range(MANAGER_CALLS):
            d["k"] = i
            d["k"]
        calls = (time.perf_counter() - t1) / (2 * MANAGER_CALLS)
    took = time.perf_counter() - t0
    expect(got == ({1: '1', '2': 2, 0.25: None}, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
           "the child's changes are seen by the parent")
    return f"{got[0]}, {got[1][:3]}..., d[k] {calls * 1e6:.1f} us/call", took


def _seed_child(d, l):
    d[1] = '1'
    d['2'] = 2
    d[0.25] = None
    l.reverse()


def show(results, each=""):
    (what, t_mpx), (what_mp, t_mp) = results
    print(f"   mpx             {what:<44} {fmt(t_mpx)}{each}")
    print(f"   multiprocessing {what_mp:<44} {fmt(t_mp)}{each}  ({versus(t_mpx, t_mp)})", flush=True)


def main():
    signal.alarm(180)   # whatever happens, the tour never hangs a terminal or CI
    start = time.perf_counter()
    print(f"mpx Python tour: libmpx {mpx.__version__} ({mpx.library_path}), Python "
          f"{sys.version.split()[0]}, pid {os.getpid()}")

    print(f"1. ticket counter: {CUSTOMERS} processes buy {TICKETS} tickets through a Lock, "
          "the count in a Value (doors open -> last exit)")
    show(both(ticket_counter))

    print(f"2. two processes negate a shared Array('d', 1..10), one half each, {ROUNDS} times under its lock")
    show(both(negate_array))

    print(f"3. {PARTIES} processes wait for an Event, then meet at a Barrier({PARTIES}) with an action")
    show(both(event_barrier))
    print("   Event ping-pong between two processes")
    show(both(ping_pong), " each")

    print(f"4. costs: Lock acquire+release in one process (two bare ctypes calls: "
          f"{fmt(2 * bare_ctypes_call())})")
    show(both(lock_cost), " each")
    print(f"   2 processes x {INCREMENTS} locked Value increments")
    show(both(increments))

    print("5. start methods: median of 5 start+join of an empty Process (spawn starts a new interpreter)")
    for method in ("fork", "forkserver", "spawn"):
        show(start_join(method))

    print(f"6. producer/consumer: {PRODUCERS} processes put {ITEMS} items each into a Queue(1000), "
          f"{CONSUMERS} take them (sentinel None)")
    show(both(producer_consumer))
    print("   Pipe: echo child")
    show(both(pipe_round_trip), " each")

    print(f"7. Pool(2).map of {POOL_ITEMS} squares (pool started and warm)")
    print("   chunksize=1")
    show([pool_map(MPX, 1)(MPX), pool_map(MP, 1)(MP)])
    print("   automatic chunksize")
    show([pool_map(MPX, None)(MPX), pool_map(MP, None)(MP)])
    worker_killed()

    print("8. Manager: a child sets d[1], d['2'], d[0.25] and reverses l (the seeds' program); "
          f"then {MANAGER_CALLS} d['k'] set+get round trips (manager start to shutdown)")
    show(both(manager_seed))

    took = fmt(time.perf_counter() - start)
    if failures:
        print(f"mpx Python tour: {failures} check(s) FAILED ({took})")
        return 1
    print(f"mpx Python tour: every check passed ({took})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
