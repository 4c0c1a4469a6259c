"""Imported only after an update is applied (tests of code seen later)."""


def late(a):
    b = a * 3
    return b
