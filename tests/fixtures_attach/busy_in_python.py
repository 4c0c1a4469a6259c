"""One thread running Python code without pause: it always holds the GIL, and never sits
in a system call long enough to be found there."""
import os
import sys
import time


def step(n):
    return (n * 7) % 1000003


print("pid", os.getpid(), flush=True)
n, last = 0, time.monotonic()
while True:
    n = step(n + 1)
    if time.monotonic() - last > 0.5:
        last = time.monotonic()
        sys.stdout.write("alive %d\n" % n)
