"""`.folded`: one line per call path, `frame;frame;frame <self ns>` (integers, as the
classic flamegraph tools want). Values are self times, so stacks are never double counted."""
from __future__ import annotations

from .model import Report


def frame_name(name: str) -> str:
    return name.replace(";", ":").replace("\n", " ")


def folded_stacks(report: Report):
    """(stack tuple, self ns) for every call path with self time."""
    for p in report.processes:
        for t in p.threads:
            head = (frame_name(t.key),)
            for path, node in t.root.paths():
                if node.self > 0:
                    yield head + tuple(frame_name(n.function) for n in path), node.self


def render_folded(report: Report) -> str:
    return "".join("%s %d\n" % (";".join(stack), value) for stack, value in folded_stacks(report))
