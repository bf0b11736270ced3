"""processes.py - mpx.Process with the three start methods: a ticket counter shared by
children of fork, spawn and forkserver, exit codes, a daemon, and the process identity.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \
        python3 docs/examples/processes.py
"""
import os
import sys
import time

import mpx


def buy(tickets, lock, sold):
    """A customer: takes a ticket if one is left (a child of any start method)."""
    with lock:
        got = tickets.value > 0
        if got:
            tickets.value -= 1
            sold.value += 1
        left = tickets.value
    print(f"  {mpx.current_process().name} (pid {os.getpid()}, parent "
          f"{mpx.parent_process().pid}): {'bought one' if got else 'sold out'}, {left} left", flush=True)


def fail(code):
    sys.exit(code)


def sleep_forever():
    time.sleep(60)


if __name__ == "__main__":   # spawn and forkserver children import this file: the guard matters
    tickets, sold, lock = mpx.Value("i", 4, lock=False), mpx.Value("i", 0, lock=False), mpx.Lock()
    print("six customers, four tickets, two of each start method:")
    ps = [mpx.get_context(m).Process(target=buy, args=(tickets, lock, sold))
          for m in ("fork", "fork", "spawn", "spawn", "forkserver", "forkserver")]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print(f"  sold {sold.value}, left {tickets.value}, exit codes {[p.exitcode for p in ps]}")
    assert sold.value == 4 and tickets.value == 0 and all(p.exitcode == 0 for p in ps)

    p = mpx.Process(target=fail, args=(7,))
    p.start()
    p.join()
    print(f"sys.exit(7) in the child -> exitcode {p.exitcode}")
    assert p.exitcode == 7

    d = mpx.Process(target=sleep_forever, daemon=True)
    d.start()
    d.join(0.1)
    print(f"a daemon is alive: {d.is_alive()}; active children: {[c.name for c in mpx.active_children()]}")
    d.terminate()
    d.join()
    print(f"terminated -> exitcode {d.exitcode} (-SIGTERM)")
    assert d.exitcode == -15
    print(f"cpu_count {mpx.cpu_count()}, current process {mpx.current_process().name}")
