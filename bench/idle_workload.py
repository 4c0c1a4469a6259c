"""Child of bench_controller.py's idle-cost row: times the bench workloads, stub on or off.

    python idle_workload.py base|stub SECONDS   prints {"workload": seconds per unit, ...}
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads  # noqa: E402

# flask needs Flask installed; the CPU-bound ones are what a stub's idle thread would slow.
NAMES = ["loop", "fib", "richards", "nbody"]


def main():
    if sys.argv[1] == "stub":
        from pyliveupdate import UpdateStub
        # Nothing listens on this port: the stub keeps retrying with backoff.
        UpdateStub(controller=os.environ["BENCH_DEAD_ADDR"]).start()
        time.sleep(0.05)
    seconds = float(sys.argv[2])   # time spent on each workload
    out = {}
    for name in NAMES:
        try:
            run = workloads.load(name).run
        except ImportError:  # richards/nbody come from pyperformance (./dev bench installs it)
            continue
        t0 = time.perf_counter()
        run()
        reps = max(1, int(seconds / max(time.perf_counter() - t0, 1e-6)))
        t0 = time.perf_counter()
        for _ in range(reps):
            run()
        out[name] = (time.perf_counter() - t0) / reps   # seconds per unit of work
    print(json.dumps(out))


if __name__ == "__main__":
    main()
