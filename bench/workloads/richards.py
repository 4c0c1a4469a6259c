"""pyperformance's richards: an OS task scheduler simulation, many small method calls."""
from workloads import Workload
from workloads.pyperformance_loader import load_benchmark

DESCRIPTION = "pyperformance bm_richards, one Richards().run(1) per unit; hot: Task.runTask"


def load():
    bm = load_benchmark("richards")
    richards = bm.Richards()

    def run():
        if not richards.run(1):
            raise RuntimeError("richards produced a wrong result")

    return Workload(run=run, hot=bm.Task.runTask, modules=[bm.__name__])
