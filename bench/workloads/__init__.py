"""Workloads the bench runs, each in a module of this package.

A workload module has ``DESCRIPTION`` and ``load() -> Workload``. It must import
on every Python the bench drives (3.9 for the original PyLiveUpdate, 3.12+ for us),
so no syntax newer than 3.9 here.
"""
import importlib

# Order of the columns in the tables.
NAMES = ["loop", "fib", "richards", "nbody", "flask"]
_MODULES = {"flask": "flask_app"}  # a module named flask would read like the framework


class Workload(object):
    """One unit of work plus what the instrumenters aim at.

    run      callable doing one unit of work (the child times ``repeat`` of them)
    hot      the function object a "one hot function" case targets
    modules  names of the modules whose functions are "the program" for whole-program
             cases of tools that take a scope (ours); the other tools see everything
    """

    def __init__(self, run, hot, modules):
        self.run = run
        self.hot = hot
        self.modules = list(modules)

    @property
    def hot_pattern(self):
        """``module.qualname`` of the hot function, the pattern the profilers take."""
        return "%s.%s" % (self.hot.__module__, self.hot.__qualname__)

    def hot_lines(self):
        """Body line numbers of the hot function (what line profiling targets)."""
        code = self.hot.__code__
        lines = set()
        for _, _, line in code.co_lines() if hasattr(code, "co_lines") else []:
            if line is not None and line > code.co_firstlineno:
                lines.add(line)
        if not lines:  # 3.9: no co_lines; use the line table through dis
            import dis
            lines = {line for _, line in dis.findlinestarts(code)
                     if line > code.co_firstlineno}
        return sorted(lines)


def load(name):
    if name not in NAMES:
        raise ValueError("unknown workload %r (known: %s)" % (name, ", ".join(NAMES)))
    return importlib.import_module("workloads." + _MODULES.get(name, name)).load()


def description(name):
    return importlib.import_module("workloads." + _MODULES.get(name, name)).DESCRIPTION
