"""Target of stacking tests: instrumentation on functions that are redefined."""


def f(x, k=2):
    y = x * k
    return y + 1


def pair(x):
    ops = [lambda v: v + 1, lambda v: v - 1]     # two nested codes named <lambda>
    return [op(x) for op in ops]
