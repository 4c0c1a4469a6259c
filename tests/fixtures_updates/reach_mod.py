"""Functions kept where no walk of module and class dicts can name them (issue 16.3)."""
import functools
import operator


class curry:
    """Keeps the function in an attribute of its own, without __wrapped__ (toolz)."""

    def __init__(self, func):
        self.func = func

    def __call__(self, *args):
        return self.func(*args)


class cachedproperty:
    """Holds the function of a name deleted from the class body (boltons)."""

    def __init__(self, func):
        self.func = func

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        value = obj.__dict__[self.func.__name__] = self.func(obj)
        return value


def generated_eq(cls):
    """Adds an __eq__ made by exec with globals of its own, as attrs does."""
    ns = {}
    exec(compile("def __eq__(self, other):\n    return self.x == other.x\n",
                 "<generated eq %s>" % cls.__qualname__, "exec"), {}, ns)
    cls.__eq__ = ns["__eq__"]
    return cls


@curry
def add(a, b):
    return a + b


def scale(x, by=lambda v: v * 2):
    return by(x)


HANDLERS = {"inc": lambda v: v + 1, "dec": lambda v: v - 1}


@generated_eq
class Stats:
    def __init__(self, x):
        self.x = x

    def _calc_mean(self):
        return self.x / 2

    mean = cachedproperty(_calc_mean)
    del _calc_mean

    getter = operator.attrgetter("x")             # C code: nothing to reach
    half = functools.partial(operator.truediv, 2)


def make_adder(n):
    def adder(v):
        return v + n
    return adder
