"""`.summary`: per process and thread, the call tree with hits, time per hit, total, self."""
from __future__ import annotations

from collections import Counter

from .model import ProcessProfile, Report, ThreadProfile

INDENT = "  "


def _ms(ns: float) -> str:
    return "%.3f" % (ns / 1e6)


FLAT_ROWS = 10


def flat_profile(t: ThreadProfile) -> list[tuple[str, int, int, int]]:
    """(function, hits, total, self) summed over every call path, heaviest self first.
    A recursive function's total counts its outermost calls only (no double counting)."""
    agg: dict[str, list[int]] = {}
    active: list[str] = []        # functions on the path to the current node
    for depth, node in t.root.walk():
        if depth == 0:
            continue
        del active[depth - 1:]
        a = agg.setdefault(node.function, [0, 0, 0])
        a[0] += node.hits
        a[2] += node.self
        if node.function not in active:
            a[1] += node.total
        active.append(node.function)
    rows = [(name, h, tot, sf) for name, (h, tot, sf) in agg.items()]
    rows.sort(key=lambda r: (-r[3], r[0]))
    return rows


def _flat_lines(t: ThreadProfile) -> list[str]:
    rows = flat_profile(t)
    if len(rows) < 2:
        return []
    shown = rows[:FLAT_ROWS]
    head = ("function (all call paths)", "hits", "total (ms)", "self (ms)", "self %")
    cells = [(name, str(h), _ms(tot), _ms(sf), "%.1f" % (100.0 * sf / t.total if t.total else 0))
             for name, h, tot, sf in shown]
    width = max(len(head[0]), *(len(c[0]) for c in cells))
    cols = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(1, 5)]
    fmt = "%-" + str(width) + "s" + "".join("  %" + str(c) + "s" for c in cols)
    title = "top %d functions by self time" % len(shown)
    if len(rows) > len(shown):
        title += " (of %d)" % len(rows)
    return ["", title, fmt % head] + [fmt % c for c in cells]


def _thread_lines(t: ThreadProfile) -> list[str]:
    rows = []
    # Two codes with one name under one caller (e.g. before and after a hot patch) get
    # their file and line, so they can be told apart.
    thread_total = t.total
    ambiguous = set()
    for depth, node in t.root.walk():
        if len(node.children) > 1:
            names = Counter(c.function for c in node.children)
            if len(names) < len(node.children):
                ambiguous.update(id(c) for c in node.children if names[c.function] > 1)
        if depth == 0:
            continue
        label = node.function
        if id(node) in ambiguous:      # its parent was visited first, so this is known
            label += " (%s:%d)" % (node.file or "?", node.line)
        name = (INDENT * (depth - 1) + ("-" if depth > 1 else "")) + label
        per_hit = _ms(node.per_hit) if node.per_hit is not None else "-"
        hits = str(node.hits)
        if node.slices > node.hits:
            hits += " (+%d resumed)" % (node.slices - node.hits)
        if node.running:
            hits += " (+%d running)" % node.running
        share = 100.0 * node.total / thread_total if thread_total else 0.0
        rows.append((name, hits, per_hit, _ms(node.total), _ms(node.self), "%.1f" % share))
    head = ("function", "hits", "time/hit (ms)", "total (ms)", "self (ms)", "%")
    out = []
    where = "" if t.members else "  (thread %s%s)" % (
        t.thread, ", os tid %s" % t.os_tid if t.os_tid is not None else "")
    title = "%s%s  total %s ms" % (t.key, where, _ms(t.total))
    out.append(title)
    if rows:
        width = max(len(head[0]), *(len(r[0]) for r in rows))
        cols = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(1, 6)]
        fmt = "%-" + str(width) + "s" + "".join("  %" + str(c) + "s" for c in cols)
        out.append(fmt % head)
        out.extend(fmt % r for r in rows)
        out.extend(_flat_lines(t))
    else:
        out.append("(no completed calls recorded)")
    for frame in t.open_frames:
        out.append("still running at end of log: %s (started at %s ms; its %s ms so far are "
                   "included above)" % (" > ".join(frame.stack), _ms(frame.started_ns),
                                        _ms(frame.running_ns)))
    if t.dropped:
        out.append("DROPPED: %d records lost on this thread (ring full); times and hits "
                   "above are incomplete" % t.dropped)
    if t.gap_closes:
        out.append("note: %d calls were cut where records were dropped" % t.gap_closes)
    if t.unmatched_closes or t.forced_closes:
        out.append("note: %d returns of calls that began before recording, %d calls closed "
                   "without their own return" % (t.unmatched_closes, t.forced_closes))
    return out


def _process_lines(proc: ProcessProfile) -> list[str]:
    argv = proc.header.get("argv")
    if isinstance(argv, (list, tuple)):
        argv = " ".join(str(a) for a in argv)
    out = ["== process %d%s" % (proc.pid, "  (%s)" % argv if argv else ""),
           "log: %s%s  events: %d  span: %s ms%s" % (
               proc.path, "" if len(proc.segments) < 2 else " (+%d segments)"
               % (len(proc.segments) - 1), proc.events, _ms(proc.duration_ns),
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
    out.append("programs: " + report.programs_line())
    for note in report.notes:
        out.append("filter: " + note)
    for proc in report.processes:
        out.append("")
        out.extend(_process_lines(proc))
    return "\n".join(out) + "\n"
