"""`.summary`: per process and thread, the call tree with hits, time per hit, total, self."""
from __future__ import annotations

from .model import ProcessProfile, Report, ThreadProfile

INDENT = "  "


def _ms(ns: float) -> str:
    return "%.3f" % (ns / 1e6)


def _thread_lines(t: ThreadProfile) -> list[str]:
    rows = []
    for depth, node in t.root.walk():
        if depth == 0:
            continue
        name = (INDENT * (depth - 1) + ("-" if depth > 1 else "")) + node.function
        per_hit = _ms(node.per_hit) if node.per_hit is not None else "-"
        hits = str(node.hits)
        if node.slices > node.hits:
            hits += " (+%d resumed)" % (node.slices - node.hits)
        share = 100.0 * node.total / t.total if t.total else 0.0
        rows.append((name, hits, per_hit, _ms(node.total), _ms(node.self), "%.1f" % share))
    head = ("function", "hits", "time/hit (ms)", "total (ms)", "self (ms)", "%")
    out = []
    title = "%s  (thread %s%s)  total %s ms" % (
        t.key, t.thread, ", os tid %s" % t.os_tid if t.os_tid is not None else "", _ms(t.total))
    out.append(title)
    if rows:
        width = max(len(head[0]), *(len(r[0]) for r in rows))
        cols = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(1, 6)]
        fmt = "%-" + str(width) + "s" + "".join("  %" + str(c) + "s" for c in cols)
        out.append(fmt % head)
        out.extend(fmt % r for r in rows)
    else:
        out.append("(no completed calls recorded)")
    for frame in t.open_frames:
        out.append("still running at end of log: %s (started at %s ms, running %s ms, not "
                   "included above)" % (" > ".join(frame.stack), _ms(frame.started_ns),
                                        _ms(frame.running_ns)))
    if t.dropped:
        out.append("DROPPED: %d records lost on this thread (ring full); times and hits "
                   "above are incomplete" % t.dropped)
    if t.unmatched_closes or t.forced_closes:
        out.append("note: %d returns of calls that began before recording, %d calls closed "
                   "without their own return" % (t.unmatched_closes, t.forced_closes))
    return out


def _process_lines(proc: ProcessProfile) -> list[str]:
    argv = proc.header.get("argv")
    if isinstance(argv, (list, tuple)):
        argv = " ".join(str(a) for a in argv)
    out = ["== process %d%s" % (proc.pid, "  (%s)" % argv if argv else ""),
           "log: %s  events: %d  span: %s ms%s" % (
               proc.path, proc.events, _ms(proc.duration_ns),
               "" if proc.complete else "  (INCOMPLETE, see warnings)")]
    if proc.dropped:
        out.append("DROPPED: %d records lost in this process" % proc.dropped)
    for w in proc.warnings:
        out.append("WARNING: " + w)
    for t in sorted(proc.threads, key=lambda t: (-t.total, t.thread)):
        out.append("")
        out.extend(_thread_lines(t))
    return out


def render_summary(report: Report) -> str:
    out = ["pyliveupdate call summary: times in ms; hits = calls; time/hit = total / hits; "
           "self = total minus callees"]
    for note in report.notes:
        out.append("filter: " + note)
    for proc in report.processes:
        out.append("")
        out.extend(_process_lines(proc))
    return "\n".join(out) + "\n"
