"""A tight loop calling a small function: the worst case per call for call events."""
from workloads import Workload

DESCRIPTION = "tight loop: 20,000 calls of a 5-line function per unit"

CALLS = 20000


def small(x):
    y = x * 3
    if y & 1:
        y += 1
    return y >> 1


def run():
    total = 0
    for i in range(CALLS):
        total += small(i)
    return total


def load():
    return Workload(run=run, hot=small, modules=[__name__])
