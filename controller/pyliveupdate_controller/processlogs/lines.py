"""Line report (`.lines`): per line-profiled function, its source with hits, total time,
time per hit and percent per line, as line_profiler users expect to read it."""
from __future__ import annotations

import inspect
import linecache
from dataclasses import dataclass

from .model import CodeInfo, LineStat, ProcessProfile, Report


@dataclass
class FunctionLines:
    pid: int
    info: CodeInfo
    stats: dict[int, LineStat]     # merged over the selected threads

    @property
    def total(self) -> int:
        return sum(s.total for s in self.stats.values())


def function_lines(proc: ProcessProfile) -> list[FunctionLines]:
    out = []
    for code_id, per_thread in proc.lines.items():
        merged: dict[int, LineStat] = {}
        for stats in per_thread.values():
            for line, s in stats.items():
                m = merged.setdefault(line, LineStat())
                m.hits += s.hits
                m.total += s.total
        if merged:
            out.append(FunctionLines(proc.pid, proc.code(code_id), merged))
    out.sort(key=lambda f: (-f.total, f.info.function))
    return out


def _source(info: CodeInfo, stats: dict[int, LineStat]) -> list[tuple[int, str]]:
    """(line number, text) of the function, or of the profiled lines when no source."""
    lines = linecache.getlines(info.filename) if info.filename else []
    first = info.firstlineno
    if lines and 0 < first <= len(lines):
        try:
            block = inspect.getblock(lines[first - 1:])
        except (SyntaxError, IndentationError, Exception):
            block = lines[first - 1:max(stats) if stats else first]
        last = max([first + len(block) - 1] + list(stats))
        return [(n, lines[n - 1].rstrip("\n") if n <= len(lines) else "")
                for n in range(first, last + 1)]
    return [(n, "<source not available>") for n in sorted(stats)]


def render_function(fl: FunctionLines) -> str:
    total = fl.total
    head = ("Line #", "Hits", "Time (ms)", "Per hit (ms)", "% Time", "Line contents")
    out = ["Function: %s" % fl.info.function,
           "File: %s, line %d   (process %d)" % (fl.info.filename or "?", fl.info.firstlineno, fl.pid),
           "Total time: %.6f s" % (total / 1e9), "",
           "%6s %10s %12s %13s %7s  %s" % head, "=" * 72]
    for n, text in _source(fl.info, fl.stats):
        s = fl.stats.get(n)
        if s is None:
            out.append("%6d %10s %12s %13s %7s  %s" % (n, "", "", "", "", text))
            continue
        per_hit = "%.4f" % (s.total / s.hits / 1e6) if s.hits else "-"
        share = "%.1f" % (100.0 * s.total / total) if total else "0.0"
        out.append("%6d %10d %12.3f %13s %7s  %s" % (n, s.hits, s.total / 1e6, per_hit, share, text))
    return "\n".join(out) + "\n"


def render_lines(report: Report) -> str:
    parts = ["pyliveupdate line report: time of a line includes the calls it makes; "
             "% of the function's profiled lines\n"]
    for note in report.notes:
        parts.append("filter: %s\n" % note)
    for proc in report.processes:
        for fl in function_lines(proc):
            parts.append("\n" + render_function(fl))
    return "".join(parts)
