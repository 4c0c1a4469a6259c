"""pyliveupdate: change a running Python program without stopping it.

In the program:

    from pyliveupdate import UpdateStub
    UpdateStub().start()

then attach with ``pylu-controller``. See README.md.
"""
import sys as _sys

if _sys.version_info < (3, 12):
    raise ImportError(
        "pyliveupdate needs CPython 3.12 or newer (sys.monitoring, PEP 669); "
        "this is Python %d.%d." % _sys.version_info[:2])
if _sys.implementation.name != "cpython":
    raise ImportError("pyliveupdate needs CPython; this is %s." % _sys.implementation.name)

__version__ = "1.0.0.dev0"

from . import _engine  # noqa: E402  (the C core; fails loudly if not built)

# Imported on first use, so `import pyliveupdate` stays cheap.
_LAZY = {
    "UpdateStub": "stub",
    "FuncProfiler": "modifications", "FP": "modifications",
    "LineProfiler": "modifications", "LP": "modifications",
    "FuncDebugger": "modifications", "FD": "modifications",
    "LineDebugger": "modifications", "LD": "modifications",
    "VarDebugger": "modifications", "VD": "modifications",
    "LU": "modifications",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'pyliveupdate' has no attribute %r" % name)
    import importlib
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
