"""Overhead of the engine's event sources, as ratios against a same-run baseline.

Every row runs its workload alternately without and with instrumentation (interleaved
rounds, so the machine's drift cancels) and reports the median of the per-round ratios
and their spread (min-max).  Time is the program thread's CPU time
(time.thread_time_ns): on a shared machine, time spent descheduled is not the
instrumentation's cost.  (The recorder's flusher runs on its own thread; its cost is
bench/bench_recording.py's subject.)  Rows:

  untargeted   hot loop; function + line events armed on an unrelated function
  hot-func     function timing on a hot 5-line function          (target <= 1.25)
  fib          function timing on every call of recursive fib    (target <= 1.80)
  hot-lines    line timing on every line of the hot function     (target <= 2.00)

each with both sources (sys.monitoring, PEP 523 frame hook where Python allows it),
beside cProfile and the no-op floors (a C monitoring callback that returns at once, a
forwarding frame hook).  The recorder runs for real (rings, flusher, zstd log).

    python bench/bench_engine.py [--rounds N] [--quick] [--json]
"""
import argparse
import cProfile
import json
import os
import statistics
import sys
import tempfile
import time

from pyliveupdate import _engine, engine, recording


# --- workloads ------------------------------------------------------------------------

def hot(x):
    y = x + 1
    if y & 1:
        y += 3
    z = y * 2
    return z - x


def other(x):
    return x * 3


LOOP_CALLS = 400_000
FIB_N = 23


def loop(n=LOOP_CALLS):
    f = hot
    s = 0
    for i in range(n):
        s += f(i)
    return s


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def fib_run():
    return fib(FIB_N)


def _fib_calls(n):
    a, b = 1, 1  # calls(n) = calls(n-1) + calls(n-2) + 1
    for _ in range(n - 1):
        a, b = b, a + b + 1
    return b if n > 0 else 1


CALLS = {loop: LOOP_CALLS, fib_run: _fib_calls(FIB_N)}


def _lines(code):
    return frozenset(line for _, _, line in code.co_lines() if line is not None)


# --- instrumentations: (setup, teardown) ----------------------------------------------

def arm_codes(codes, req, source):
    def setup():
        for code in codes:
            engine.arm(1, code, req, module=__name__, source=source)

    def teardown():
        engine.disarm(1)
    return setup, teardown


def noop_monitoring(codes, req):
    setup, teardown = arm_codes(codes, req, "monitoring")

    def noop_setup():
        setup()
        _engine.set_callback_mode("noop")

    def noop_teardown():
        _engine.set_callback_mode("normal")
        teardown()
    return noop_setup, noop_teardown


def forwarding_hook():
    return (lambda: _engine.frame_hook(True, True)), (lambda: _engine.frame_hook(False))


def profiler():
    prof = cProfile.Profile()
    return prof.enable, prof.disable


# --- measurement ------------------------------------------------------------------------

CLOCK = time.thread_time_ns

def measure(work, setup, teardown, rounds):
    work()  # warm up: specialization, the recorder's ring for this thread
    setup()
    work()
    teardown()
    ratios, extra = [], []
    for _ in range(rounds):
        t0 = CLOCK()
        work()
        base = CLOCK() - t0
        setup()
        t0 = CLOCK()
        work()
        inst = CLOCK() - t0
        teardown()
        ratios.append(inst / base)
        extra.append((inst - base) / CALLS[work])
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "rounds": rounds, "extra_ns_per_call": statistics.median(extra)}


def engine_only_rows():
    """Our callbacks and state lookups with the recorder stopped (pylu_record skipped):
    separates the engine's share from the recorder's."""
    timing = engine.Request(func_timing=True)
    lines = engine.Request(timing_lines=_lines(hot.__code__))
    frame = None if engine.frame_source_refusal() else "frame"
    out = [
        ("hot-func", "monitoring", "engine only (recorder off)", None, loop,
         arm_codes([hot.__code__], timing, "monitoring")),
        ("fib", "monitoring", "engine only (recorder off)", None, fib_run,
         arm_codes([fib.__code__], timing, "monitoring")),
        ("hot-lines", "monitoring", "engine only (recorder off)", None, loop,
         arm_codes([hot.__code__], lines, "monitoring")),
    ]
    if frame:
        out.insert(2, ("fib", "frame", "engine only (recorder off)", None, fib_run,
                       arm_codes([fib.__code__], timing, frame)))
    return out


