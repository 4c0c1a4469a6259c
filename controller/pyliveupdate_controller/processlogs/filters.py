"""Processors: narrow a `Report` before rendering (process, thread, min percent, top N).

The time window is applied earlier, while aggregating (slices are clipped to it).
"""
from __future__ import annotations

import fnmatch
import re

from .model import Node, Report, ThreadProfile


def select_processes(report: Report, pids: list[int]) -> None:
    if not pids:
        return
    wanted = set(pids)
    report.processes = [p for p in report.processes if p.pid in wanted]
    report.notes.append("processes: %s" % ", ".join(str(p) for p in sorted(wanted)))


def program_matches(program: str, wanted: str) -> bool:
    """`webservice.py` is matched by `webservice.py`, `webservice` and globs such as `web*`."""
    stem = program[:-3] if program.endswith(".py") else program
    return wanted in (program, stem) or fnmatch.fnmatchcase(program, wanted)


def select_programs(report: Report, names: list[str]) -> None:
    """Keep the processes of the named programs (see `program_matches`)."""
    if not names:
        return
    report.processes = [p for p in report.processes
                        if any(program_matches(p.program, n) for n in names)]
    report.notes.append("programs: %s" % ", ".join(names))


def select_threads(report: Report, threads: list[str]) -> None:
    """Keep threads whose name, OS thread id or log thread number matches one given."""
    if not threads:
        return
    wanted = set(threads)
    for proc in report.processes:
        proc.threads = [t for t in proc.threads
                        if t.name in wanted or str(t.os_tid) in wanted or str(t.thread) in wanted]
        kept = {t.thread for t in proc.threads}
        kept.update(n for n, name in proc.thread_names.items() if name in wanted)
        proc.thread_filter = kept
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
            _prune(t.root, lambda n, floor=floor: n.total >= floor and n.total > 0)
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


_NUMBER = re.compile(r"\d+")


def thread_family(name: str) -> str:
    """`Thread-175 (process_request_thread)` -> `Thread-* (process_request_thread)`."""
    return _NUMBER.sub("*", name)


def merge_threads(report: Report, mode: str) -> None:
    """'each': every thread apart; 'name': threads whose names differ only in numbers
    merge (thread-per-request servers); 'all': one tree per process."""
    if mode == "each":
        return
    merged_any = False
    for proc in report.processes:
        groups: dict[str, list[ThreadProfile]] = {}
        for t in proc.threads:
            key = "all threads" if mode == "all" else thread_family(t.name)
            groups.setdefault(key, []).append(t)
        threads = []
        for key, members in groups.items():
            if len(members) == 1:
                threads.append(members[0])
                continue
            merged_any = True
            first = members[0]
            root = Node("<root>", "", 0)
            for t in members:
                root.merge_from(t.root)
            for _depth, node in root.walk():
                node.children.sort(key=lambda n: (-n.total, n.function))
            threads.append(ThreadProfile(
                pid=proc.pid, thread=first.thread, os_tid=None,
                name="%s [%d threads]" % (key, len(members)), root=root,
                open_frames=[f for t in members for f in t.open_frames],
                dropped=sum(t.dropped for t in members),
                unmatched_closes=sum(t.unmatched_closes for t in members),
                forced_closes=sum(t.forced_closes for t in members),
                gap_closes=sum(t.gap_closes for t in members),
                first_ns=min(t.first_ns for t in members),
                last_ns=max(t.last_ns for t in members),
                members=[t.thread for t in members]))
        proc.threads = threads
    if merged_any:
        report.notes.append("threads merged: %s" % (
            "all threads of a process" if mode == "all"
            else "threads whose names differ only in numbers (--threads each to keep them apart)"))
