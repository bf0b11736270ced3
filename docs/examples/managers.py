"""managers.py - Python's Manager programs on mpx: a dict and a list changed by a child, a
Namespace, a custom BaseManager with a registered class, and a manager reached over TCP by a
process that knows only its address and authkey.

Run from the repository root, once the library is built:
    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 python3 docs/examples/managers.py

On two machines (see docs/managers.md), the server:
    python3 docs/examples/managers.py serve 0.0.0.0 50000 'a long random key'
and the client:
    python3 docs/examples/managers.py connect server.example 50000 'a long random key'
"""

import os
import signal
import subprocess
import sys
import time

import mpx
from mpx.managers import BaseManager


# ---- 1. the dict and list program of Python's documentation --------------------------------

def f(d, l):
    d[1] = '1'
    d['2'] = 2
    d[0.25] = None
    l.reverse()


def dict_and_list():
    with mpx.Manager() as manager:
        d = manager.dict()
        l = manager.list(range(10))
        p = mpx.Process(target=f, args=(d, l))
        p.start()
        p.join()
        print(d)        # {1: '1', '2': 2, 0.25: None}
        print(l)        # [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]


# ---- 2. a Namespace ----------------------------------------------------------------------

def set_a(ns):
    ns.a = 10


def namespace():
    with mpx.Manager() as manager:
        ns = manager.Namespace()
        p = mpx.Process(target=set_a, args=(ns,))
        p.start()
        p.join()
        print("ns.a =", ns.a)     # 10


# ---- 3. a custom manager with registered classes -----------------------------------------

class MathsClass:
    def add(self, x, y):
        return x + y

    def mul(self, x, y):
        return x * y


class Operator:
    """Holds a base; maths() returns a MathsClass, which clients get as a proxy."""

    def __init__(self, base):
        self.base = base

    def apply(self, x):
        return self.base + x

    def maths(self):
        return MathsClass()


class MyManager(BaseManager):
    pass


MyManager.register('Maths', MathsClass)
MyManager.register('Operator', Operator, method_to_typeid={'maths': 'Maths'})


def custom_manager():
    with MyManager() as manager:
        maths = manager.Maths()
        print("4 + 3 =", maths.add(4, 3))     # 7
        print("7 * 8 =", maths.mul(7, 8))     # 56
        op = manager.Operator(100)
        print("100 + 5 =", op.apply(5))       # 105
        print("6 * 7 =", op.maths().mul(6, 7))  # 42, through a proxy returned by a method


# ---- 4. over TCP: a server and a client that share only an address and a key --------------

class QueueManager(BaseManager):
    pass


def serve(host, port, key):
    import queue
    jobs = queue.Queue()
    QueueManager.register('get_jobs', callable=lambda: jobs)
    QueueManager.register('Maths', MathsClass)
    server = QueueManager(address=(host, port), authkey=key).get_server()
    print("serving on", server.address, flush=True)
    server.serve_forever()          # until Ctrl-C


def connect(host, port, key):
    QueueManager.register('get_jobs')
    QueueManager.register('Maths')
    m = QueueManager(address=(host, port), authkey=key)
    m.connect()
    jobs = m.get_jobs()
    jobs.put(f"hello from process {os.getpid()}")
    print("client: 40 + 2 =", m.Maths().add(40, 2), "; job queued:", jobs.qsize())
    print("client: got back", jobs.get(timeout=5))


def two_processes():
    env = dict(os.environ)
    server = subprocess.Popen([sys.executable, __file__, "serve", "127.0.0.1", "0", "demo key"],
                              stdout=subprocess.PIPE, text=True, env=env)
    line = server.stdout.readline()             # "serving on ('127.0.0.1', PORT)"
    port = int(line.rsplit(",", 1)[1].strip(" )\n"))
    subprocess.run([sys.executable, __file__, "connect", "127.0.0.1", str(port), "demo key"],
                   check=True, env=env, timeout=30)
    server.send_signal(signal.SIGINT)           # Ctrl-C: serve_forever() returns, exit 0
    print("server exit code:", server.wait(10))
    server.stdout.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    elif len(sys.argv) > 1 and sys.argv[1] == "connect":
        connect(sys.argv[2], int(sys.argv[3]), sys.argv[4].encode())
    else:
        t0 = time.monotonic()
        dict_and_list()
        namespace()
        custom_manager()
        two_processes()
        print(f"done in {time.monotonic() - t0:.2f} s")
