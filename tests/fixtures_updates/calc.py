"""Target of the join-point tests. Line numbers are used by the tests: keep them."""


def bar(a):
    b = a + 1
    c = b * 2
    if c > 100:
        raise ValueError("too big: %d" % c)
    return c


class Acc:
    def __init__(self):
        self.total = 0

    def add(self, x):
        self.total = self.total + x
        return self.total


def outer(k):
    def inner(v):
        w = v + k
        return w
    return inner


def gen(n):
    for i in range(n):
        j = i * 10
        yield j


async def co(x):
    y = x + 5
    return y
