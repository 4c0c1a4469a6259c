"""pyperformance's nbody: float arithmetic in loops, few calls, many lines per call."""
from workloads import Workload
from workloads.pyperformance_loader import load_benchmark

DESCRIPTION = "pyperformance bm_nbody, bench_nbody(1, 'sun', 500) per unit; hot: advance"


def load():
    bm = load_benchmark("nbody")

    def run():
        bm.bench_nbody(1, "sun", 500)

    return Workload(run=run, hot=bm.advance, modules=[bm.__name__])
