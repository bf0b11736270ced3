"""sync.py - Python's ticket counter on mpx, owner-death recovery, Event and Barrier.

Run from the repository root, once the library is built:
    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 python3 docs/examples/sync.py
"""

import multiprocessing
import os
import signal
import time
import warnings

import mpx


def buy(customer, lock, tickets, sold_to):
    with lock:
        left = tickets.value
        if left > 0:
            sold_to[5 - left] = customer
            tickets.value = left - 1
            print(f"  customer {customer:2d} bought ticket {6 - left}", flush=True)
        else:
            print(f"  customer {customer:2d} refused: sold out", flush=True)


def ticket_counter(ctx):
    print("ticket counter: 10 processes, 5 tickets, one Lock")
    lock = mpx.Lock()
    tickets = mpx.RawValue("i", 5)       # guarded by `lock`
    sold_to = mpx.RawArray("i", 5)
    start = time.perf_counter()
    procs = [ctx.Process(target=buy, args=(c, lock, tickets, sold_to)) for c in range(1, 11)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print(f"  sold to {sorted(sold_to)}, {tickets.value} left, {(time.perf_counter() - start) * 1e3:.1f} ms")
    assert tickets.value == 0 and len(set(sold_to)) == 5


def owner_death():
    print("owner death: a child is killed holding the lock")
    lock = mpx.Lock()
    balance = mpx.RawArray("q", [100, 0])   # guarded by `lock`: the sum is 100
    pid = os.fork()
    if pid == 0:
        lock.acquire()
        balance[0] -= 40                    # half a transfer...
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", mpx.OwnerDiedWarning)
        with lock:                          # acquires, marks consistent, warns
            if caught:
                print(f"  warning: {caught[0].message}")
                balance[1] = 100 - balance[0]   # repair while holding the lock
    print(f"  balances {balance[:]}, lock usable again: {lock.acquire(timeout=1)}")
    lock.release()
    assert caught and issubclass(caught[0].category, mpx.OwnerDiedWarning)
    assert sum(balance) == 100


def event_and_barrier(ctx):
    print("event and barrier")
    go = mpx.Event()
    barrier = mpx.Barrier(3, timeout=5)
    arrivals = mpx.Array("i", 3)

    def party(i):
        go.wait(5)
        arrivals[barrier.wait()] += 1

    procs = [ctx.Process(target=party, args=(i,)) for i in range(2)]
    for p in procs:
        p.start()
    go.set()
    arrivals[barrier.wait()] += 1
    for p in procs:
        p.join()
    print(f"  each arrival index taken once: {arrivals[:]}")
    assert arrivals[:] == [1, 1, 1]


if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")
    ticket_counter(ctx)
    owner_death()
    event_and_barrier(ctx)
    print("sync.py: ok")
