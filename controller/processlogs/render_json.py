"""`--format json`: the call tree for scripts and tests (times in integer nanoseconds)."""
from __future__ import annotations

import json

from .lines import function_lines
from .model import Node, Report


def node_dict(node: Node) -> dict:
    return {"function": node.function, "file": node.file, "line": node.line,
            "hits": node.hits, "slices": node.slices, "total": node.total, "self": node.self,
            "children": [node_dict(c) for c in node.children]}


def report_dict(report: Report) -> dict:
    procs = []
    for p in report.processes:
        threads = [{"thread": t.thread, "name": t.name, "os_tid": t.os_tid, "key": t.key,
                    "total": t.total, "dropped": t.dropped,
                    "open": [{"stack": f.stack, "started": f.started_ns, "running": f.running_ns}
                             for f in t.open_frames],
                    "children": [node_dict(c) for c in t.root.children]}
                   for t in p.threads]
        lines = [{"function": fl.info.function, "file": fl.info.filename,
                  "line": fl.info.firstlineno,
                  "lines": [{"line": n, "hits": s.hits, "total": s.total}
                            for n, s in sorted(fl.stats.items())]}
                 for fl in function_lines(p)]
        procs.append({"pid": p.pid, "path": p.path, "complete": p.complete, "events": p.events,
                      "duration": p.duration_ns, "dropped": p.dropped, "warnings": p.warnings,
                      "threads": threads, "line_profiles": lines})
    return {"unit": "ns", "filters": report.notes, "processes": procs}


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=1) + "\n"
