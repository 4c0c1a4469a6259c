"""The figures of the other benches (bench_*.py --json) gathered in one markdown table.

Each row names its figure, its value, the target the issues set (if any) and the bench
that measured it. A bench that is missing or failed gets one row saying so; a field a
bench did not report is left out rather than guessed. The raw JSON stays in latest.json.
"""


def _m(events_per_s):
    return "%.1f M/s" % (events_per_s / 1e6)


def _ratio(row):
    return "%.2f× (%.2f–%.2f)" % (row["median"], row["min"], row["max"])


def _ok(met):
    return "met" if met else "**missed**"


def _engine(data):
    for row in data.get("rows", []):
        figure = "engine: %s, %s — %s" % (row["case"], row["source"], row["what"])
        if "refused" in row:
            yield figure, "refused: %s" % row["refused"].split(":")[0], "", ""
            continue
        target = row.get("target")
        yield (figure, "%s, +%.0f ns/call" % (_ratio(row), row["extra_ns_per_call"]),
               "≤ %.2f×" % target if target else "", _ok(row["median"] <= target) if target else "")


def _recording(data):
    s = data["summary"]
    t = s["targets"]
    per_event = data.get("instructions", {}).get("flusher_instructions_per_event", {})
    for name, row in data.get("flusher_traces", {}).items():
        target = t.get("flusher_ns_per_event") if name in ("fib", "loop") else None
        start = row.get("with_start_ns_per_event")
        yield ("recording: flusher CPU per event, %s trace" % name,
               "%.1f ns (%.1f–%.1f)%s%s" % (row["flusher_ns_per_event"], row["spread"]["min"],
                                            row["spread"]["max"],
                                            ", %.0f instructions" % per_event[name]
                                            if name in per_event else "",
                                            "; %.1f ns with the log's start" % start
                                            if start is not None else ""),
               "≤ %.0f ns" % target if target else "",
               _ok(row["flusher_ns_per_event"] <= target) if target else "")
    mem = data.get("ring_memory")
    if mem and "settled_bytes" in mem:
        yield ("recording: memory of 200 threads x 20,000 profiled calls, once idle (peak)",
               "%.1f MB (%.1f MB), %s dropped" % (mem["settled_bytes"] / 1e6,
                                                  mem["peak_bytes"] / 1e6, mem["dropped"]),
               "≤ %.0f MB" % (t["ring_memory_bytes"] / 1e6),
               _ok(mem["settled_bytes"] <= t["ring_memory_bytes"]))
    idle = data.get("idle")
    if idle:
        yield ("recording: an idle recorder, wake-ups and bytes written in a second",
               "%d, %d" % (idle["wakeups_per_s"], idle["bytes_written"]), "0, 0",
               _ok(idle["wakeups_per_s"] == 0 and idle["bytes_written"] == 0))
    yield ("recording: sustained events/s with zero drops, one producer",
           _m(s["sustained_events_per_s"]), "≥ %s" % _m(t["sustained_events_per_s"]),
           _ok(s["sustained_events_per_s"] >= t["sustained_events_per_s"]))
    yield ("recording: bytes per event on disk, real monitoring trace",
           "%.2f" % s["bytes_per_event"], "≤ %.1f" % t["bytes_per_event"],
           _ok(s["bytes_per_event"] <= t["bytes_per_event"]))
    yield ("recording: reader chunks(), events decoded per second",
           _m(s["reader_events_per_s"]), "≥ %s" % _m(t["reader_events_per_s"]),
           _ok(s["reader_events_per_s"] >= t["reader_events_per_s"]))
    cb = data.get("callback")
    if cb:
        yield ("recording: ns per event our callback adds over a no-op C callback "
               "(producer %s)" % ("pinned" if cb.get("producer_pinned") else "not pinned"),
               "%.1f ns (%.1f–%.1f)" % (
                   cb["added_ns_per_event"], cb["spread"]["min"], cb["spread"]["max"]),
               "≤ %.0f ns" % t["added_ns_per_event"],
               _ok(cb["added_ns_per_event"] <= t["added_ns_per_event"]))
    un = data.get("callback_unpinned")
    if un:
        yield ("recording: the same, producer not pinned", "%.1f ns (%.1f–%.1f)" % (
            un["added_ns_per_event"], un["spread"]["min"], un["spread"]["max"]), "", "")
    added = data.get("instructions", {}).get("callback_added_instructions_per_event")
    if added is not None:
        yield ("recording: instructions our callback and record add per event (fib)",
               "%.0f" % added, "", "")
    yield ("recording: flusher throughput per CPU-second",
           _m(s["flusher_events_per_cpu_s"]), "", "")


