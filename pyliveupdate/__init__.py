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

__all__ = ["__version__"]
