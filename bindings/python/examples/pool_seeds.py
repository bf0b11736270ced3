"""pool_seeds.py - the seeds' pool programs with mpx.Pool: map of squares, apply_async with a
callback, starmap, imap with a progress bar; then what multiprocessing's Pool cannot do: a
worker killed mid-task fails only its task, and a task timeout.

    PYTHONPATH=bindings/python MPX_LIBRARY=build/default/src/libmpx.so.0 \\
        python3 bindings/python/examples/pool_seeds.py

Every step checks its result; the program exits 0 when all hold.
"""
import os
import signal
import time

import mpx


def square(x):
    return x * x


def power(base, exp):
    return base ** exp


def slow_square(x):
    time.sleep(0.01)
    return x * x


def report_pid_and_sleep(q):
    q.put(os.getpid())
    time.sleep(60)


def main():
    with mpx.Pool(processes=2) as pool:
        # 1. Pool.map of squares (the automatic chunksize, as multiprocessing's).
        squares = pool.map(square, range(10))
        print("map:", squares)
        assert squares == [x * x for x in range(10)]

        # 2. apply_async with a callback (run in the pool's result thread).
        got = []
        result = pool.apply_async(square, (12,), callback=got.append)
        print("apply_async:", result.get(timeout=10), "callback got", got)
        assert result.get() == 144 and got == [144]

        # 3. starmap: each item is an argument tuple.
        powers = pool.starmap(power, [(2, 10), (3, 3), (10, 2)])
        print("starmap:", powers)
        assert powers == [1024, 27, 100]

        # 4. imap with a progress bar (drawn on stderr when it is a terminal).
        total = sum(pool.imap(slow_square, range(200), chunksize=4, progress=True))
        print("imap: sum of squares", total)
        assert total == sum(x * x for x in range(200))

        # 5. A worker killed mid-task: only that task fails, the pool goes on.
        q = mpx.Queue()
        doomed = pool.apply_async(report_pid_and_sleep, (q,))
        os.kill(q.get(timeout=10), signal.SIGKILL)
        try:
            doomed.get(timeout=10)
            raise AssertionError("the task of a killed worker succeeded")
        except mpx.WorkerDiedError as e:
            print("killed worker:", e)
        assert pool.map(square, [1, 2, 3]) == [1, 4, 9]

        # 6. A task timeout: the task fails, its worker is replaced.
        try:
            pool.apply(time.sleep, (60,), task_timeout=0.2)
            raise AssertionError("the task outran its timeout")
        except mpx.TaskTimeoutError as e:
            print("timeout:", e)
        assert pool.apply(square, (5,)) == 25
    pool.join()
    print("ok")


if __name__ == "__main__":
    main()
