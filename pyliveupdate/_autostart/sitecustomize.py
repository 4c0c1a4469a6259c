"""pylu-run's hook: Python imports this at startup because pylu-run put this directory on
PYTHONPATH (subprocesses inherit it). It starts pyliveupdate's stub, then runs the
sitecustomize this one hides, if the environment has one.

Kept to syntax every Python accepts: a subprocess of any version may read it.
"""
import os
import sys


def _start_stub():
    if sys.version_info < (3, 12) or os.environ.get("PYLU_RUN") != "1":
        return
    import _pyliveupdate_launch
    _pyliveupdate_launch.autostart()


def _chain_hidden_sitecustomize():
    here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.realpath(os.path.abspath(p or ".")) != here]
    try:
        import importlib.machinery
        import importlib.util
    except ImportError:
        return
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start_stub()
_chain_hidden_sitecustomize()
