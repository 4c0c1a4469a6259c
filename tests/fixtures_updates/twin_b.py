"""One of two modules whose functions are identical line for line (code objects that
compare equal although they are distinct): tests of identity."""


def handler(x):
    return x + 1


def scaled(x, k=2):
    return x * k
