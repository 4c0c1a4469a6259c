"""yappi: a deterministic C profiler; whole program, every thread.

Wall clock, like our timings (yappi's default CPU clock makes a system call per event
on many VMs, which would make it look worse than its users see with the wall clock).
"""
from peers import Unavailable


class Yappi(object):
    def __init__(self, workload):
        try:
            import yappi
        except ImportError as exc:
            raise Unavailable("yappi not installed: %s" % exc)
        self.yappi = yappi

    def start(self):
        self.yappi.set_clock_type("wall")
        self.yappi.start(builtins=False)

    def stop(self):
        self.yappi.stop()
        stats = self.yappi.get_func_stats()
        calls = sum(s.ncall for s in stats)
        functions = len(stats)
        self.yappi.clear_stats()
        return {"functions": functions, "calls": calls}
