"""values.py - Python's classic shared Value/Array example, on mpx, plus a locked counter.

Run from the repository root, once the library is built:
    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 python3 docs/examples/values.py

The first part is the example from the multiprocessing docs ("Sharing state between
processes") with `multiprocessing.Value/Array` replaced by `mpx.Value/Array`; the process is
still multiprocessing's own Process (fork start method: the child inherits the objects).
"""

import multiprocessing
import os

import mpx
from mpx import sharedctypes


def f(n, a):
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]


def add(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")

    num = mpx.Value("d", 0.0)
    arr = mpx.Array("i", range(10))
    p = ctx.Process(target=f, args=(num, arr))
    p.start()
    p.join()
    print(num.value)
    print(arr[:])
    assert arr[:] == [-i for i in range(10)] and abs(num.value - 3.1415927) < 1e-12

    # Four processes, each 2500 increments under the value's own lock.
    counter = mpx.Value("q", 0)
    workers = [ctx.Process(target=add, args=(counter, 2500)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("counter:", counter.value)
    assert counter.value == 10000

    # A token names the same memory for any process of this user, in any language: here a
    # plain os.fork() child attaches by token instead of using the inherited object.
    token = sharedctypes.token_of(arr)
    pid = os.fork()
    if pid == 0:
        same = sharedctypes.attach(token)  # typecode and length come from the array itself
        same[0] = 100
        os._exit(0)
    os.waitpid(pid, 0)
    print(f"token {token}: the child wrote arr[0] = {arr[0]}")
    assert arr[0] == 100

    # RawArray: no lock; raw ctypes semantics, as in multiprocessing.
    raw = mpx.RawArray("B", b"mpx")
    print("raw:", bytes(raw), "has get_lock:", hasattr(raw, "get_lock"))
    print("values.py: ok")
