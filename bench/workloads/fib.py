"""Deep recursion: every call is the target, the worst case for call events."""
from workloads import Workload

DESCRIPTION = "recursive fib(18) per unit (8,361 calls, all of the hot function)"


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def run():
    return fib(18)


def load():
    return Workload(run=run, hot=fib, modules=[__name__])
