"""Paired, interleaved measurement: the one way every bench here turns runs into ratios.

Machines are shared and drift (by tens of percent over minutes), so no figure is an
absolute time: every instrumented run sits next to a baseline run (``paired_rounds``:
back to back, alternating which goes first; ``Cells``: B t1 t2 t3 B t4 ..., each tool
run against the mean of the baselines on either side, the order of the tools rotating
every round), and the round's ratio is instrumented / baseline. We report the median
of the per-round ratios and their spread (min–max).

Each run times units of work one by one, in CPU time of the process (all threads, so
a tool's helper thread is charged) and in wall time. The headline figure is the CPU
ratio: on a shared machine (load 10 on 2 cores while this was written) a 10 ms unit is
preempted far more often than a 1 ms one, so wall ratios of slow tools come out 2-3x
too high, while CPU time only counts what the process ran. Wall ratios are kept too
(in the JSON), and shown where a tool waits rather than computes (the original
PyLiveUpdate's logging thread convoys on the GIL).

Two levels:
  paired_rounds(measure_base, measure_tool, rounds)   any two zero-argument callables
                                                      returning seconds -> Summary
  ChildRunner(python).run(workload, variant, repeat)  one fresh process running
                                                      child.py -> seconds (or raises)
and measure_cells(...), which pairs every variant with the baseline on one workload.
Other bench_*.py scripts can use paired_rounds with their own callables.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")


class Unavailable(Exception):
    """The variant cannot run on this interpreter; str() is the measured reason."""


class ChildFailed(Exception):
    """The child process failed; str() is the reason (its last error line)."""


def summarize(ratios):
    """Median and spread of per-round ratios."""
    ratios = sorted(ratios)
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1],
            "n": len(ratios)}


def paired_rounds(measure_base, measure_tool, rounds, on_round=None):
    """Run ``rounds`` interleaved pairs; return {"rounds": [...], **summary}.

    Even rounds run the baseline first, odd rounds the tool first, so a steady drift
    biases neither side.
    """
    results = []
    for index in range(rounds):
        if index % 2 == 0:
            base = measure_base()
            tool = measure_tool()
        else:
            tool = measure_tool()
            base = measure_base()
        results.append({"base": base, "tool": tool, "ratio": tool / base})
        if on_round:
            on_round(index, results[-1])
    out = {"rounds": results}
    out.update(summarize([r["ratio"] for r in results]))
    return out


class ChildRunner(object):
    """Run child.py in a fresh process of ``python``; return {"cpu": s, "wall": s}, the
    mean seconds of one unit of work over the ``repeat`` units it timed (their total
    over their number). Not the median unit: a tool's helper thread works in bursts
    (our flusher compresses, a sampler wakes), and a median unit leaves the bursts out
    - it hid most of our flusher's cost until 2026-11-26 (fib 2.5x by median, 3.5x by
    mean, when the flusher was changed to spread its work evenly)."""

    def __init__(self, python=sys.executable, env=None, timeout=300):
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self.timeout = timeout
        self.last_info = {}

    def run(self, workload, variant, repeat, warmup=None):
        if warmup is None:  # enough for the interpreter to specialise under the tool
            warmup = max(1, repeat // 5)
        spec = {"workload": workload, "variant": variant, "repeat": repeat, "warmup": warmup}
        tmp = tempfile.mkdtemp(prefix="pylu-bench-")
        try:
            env = dict(self.env)
            env["PYLU_LOG_DIR"] = os.path.join(tmp, "logs")  # a fresh private log dir
            os.mkdir(env["PYLU_LOG_DIR"], 0o700)
            result_path = os.path.join(tmp, "result.json")
            with open(os.path.join(tmp, "stdout"), "wb") as out, \
                    open(os.path.join(tmp, "stderr"), "wb") as err:
                try:
                    proc = subprocess.run([self.python, CHILD, json.dumps(spec), result_path],
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=env, cwd=HERE, timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    raise ChildFailed("timed out after %ds" % self.timeout)
            if not os.path.exists(result_path):
                raise ChildFailed("exit code %d, no result; stderr: %s"
                                  % (proc.returncode, _tail(os.path.join(tmp, "stderr"))))
            with open(result_path) as f:
                result = json.load(f)
            if "unavailable" in result:
                raise Unavailable(result["unavailable"])
            if "error" in result:
                raise ChildFailed(result["error"])
            info = dict(result.get("info") or {})
            info["stdout_bytes"] = os.path.getsize(os.path.join(tmp, "stdout"))
            info["stderr_bytes"] = os.path.getsize(os.path.join(tmp, "stderr"))
            info["units"] = len(result["units_cpu"])
            self.last_info = info
            info["cpu_median_unit"] = statistics.median(result["units_cpu"])
            return {"cpu": statistics.fmean(result["units_cpu"]),
                    "wall": statistics.fmean(result["units_wall"])}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _tail(path, limit=400):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").strip()
    return text[-limit:] if text else "(empty)"


MIN_UNITS = 3  # a few, so one slow unit does not decide


def calibrate(runner, workload, target_seconds):
    """Units of ``workload`` per timed run so that the baseline takes ~target_seconds."""
    per_unit = runner.run(workload, "control", repeat=MIN_UNITS)["cpu"]
    return max(MIN_UNITS, int(round(target_seconds / per_unit))), per_unit


class Cells(object):
    """The cells of one workload: every variant paired with the baseline (variant
    "control" is the baseline against itself), one round at a time, so a caller can
    interleave workloads round by round and stop when its time budget is spent.

    A variant that is unavailable or fails is tried once and reported with its reason.
    After its first pair, a slow tool's runs time fewer units (so that they take about
    as long as the baseline's): the figure is a per-unit mean, so it does not depend
    on the number of units. ``tool_repeat``/``tool_warmup`` fix them instead (for tools
    so slow that one unit takes seconds).
    """

    def __init__(self, runner, workload, variants, repeat, progress=None,
                 tool_repeat=None, tool_warmup=None):
        self.runner, self.workload, self.repeat = runner, workload, repeat
        self.progress = progress
        self.cells = {v: {"workload": workload, "variant": v, "rounds": []} for v in variants}
        self.live = list(variants)
        self.units = {v: (repeat, None) for v in variants}
        self.fixed = tool_repeat is not None
        if self.fixed:
            self.units.update({v: (tool_repeat, tool_warmup) for v in variants if v != "control"})

    GROUP = 3  # tool runs between two baseline runs

    def run_round(self, index):
        """One round: B t1 t2 t3 B t4 t5 t6 B ... (B = baseline run). Each tool run's
        ratio is to the mean of the baseline runs on either side of it: every tool run
        sits next to a baseline, with a third fewer processes than strict pairs."""
        live = self.live
        shift = index % len(live) if live else 0  # rotate: none always runs first
        order = live[shift:] + live[:shift]
        try:
            before = self.runner.run(self.workload, "control", self.repeat)
        except (Unavailable, ChildFailed) as exc:
            for variant in order:
                self.cells[variant]["error"] = "baseline failed: %s" % exc
            self.live = []
            return
        for start in range(0, len(order), self.GROUP):
            group, runs = order[start:start + self.GROUP], []
            for variant in group:
                started = time.monotonic()
                try:
                    tool = self.runner.run(self.workload, variant, *self.units[variant])
                except Unavailable as exc:
                    self.cells[variant]["unavailable"] = str(exc)
                except ChildFailed as exc:
                    self.cells[variant]["error"] = str(exc)
                else:
                    runs.append((variant, tool, dict(self.runner.last_info),
                                 time.monotonic() - started))
            after = self.runner.run(self.workload, "control", self.repeat) if runs else before
            base = {k: (before[k] + after[k]) / 2 for k in ("cpu", "wall")}
            for variant, tool, info, _seconds in runs:
                cell = self.cells[variant]
                pair = {"base": base, "tool": tool, "ratio": tool["cpu"] / base["cpu"],
                        "ratio_wall": tool["wall"] / base["wall"]}
                cell["rounds"].append(pair)
                cell["info"] = info
                if not self.fixed and variant != "control" and len(cell["rounds"]) == 1:
                    slower = max(1.0, pair["ratio"])
                    self.units[variant] = (max(MIN_UNITS, int(round(self.repeat / slower))),
                                           None)
            for variant in group:
                if self.progress:
                    match = [r[3] for r in runs if r[0] == variant]
                    self.progress(self.workload, variant, index, self.cells[variant],
                                  match[0] if match else 0.0)
            before = after
        self.live = [v for v in live if "unavailable" not in self.cells[v]
                     and "error" not in self.cells[v]]

    def results(self):
        for cell in self.cells.values():
            stats = summarize([r["ratio"] for r in cell["rounds"]])
            if stats:
                cell.update(stats)
                cell["wall"] = summarize([r["ratio_wall"] for r in cell["rounds"]])
        return self.cells


def measure_cells(runner, workload, variants, rounds, repeat, progress=None,
                  tool_repeat=None, tool_warmup=None):
    """All rounds of one workload at once; {variant: cell}."""
    cells = Cells(runner, workload, variants, repeat, progress, tool_repeat, tool_warmup)
    for index in range(rounds):
        cells.run_round(index)
    return cells.results()
