"""A small 'application' module that the update tests patch and instrument."""
import functools

ACCESS_LOG = []          # things that must never run during target resolution append here


def deco(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)
    return wrapper


def price(qty):
    total = qty * 10
    return total


def make_counter(start):
    count = start

    def step(by):
        nonlocal count
        count += by
        return count
    return step


@deco
def discounted(amount):
    return amount - 1


@functools.lru_cache(maxsize=None)
def cached_rate(code):
    return 1


def ticker(n):
    for i in range(n):
        yield i * 2


async def fetch(x):
    y = x + 1
    return y


class Cart:
    TAX = 0

    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return len(self.items)

    @staticmethod
    def unit():
        return "eur"

    @classmethod
    def make(cls):
        return cls()

    @property
    def size(self):
        ACCESS_LOG.append("Cart.size getter ran")
        return len(self.items)

    def __getattr__(self, name):
        ACCESS_LOG.append("Cart.__getattr__(%s) ran" % name)
        raise AttributeError(name)

    class Line:
        def describe(self):
            return "line"


cart = Cart()


def slow(event):
    event.wait(30)
    return "old slow"


def part_a():
    return "a1"


def part_b():
    return "b1"


def part_c():
    return "c1"
