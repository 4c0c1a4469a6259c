"""Helpers that patch.py brings into module1."""


def double(a):
    return a * 2
