"""Two threads run Python code without pause (one of them always holds the GIL);
the main thread prints their state.

Never imports pyliveupdate. Lines: "result <thread> <n> <compute(n)>" and "state ...".
"""
import os
import sys
import threading
import time

from state import state


def compute(n):
    total = n * 3
    total += 1
    return total


def worker(name):
    n = 0
    while True:
        n += 1
        result = compute(n)
        if n % 50000 == 0:
            sys.stdout.write("result %s %d %d\n" % (name, n, result))  # one write: no interleaving


print("pid", os.getpid(), flush=True)
for name in ("a", "b"):
    threading.Thread(target=worker, args=(name,), name="worker-" + name, daemon=True).start()
while True:
    sys.stdout.write("state %s\n" % state())
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0.2)
