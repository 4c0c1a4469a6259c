"""Processors: narrow a `Report` before rendering (process, thread, min percent, top N).

The time window is applied earlier, while aggregating (slices are clipped to it).
"""
from __future__ import annotations

from .model import Node, Report


def select_processes(report: Report, pids: list[int]) -> None:
    if not pids:
        return
    wanted = set(pids)
    report.processes = [p for p in report.processes if p.pid in wanted]
    report.notes.append("processes: %s" % ", ".join(str(p) for p in sorted(wanted)))


def select_threads(report: Report, threads: list[str]) -> None:
    """Keep threads whose name, OS thread id or log thread number matches one given."""
    if not threads:
        return
    wanted = set(threads)
    for proc in report.processes:
        proc.threads = [t for t in proc.threads
                        if t.name in wanted or str(t.os_tid) in wanted or str(t.thread) in wanted]
        kept = {t.thread for t in proc.threads}
        for per_thread in proc.lines.values():
            for thread in list(per_thread):
                if thread not in kept:
                    del per_thread[thread]
    report.notes.append("threads: %s" % ", ".join(sorted(wanted)))


def _prune(root: Node, keep) -> None:
    for _depth, node in root.walk():      # walk reads children after we filter them
        node.children = [c for c in node.children if keep(c)]


def min_percent(report: Report, percent: float) -> None:
    """Hide call paths under `percent` of their thread's total time."""
    if percent <= 0:
        return
    for proc in report.processes:
        for t in proc.threads:
            floor = t.total * percent / 100.0
            _prune(t.root, lambda n: n.total >= floor and n.total > 0)
    report.notes.append("call paths under %g%% of their thread hidden" % percent)


def top(report: Report, n: int) -> None:
    """Keep the `n` heaviest children of every node (children are sorted by time)."""
    if n <= 0:
        return

    for proc in report.processes:
        for t in proc.threads:
            for _depth, node in t.root.walk():
                node.children = sorted(node.children, key=lambda c: (-c.total, c.function))[:n]
    report.notes.append("only the %d heaviest callees of each call path shown" % n)