def rows():
    hot_code, fib_code = hot.__code__, fib.__code__
    timing = engine.Request(func_timing=True)
    lines = engine.Request(timing_lines=_lines(hot_code))
    everything = engine.Request(func_timing=True, timing_lines=_lines(other.__code__),
                                on_func_begin=lambda frame: None)
    refusal = engine.frame_source_refusal()
    frame = None if refusal else "frame"
    out = [
        ("untargeted", "monitoring", "events on another function", 1.01, loop,
         arm_codes([other.__code__], everything, "monitoring")),
        ("hot-func", "monitoring", "function timing", 1.25, loop,
         arm_codes([hot_code], timing, "monitoring")),
        ("hot-func", "frame", "function timing", 1.25, loop,
         arm_codes([hot_code], timing, frame) if frame else refusal),
        ("hot-func", "floor", "no-op C monitoring callback", None, loop,
         noop_monitoring([hot_code], timing)),
        ("hot-func", "floor", "forwarding frame hook", None, loop, forwarding_hook()),
        ("hot-func", "cProfile", "cProfile", None, loop, profiler()),
        ("fib", "monitoring", "function timing", 1.80, fib_run,
         arm_codes([fib_code], timing, "monitoring")),
        ("fib", "frame", "function timing", 1.80, fib_run,
         arm_codes([fib_code], timing, frame) if frame else refusal),
        ("fib", "floor", "no-op C monitoring callback", None, fib_run,
         noop_monitoring([fib_code], timing)),
        ("fib", "floor", "forwarding frame hook", None, fib_run, forwarding_hook()),
        ("fib", "cProfile", "cProfile", None, fib_run, profiler()),
        ("hot-lines", "monitoring", "line timing, all lines", 2.00, loop,
         arm_codes([hot_code], lines, "monitoring")),
        ("hot-lines", "floor", "no-op C monitoring callback", None, loop,
         noop_monitoring([hot_code], lines)),
    ]
    return out


def run(rows, rounds):
    results = []
    for case, source, what, target, work, inst in rows:
        row = {"case": case, "source": source, "what": what, "target": target}
        if isinstance(inst, str):
            row["refused"] = inst
        else:
            row.update(measure(work, inst[0], inst[1], rounds))
            if target is not None:
                row["meets_target"] = row["median"] <= target
        results.append(row)
    return results


def table(results, stats):
    lines = ["Python %s, recorder: %s events, %s dropped"
             % (sys.version.split()[0], stats.get("events"), stats.get("dropped")),
             "%-11s %-11s %-30s %8s %15s %9s %7s" % ("case", "source", "what", "median",
                                                       "spread", "+ns/call", "target")]
    for r in results:
        if "refused" in r:
            lines.append("%-11s %-11s %-30s %8s  %s" % (r["case"], r["source"], r["what"],
                                                        "refused", r["refused"][:60]))
            continue
        target = "" if r["target"] is None else ("%.2f %s" % (
            r["target"], "ok" if r["meets_target"] else "MISS"))
        lines.append("%-11s %-11s %-30s %7.3fx %7.3f-%-7.3f %8.1f  %s" % (
            r["case"], r["source"], r["what"], r["median"], r["min"], r["max"],
            r["extra_ns_per_call"], target))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of a quarter-size workload (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.quick:
        global LOOP_CALLS, FIB_N
        LOOP_CALLS, FIB_N = LOOP_CALLS // 4, FIB_N - 3
        CALLS[loop], CALLS[fib_run] = LOOP_CALLS, _fib_calls(FIB_N)
        loop.__defaults__ = (LOOP_CALLS,)
        args.rounds = min(args.rounds, 3)
    with tempfile.TemporaryDirectory(prefix="pylu-bench-") as tmp:
        results = run(engine_only_rows(), args.rounds)
        recording.ensure_started(os.path.join(tmp, "logs"))
        try:
            results = run(rows(), args.rounds) + results
        finally:
            engine.shutdown()
            stats = dict(recording.stats())
            recording.stop()
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "recorder": stats,
                          "rows": results}, indent=2, default=str))
    else:
        print(table(results, stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
