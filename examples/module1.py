"""A module of the example program; patch.py replaces foo while the program runs."""


def foo(a):
    print('foo', a)
