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

# Imported on first use, so `import pyliveupdate` stays cheap and the pure-Python parts
# (protocol, the controller's use of them) load without the C core. The C core
# (`pyliveupdate._engine`) is loaded by the parts that need it and fails loudly there.
_LAZY = {
    "_engine": None,
    "UpdateStub": "stub",
    "FuncProfiler": "modifications", "FP": "modifications",
    "LineProfiler": "modifications", "LP": "modifications",
    "FuncDebugger": "modifications", "FD": "modifications",
    "LineDebugger": "modifications", "LD": "modifications",
    "VarDebugger": "modifications", "VD": "modifications",
    "LU": "modifications",
}

__all__ = ["__version__", *(n for n in _LAZY if not n.startswith("_"))]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError("module 'pyliveupdate' has no attribute %r" % name)
    import importlib
    module = _LAZY[name]
    if module is None:
        value = importlib.import_module("." + name, __name__)
    else:
        value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
