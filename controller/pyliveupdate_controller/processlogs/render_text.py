"""`.text`: what debuggers and handlers printed into the log (FD/LD/VD output, handler
output, engine reports), per process in log order, with time and thread."""
from __future__ import annotations

from .model import Report

KINDS = {1: "debug", 2: "handler", 3: "engine"}


def render_text(report: Report) -> str:
    out = ["pyliveupdate text output: [ms since log start] process-thread kind: text"]
    for proc in report.processes:
        names = dict(proc.thread_names)
        out.append("")
        out.append("== process %d  (%s)" % (proc.pid, proc.path))
        for thread, ts, kind, text in proc.texts:
            prefix = "[%12.3f] %d-%s %s: " % (ts / 1e6, proc.pid, names.get(thread, thread),
                                             KINDS.get(kind, "kind %d" % kind))
            lines = str(text).splitlines() or [""]
            out.append(prefix + lines[0])
            out.extend(" " * len(prefix) + line for line in lines[1:])
    return "\n".join(out) + "\n"
