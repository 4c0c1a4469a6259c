"""Load a benchmark module of the pinned ``pyperformance`` package as an ordinary module.

The benchmark files live in pyperformance's data files and are scripts (their pyperf
runner only starts under ``__main__``), so importing them gives us their workload
functions without the runner. The module gets its plain name (``bm_richards``), so
scope patterns such as ``bm_richards.Task.runTask`` resolve through ``sys.modules``.
On an interpreter where pyperformance itself cannot be installed (the 3.9 venv of the
original PyLiveUpdate), ``PYLU_BENCH_PYPERFORMANCE_DIR`` names the same directory.
"""
import importlib.util
import os
import sys


def benchmarks_dir():
    override = os.environ.get("PYLU_BENCH_PYPERFORMANCE_DIR")
    if override:
        return override
    import pyperformance
    return os.path.join(os.path.dirname(pyperformance.__file__), "data-files", "benchmarks")


def load_benchmark(name):
    """Import ``bm_<name>/run_benchmark.py`` as module ``bm_<name>``."""
    modname = "bm_" + name
    if modname in sys.modules:
        return sys.modules[modname]
    path = os.path.join(benchmarks_dir(), modname, "run_benchmark.py")
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    return module
