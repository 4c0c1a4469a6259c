"""`.folded`: one line per call path, `frame;frame;frame <self ns>` (integers, as the
classic flamegraph tools want). Values are self times, so stacks are never double counted."""
from __future__ import annotations

from .model import Node, Report


def frame_name(name: str) -> str:
    return name.replace(";", ":").replace("\n", " ")


def folded_stacks(report: Report):
    """(stack tuple, self ns) for every call path with self time."""
    for p in report.processes:
        for t in p.threads:
            yield from _walk(t.root, (frame_name(t.key),))


def _walk(node: Node, prefix: tuple):
    for child in node.children:
        stack = prefix + (frame_name(child.function),)
        if child.self > 0:
            yield stack, child.self
        yield from _walk(child, stack)


def render_folded(report: Report) -> str:
    return "".join("%s %d\n" % (";".join(stack), value) for stack, value in folded_stacks(report))
