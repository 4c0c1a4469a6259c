"""Turn the bench's results (a dict, also written as JSON) into the markdown tables."""
import report_others
import workloads
from peers import label

# The rows of issue 7's table: (case, [(who, variant)]). cProfile and yappi always
# profile the whole program; the same measurement fills both function-profiling rows.
ROWS = [
    ("noise control: baseline against baseline", [("—", "control")]),
    ("idle: stub started, nothing applied", [("ours", "ours_idle")]),
    ("function profiling, one hot function", [
        ("ours, sys.monitoring", "ours_fp_one_monitoring"),
        ("ours, PEP 523 frame hook", "ours_fp_one_frame"),
        ("cProfile (whole program)", "cprofile"),
        ("yappi (whole program)", "yappi"),
        ("floor: no-op C callback, same events", "floor_fp_one")]),
    ("function profiling, whole program", [
        ("ours, sys.monitoring", "ours_fp_all_monitoring"),
        ("ours, PEP 523 frame hook", "ours_fp_all_frame"),
        ("cProfile", "cprofile"),
        ("yappi", "yappi"),
        ("pyinstrument (sampling, reference)", "pyinstrument"),
        ("floor: no-op C callback, same events", "floor_fp_all")]),
    ("line profiling, one hot function", [
        ("ours", "ours_lp_one"),
        ("line_profiler 5.1 (LineProfiler)", "line_profiler"),
        ("floor: no-op C callback, line+call events", "floor_lp_one")]),
    ("debugging output, one function, rate-limited", [
        ("ours (FuncDebugger)", "ours_fd_one"),
        ("a print added by hand (floor)", "hand_print")]),
]

ORIGINAL_ROWS = [
    ("function profiling, one hot function", [("PyLiveUpdate 0.3.1 FuncProfiler", "original_fp_one")]),
    ("line profiling, one hot function", [("PyLiveUpdate 0.3.1 LineProfiler", "original_lp_one")]),
]


class _Notes(object):
    """Numbered footnotes for cells that hold a reason instead of a ratio."""

    def __init__(self):
        self.texts = []

    def ref(self, text):
        text = " ".join(text.split())
        if len(text) > 300:
            text = text[:297] + "..."
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


def _ratio(stats):
    fmt = "%.0f× (%.0f–%.0f)" if stats["median"] >= 100 else "%.2f× (%.2f–%.2f)"
    return fmt % (stats["median"], stats["min"], stats["max"])


def cell_text(cell, notes, wall=False):
    if cell is None:
        return "not run"
    if "median" in cell:
        text = _ratio(cell)
        if wall and cell.get("wall"):
            text = "CPU %s, wall %s" % (text, _ratio(cell["wall"]))
        if "error" in cell:  # failed in a later round
            text += " [%d]" % notes.ref(cell["error"])
        return text
    if "unavailable" in cell:
        return "n/a [%d]" % notes.ref(cell["unavailable"])
    if "error" in cell:
        return "failed [%d]" % notes.ref(cell["error"])
    return "not run"


def _table(rows, cells, names, notes, wall=False):
    out = ["| case | tool | " + " | ".join(names) + " |",
           "|---|---|" + "---|" * len(names)]
    for case, tools in rows:
        for i, (who, variant) in enumerate(tools):
            line = [case if i == 0 else "", who]
            for name in names:
                line.append(cell_text(cells.get(name, {}).get(variant), notes, wall))
            out.append("| " + " | ".join(line) + " |")
    return out


# (case, ours, the peer users pick for it)
VERSUS = [
    ("function profiling, one function", "ours_fp_one_monitoring", "cprofile"),
    ("function profiling, whole program", "ours_fp_all_monitoring", "cprofile"),
    ("function profiling, whole program", "ours_fp_all_monitoring", "yappi"),
    ("line profiling, one function", "ours_lp_one", "line_profiler"),
    ("debug output, rate-limited", "ours_fd_one", "hand_print"),
]


def _versus(cells, names):
    """Ours against the peer, per workload: both medians and how many times faster
    the program runs under ours (peer ratio / our ratio; below 1: we are behind)."""
    out = ["| case | ours vs | " + " | ".join(names) + " |",
           "|---|---|" + "---|" * len(names)]
    for case, ours, peer in VERSUS:
        row = []
        for name in names:
            a = (cells.get(name, {}).get(ours) or {}).get("median")
            b = (cells.get(name, {}).get(peer) or {}).get("median")
            if a is None or b is None:
                row.append("—")
            else:
                row.append("%.2f× vs %.2f×: **%s**" % (
                    a, b, ("%.1f× faster" % (b / a)) if b >= a else ("%.1f× slower" % (a / b))))
        out.append("| %s | %s | %s |" % (case, peer, " | ".join(row)))
    return out


