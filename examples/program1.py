"""The program the README's commands are written against: run it, then pylu-controller."""
import os
import time

from module1 import foo
from pyliveupdatescripts import UpdateStub


# The README's examples name lines 11-15 of bar (LP, LD, VD, and patch.py's Instrument).
def bar(a):
    foo(a)
    b = a
    print('bar', a)
    print('bar', b)
    print('bar', a + b)
    return b


class Foo:
    def method(self, x):
        return x + 1

    @classmethod
    def cmethod(cls, x):
        return x * 2

    @staticmethod
    def smethod(x):
        return x - 1


def main():
    UpdateStub().start()
    interval = float(os.environ.get("PROGRAM1_INTERVAL", "1"))
    obj = Foo()
    a = 0
    while True:
        a = a % 5 + 1
        foo(a)
        bar(a)
        obj.method(a)
        Foo.cmethod(a)
        Foo.smethod(a)
        print('tick', flush=True)
        time.sleep(interval)


if __name__ == '__main__':
    main()
