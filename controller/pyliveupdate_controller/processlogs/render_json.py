"""`--format json`: the call tree for scripts and tests (times in integer nanoseconds).

Each node: function (qualified name), file, line, hits, slices, running (slices still open
at the end of the log, charged up to it), total, self, children.
Trees follow the program's recursion, so building and encoding are iterative; a reader
of very deep trees may need a higher recursion limit (`sys.setrecursionlimit`).
"""
from __future__ import annotations

import json

from .lines import function_lines
from .model import Node, Report


def _fields(node: Node) -> dict:
    return {"function": node.function, "file": node.file, "line": node.line,
            "hits": node.hits, "slices": node.slices, "running": node.running,
            "total": node.total, "self": node.self, "children": []}


def node_dicts(nodes: list[Node]) -> list[dict]:
    out = [_fields(n) for n in nodes]
    stack = list(zip(nodes, out))
    while stack:
        node, d = stack.pop()
        for child in node.children:
            cd = _fields(child)
            d["children"].append(cd)
            stack.append((child, cd))
    return out


class _Raw(str):
    """Already-encoded JSON text on the encoder's stack."""


def dumps(obj) -> str:
    """json.dumps without recursion (the stdlib encoder recurses per nesting level)."""
    out: list[str] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Raw("}"))
            entries = list(item.items())
            for i in reversed(range(len(entries))):
                key, value = entries[i]
                stack.append(value)
                stack.append(_Raw((", " if i else "") + json.dumps(str(key)) + ": "))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.append(_Raw("]"))
            for i in reversed(range(len(item))):
                stack.append(item[i])
                if i:
                    stack.append(_Raw(", "))
        else:
            out.append(json.dumps(item))
    return "".join(out)


def report_dict(report: Report) -> dict:
    procs = []
    for p in report.processes:
        threads = [{"thread": t.thread, "name": t.name, "os_tid": t.os_tid, "key": t.key,
                    "total": t.total, "dropped": t.dropped,
                    "open": [{"stack": f.stack, "started": f.started_ns, "running": f.running_ns}
                             for f in t.open_frames],
                    "children": node_dicts(t.root.children)}
                   for t in p.threads]
        lines = [{"function": fl.info.function, "file": fl.info.filename,
                  "line": fl.info.firstlineno,
                  "lines": [{"line": n, "hits": s.hits, "total": s.total}
                            for n, s in sorted(fl.stats.items())]}
                 for fl in function_lines(p)]
        procs.append({"pid": p.pid, "program": p.program, "path": p.path,
                      "segments": p.segments or [p.path], "start_unix_ns": p.header.get("start_unix_ns"),
                      "complete": p.complete, "events": p.events,
                      "duration": p.duration_ns, "dropped": p.dropped, "warnings": p.warnings,
                      "threads": threads, "line_profiles": lines})
    return {"unit": "ns", "programs": report.programs(), "filters": report.notes,
            "processes": procs}


# Up to this call depth the stdlib's C encoder is safe (2 JSON levels per call) and fast.
FAST_DEPTH = 300


def render_json(report: Report) -> str:
    deepest = max((d for p in report.processes for t in p.threads for d, _n in t.root.walk()),
                  default=0)
    doc = report_dict(report)
    return (json.dumps(doc) if deepest <= FAST_DEPTH else dumps(doc)) + "\n"