def _events_table(cells, names):
    """What our rows recorded: events, drops, bytes per event on disk, and the flusher's
    CPU per event (issue 18: <= 10 ns on fib and loop)."""
    out = []
    for variant in ("ours_fp_one_monitoring", "ours_fp_all_monitoring", "ours_lp_one"):
        row = []
        for name in names:
            info = (cells.get(name, {}).get(variant) or {}).get("info") or {}
            events = info.get("events")
            if events is None:
                row.append("—")
                continue
            bpe = (info.get("bytes_written") or 0) / events if events else 0
            cell = "%s ev, %s dropped, %.2f B/ev" % (events, info.get("dropped"), bpe)
            if info.get("flusher_cpu_ns") is not None and events:
                cell += ", flusher %.1f ns/ev" % (info["flusher_cpu_ns"] / events)
            row.append(cell)
        if any(c != "—" for c in row):
            out.append("| %s | %s |" % (variant, " | ".join(row)))
    if out:
        out = ["| run (last round) | " + " | ".join(names) + " |",
               "|---|" + "---|" * len(names)] + out
    return out


def render(results):
    meta = results["meta"]
    names = meta["workloads"]
    notes = _Notes()
    md = ["# pyliveupdate bench: cost against the tools users pick instead", ""]
    if meta.get("partial"):
        md += ["**Partial: the run was still going (or was stopped) when this was written; "
               "sections below the ones shown had not run.**", ""]
    machine = meta["machine"]
    md.append("Run %s on %s (%s cores, Linux %s, %s); command `%s`, %.0f s. Load "
              "average %s at the start, %s at the end (the machine is shared; see "
              "Method)." % (
                  meta["date"], machine["cpu"], machine["cores"], machine["kernel"],
                  machine["tsc_flags"] or "no TSC flags", meta["command"],
                  meta.get("seconds", 0), machine.get("loadavg_at_start"),
                  machine.get("loadavg_at_end")))
    md.append("Python %s for the main table. Every figure is instrumented time / baseline "
              "time, every run in a fresh process, each instrumented run next to baseline "
              "runs (B t1 t2 t3 B ..., against the mean of the two), %d rounds, tool order "
              "rotating; shown as median (min–max) of the per-round ratios. Time is CPU "
              "time of the whole process (all threads) per unit of work, mean unit of "
              "each run (a helper thread's bursts count): on a shared machine wall time "
              "charges other people's load to "
              "slow tools (wall ratios are in latest.json). Lower is better; 1.00× is "
              "free. Baseline runs last ~%.2f s (%s)." % (
                  meta["python"], meta["rounds"], meta["target_seconds"],
                  "quick mode" if meta["quick"] else "default mode"))
    md += ["", "## Workloads", ""]
    for name in names:
        wl = results["workloads"].get(name, {})
        md.append("- **%s**: %s. Baseline %.1f ms per unit, %s units per run." % (
            name, workloads.description(name), 1000 * wl.get("seconds_per_unit", 0),
            wl.get("repeat", "?")))
    md += ["", "## Ours against the tool users pick (Python %s)" % meta["python"], ""]
    md += _versus(results["cells"], names)
    md += ["", "## Overhead (Python %s)" % meta["python"], ""]
    md += _table(ROWS, results["cells"], names, notes)
    events = _events_table(results["cells"], names)
    if events:
        md += ["", "What our rows recorded:", ""] + events
    extra = results.get("extra_python")
    if extra:
        md += ["", "## Event sources on Python %s" % extra["python"], ""]
        if "error" in extra:
            md.append("Not run: %s" % extra["error"])
        else:
            md.append("Same method, %d rounds; the PEP 523 frame source is allowed on "
                      "3.13." % extra.get("rounds", 0))
            md.append("")
            rows = [(case, [t for t in tools if t[1] in extra["variants"]])
                    for case, tools in ROWS]
            rows = [r for r in rows if r[1]]
            md += _table(rows, extra["cells"], names, notes)
    original = results.get("original")
    if original:
        md += ["", "## The original PyLiveUpdate 0.3.1 (Python %s, ratio to its own "
               "baseline on the same workloads)" % original.get("python", "3.9"), ""]
        if "error" in original:
            md.append("Not run: %s" % original["error"])
        else:
            md.append(original.get("setup_note", ""))
            md.append("")
            md += _table(ORIGINAL_ROWS, original["cells"], names, notes, wall=True)
    others = results.get("other_benches") or {}
    if others:
        md += ["", "## Figures from the other benches", ""]
        md += report_others.render(others)
    if notes.texts:
        md += ["", "## Notes", ""]
        for i, text in enumerate(notes.texts, 1):
            md.append("%d. %s" % (i, text))
    seen = []
    for _, tools in ROWS:
        seen += [v for _, v in tools if v != "control" and v not in seen]
    md += ["", "Tools: " + "; ".join("`%s` = %s" % (v, label(v)) for v in seen) + "."]
    return "\n".join(md) + "\n"
