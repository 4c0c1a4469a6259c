"""Compatibility names of the original PyLiveUpdate (``from pyliveupdatescripts import UpdateStub``).

Unlike the original, importing this package does not copy anything into builtins.
"""
import pyliveupdate as _pylu

__all__ = ["UpdateStub", "FuncProfiler", "FP", "LineProfiler", "LP", "FuncDebugger", "FD",
           "LineDebugger", "LD", "VarDebugger", "VD", "LU"]


def __getattr__(name):
    if name in __all__:
        return getattr(_pylu, name)
    raise AttributeError("module 'pyliveupdatescripts' has no attribute %r" % name)
