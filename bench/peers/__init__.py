"""The tools the bench applies to a workload, one class per way of applying one.

Every tool has ``start()`` (before the warm-up), ``stop() -> dict`` (after the timed
runs; what the tool says about itself, e.g. events recorded and dropped). A tool that
cannot run here raises ``Unavailable`` with the measured reason (the import error, the
refusal), and the table shows that reason instead of a number.

VARIANTS maps the variant name used in the tables and the JSON to
(module, class, short label).
"""
import importlib


class Unavailable(Exception):
    """This tool cannot run in this interpreter; the message says why."""


VARIANTS = {
    "control": ("baseline", "Baseline", "nothing applied (noise control)"),
    # ours (public Python API of pyliveupdate)
    "ours_idle": ("ours", "IdleStub", "pyliveupdate stub started, nothing applied"),
    "ours_fp_one_monitoring": ("ours", "FuncTimingOne", "pyliveupdate FP, sys.monitoring source"),
    "ours_fp_one_frame": ("ours", "FuncTimingOneFrame", "pyliveupdate FP, PEP 523 frame source"),
    "ours_fp_all_monitoring": ("ours", "FuncTimingAll", "pyliveupdate FP, sys.monitoring source"),
    "ours_fp_all_frame": ("ours", "FuncTimingAllFrame", "pyliveupdate FP, PEP 523 frame source"),
    "ours_lp_one": ("ours", "LineTimingOne", "pyliveupdate LP"),
    "ours_fd_one": ("ours", "FuncDebugOne", "pyliveupdate FD, rate-limited"),
    # peers
    "cprofile": ("stdlib_profilers", "CProfile", "cProfile (whole program)"),
    "yappi": ("yappi_peer", "Yappi", "yappi (whole program, wall clock)"),
    "pyinstrument": ("pyinstrument_peer", "Pyinstrument", "pyinstrument (sampling, 1 ms)"),
    "line_profiler": ("line_profiler_peer", "LineProfilerPeer", "line_profiler LineProfiler"),
    "hand_print": ("hand_print", "HandPrint", "print added by hand, same rate limit"),
    # floors: a C callback that does nothing, on the events the case needs
    "floor_fp_one": ("floor", "FloorFuncOne", "no-op C callback, call events of the hot function"),
    "floor_fp_all": ("floor", "FloorFuncAll", "no-op C callback, call events everywhere"),
    "floor_lp_one": ("floor", "FloorLinesOne", "no-op C callback, line+call events of the hot function"),
    # the original PyLiveUpdate 0.3.1 (its own Python, 3.9)
    "original_fp_one": ("original", "OriginalFuncProfiler", "PyLiveUpdate 0.3.1 FuncProfiler"),
    "original_lp_one": ("original", "OriginalLineProfiler", "PyLiveUpdate 0.3.1 LineProfiler"),
}


def make(variant, workload):
    try:
        module_name, class_name, _ = VARIANTS[variant]
    except KeyError:
        raise ValueError("unknown variant %r (known: %s)" % (variant, ", ".join(VARIANTS)))
    module = importlib.import_module("peers." + module_name)
    return getattr(module, class_name)(workload)


def label(variant):
    return VARIANTS[variant][2]
