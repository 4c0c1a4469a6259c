"""Holds the GIL inside one long C call (no eval-breaker check, no system call)."""
import os

print("pid", os.getpid(), flush=True)
while True:
    sum(range(10 ** 11))
