"""One measured run, in a fresh process: load a workload, apply one tool, time it.

    python child.py SPEC_JSON RESULT_PATH

SPEC_JSON: {"workload": name, "variant": name, "repeat": n, "warmup": n}. The tool is
applied first, then the workload warms up under it (so the interpreter specialises
under the tool, as in a long-running program), then ``repeat`` units are timed one by
one, in wall-clock time and in CPU time of the whole process (all its threads: a
tool's helper thread counts). The parent takes the mean unit (harness.ChildRunner).
The result (seconds, and what the tool reports about itself) goes to RESULT_PATH as
JSON; stdout stays free for the program's own output (hand-added prints go there).
Runs on 3.9 too (the original PyLiveUpdate's interpreter).
"""
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import peers  # noqa: E402
import workloads  # noqa: E402


def _write(path, result):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def main(argv):
    spec = json.loads(argv[1])
    result_path = argv[2]
    stage = "loading workload %s" % spec["workload"]
    try:
        workload = workloads.load(spec["workload"])
        stage = "starting %s" % spec["variant"]
        tool = peers.make(spec["variant"], workload)
        tool.start()
        stage = "running %s under %s" % (spec["workload"], spec["variant"])
        for _ in range(spec.get("warmup", 1)):
            workload.run()
        run = workload.run
        wall, cpu = time.perf_counter, time.process_time
        units_wall, units_cpu = [], []
        for _ in range(spec["repeat"]):
            start_wall, start_cpu = wall(), cpu()
            run()
            units_cpu.append(cpu() - start_cpu)
            units_wall.append(wall() - start_wall)
        stage = "stopping %s" % spec["variant"]
        info = tool.stop() or {}
    except peers.Unavailable as exc:
        _write(result_path, {"unavailable": str(exc)})
        return 0
    except BaseException as exc:  # report anything, including SystemExit from a tool
        _write(result_path, {"error": "%s: %s: %s" % (stage, type(exc).__name__, exc),
                             "traceback": traceback.format_exc()})
        return 3
    _write(result_path, {"units_cpu": units_cpu, "units_wall": units_wall, "info": info,
                         "python": "%d.%d.%d" % sys.version_info[:3]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