def _update(data):
    target = data.get("target_ms")
    for case, phases in sorted(data.get("results", {}).items()):
        for phase in ("apply", "revert"):
            p = phases.get(phase)
            if p:
                yield ("updates: %s, %s (median, p90)" % (case, phase),
                       "%.2f ms, %.2f ms" % (p["median_ms"], p["p90_ms"]),
                       "≤ %.0f ms" % target if target else "",
                       _ok(p["median_ms"] <= target) if target else "")
    yield from _update_reach(data)


def _update_reach(data):
    hook = data.get("import_hook")
    if hook:
        yield ("updates: import hook on a program importing %d modules (hook's share)"
               % hook["modules"],
               "%.2f× (%.2f–%.2f), %.1f µs per import (%.2f %%)"
               % (hook["ratio"], hook["ratio_min"], hook["ratio_max"],
                  hook["hook_ns_per_import"] / 1e3, hook["hook_share"] * 100),
               "≤ %.2f×" % hook["target_ratio"], _ok(hook["ratio"] <= hook["target_ratio"]))
    o = data.get("origin")
    if o and "error" in o:
        yield ("updates: finding code by origin, %s.**" % o["package"], o["error"], "", "")
    elif o:
        yield ("updates: resolve %s.** on %s %s (%d modules, %d gc objects)"
               % (o["package"], o["package"], o["version"], o["modules"], o["gc_objects"]),
               "%.1f ms for %d codes (the gc pass by origin alone %.1f ms)"
               % (o["resolve_ms"], o["codes_resolved"], o["scan_ms"]), "", "")


def _controller(data):
    for row in data.get("latency", []):
        yield ("controller: command round trip to %d process%s (p50, p99)"
               % (row["procs"], "" if row["procs"] == 1 else "es"),
               "%.1f ms, %.1f ms; %d failed" % (row["p50_ms"], row["p99_ms"], row["failed"]),
               "", "")
    for name, row in sorted(data.get("idle", {}).items()):
        yield ("controller: idle stub connected, %s" % name, _ratio(row), "", "")


def _processlogs(data):
    target = data.get("target_events_per_s")
    median = data["summary_events_per_s_median"]
    yield ("pylu-processlogs: events per second into the summary", _m(median),
           "≥ %s" % _m(target) if target else "", _ok(median >= target) if target else "")
    rss = data.get("peak_rss_kib_by_events", {})
    if rss:
        yield ("pylu-processlogs: peak RSS by events in the log",
               ", ".join("%s M: %.1f MB" % (int(n) // 1000000, kib / 1024)
                         for n, kib in sorted(rss.items(), key=lambda kv: int(kv[0]))),
               "flat", _ok(data.get("peak_rss_growth_ratio", 9) <= 1.2))


EXTRACTORS = (("bench_recording", _recording), ("bench_update", _update),
              ("bench_processlogs", _processlogs), ("bench_controller", _controller),
              ("bench_engine", _engine))


def render(others):
    """Markdown lines for the results of the other benches."""
    md = ["| figure | value | target | |", "|---|---|---|---|"]
    for name, extract in EXTRACTORS:
        item = others.get(name)
        if item is None:
            continue
        if item.get("missing"):
            md.append("| `bench/%s.py` | missing | | |" % name)
            continue
        if "error" in item:
            md.append("| `bench/%s.py` | failed: %s | | |"
                      % (name, item["error"].replace("|", "/")[:200]))
            continue
        try:
            rows = list(extract(item["json"]))
        except (KeyError, TypeError, ValueError) as exc:
            md.append("| `bench/%s.py` | its JSON lacks %s (see latest.json) | | |" % (name, exc))
            continue
        for figure, value, target, verdict in rows:
            md.append("| %s | %s | %s | %s |" % (figure, value, target, verdict))
    md.append("")
    md.append("Commands and times: " + "; ".join(
        "`%s` %.0f s" % (item.get("command", "bench/%s.py" % name), item["seconds"])
        for name, item in sorted(others.items()) if "seconds" in item) + ". Every figure "
        "of these benches, with spreads, is in latest.json under `other_benches`.")
    return md
