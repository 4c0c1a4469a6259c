"""Aggregate one process's event stream (C) and turn the result into a small tree (Python).

The stream is what `LogReader.chunks()` yields: `(events_bytes, metas)` per zstd frame.
Events go straight into the C `CallTreeBuilder`; metadata (code names, thread names,
drop counts, text records) is collected here. Memory depends on the number of distinct
call paths and lines, not on the number of events.
"""
from __future__ import annotations

from collections.abc import Iterable

from pyliveupdate._reader import CallTreeBuilder

from .model import CodeInfo, LineStat, Node, OpenFrame, ProcessProfile, ThreadProfile


class Metadata:
    """Code, thread, drop and text records seen so far in one log."""

    def __init__(self):
        self.codes: dict[int, CodeInfo] = {}
        self.threads: dict[int, tuple[int | None, str]] = {}
        self.drops: dict[int, int] = {}
        self.texts: list[tuple] = []

    def add(self, meta: tuple) -> None:
        kind = meta[0]
        if kind == "code":
            _, code_id, qualname, filename, firstlineno, module = meta
            self.codes[code_id] = CodeInfo(code_id, qualname, filename, firstlineno, module)
        elif kind == "thread":
            _, thread, os_tid, name = meta
            self.threads[thread] = (os_tid, name)
        elif kind == "drop":
            _, thread, count = meta
            # Counts are cumulative per thread: the largest one is the total.
            self.drops[thread] = max(count, self.drops.get(thread, 0))
        elif kind == "text":
            self.texts.append(meta[1:])


def consume(chunks: Iterable[tuple[bytes, list]], *, start_ns: int | None = None,
            end_ns: int | None = None) -> tuple[CallTreeBuilder, Metadata]:
    """Feed every chunk to a fresh builder; returns it with the metadata collected."""
    builder = CallTreeBuilder(start_ns, end_ns)
    meta = Metadata()
    for events, metas in chunks:
        before = dict(meta.drops)
        for m in metas:
            meta.add(m)
        if events:
            builder.feed(events)
        # Records were lost on these threads somewhere in this chunk: slices open there may
        # never see their end, so close them rather than nest later calls under them.
        # (Approximate within the chunk: chunks() does not say where the gap fell.)
        for thread, count in meta.drops.items():
            if count > before.get(thread, 0):
                builder.gap(thread)
    return builder, meta


def build_process(builder: CallTreeBuilder, meta: Metadata, *, pid: int, path: str,
                  header: dict) -> ProcessProfile:
    """Turn the builder's state into a `ProcessProfile` (threads in first-seen order)."""
    still_open = builder.finish()
    res = builder.result()
    codes = dict(meta.codes)
    proc = ProcessProfile(pid=pid, path=path, header=header, codes=codes, threads=[],
                          lines={}, events=res["events"], texts=meta.texts,
                          thread_names={k: v[1] for k, v in meta.threads.items()})
    raw = res["nodes"]
    # A path is kept when it or one of its descendants has data (children have larger ids).
    keep = [False] * len(raw)
    for i in range(len(raw) - 1, -1, -1):
        parent, _code, hits, slices, total, _self, running, _running_ns = raw[i]
        keep[i] = keep[i] or bool(hits or slices or total or running) or parent < 0
        if keep[i] and parent >= 0:
            keep[parent] = True
    objs: list[Node | None] = [None] * len(raw)
    for i, (parent, code_id, hits, slices, total, self_ns, running, running_ns) in enumerate(raw):
        if parent < 0:
            objs[i] = Node("<root>", "", 0)
        elif keep[i]:
            info = proc.code(code_id)
            objs[i] = Node(info.function, info.filename, info.firstlineno, hits=hits,
                           slices=slices, total=total, self=self_ns, running=running,
                           running_ns=running_ns, code_id=code_id)
    for i, (parent, *_rest) in enumerate(raw):
        if parent >= 0 and objs[i] is not None and objs[parent] is not None:
            objs[parent].children.append(objs[i])
    for t in res["threads"]:
        objs[t["root"]].merge_equal_siblings()
    for node in objs:
        if node is not None:
            node.children.sort(key=lambda n: (-n.total, n.function))

    last_ts = res["last_ts"]
    proc.duration_ns = last_ts
    for t in res["threads"]:
        os_tid, name = meta.threads.get(t["thread"], (None, "thread-%d" % t["thread"]))
        tp = ThreadProfile(pid=pid, thread=t["thread"], os_tid=os_tid, name=name,
                           root=objs[t["root"]], dropped=meta.drops.get(t["thread"], 0),
                           unmatched_closes=t["unmatched_closes"],
                           forced_closes=t["forced_closes"],
                           gap_closes=t["gap_closes"],
                           first_ns=t["first_ts"], last_ns=t["last_ts"])
        stack: list[str] = []
        for node_index, started, _line in still_open.get(t["thread"], []):
            stack.append(proc.code(raw[node_index][1]).function)
            tp.open_frames.append(OpenFrame(list(stack), started, max(0, last_ts - started)))
        proc.threads.append(tp)
    # Threads that only announced themselves or only dropped records still get reported.
    seen = {t.thread for t in proc.threads}
    for thread in sorted(set(meta.drops) | set(meta.threads)):
        if thread not in seen and meta.drops.get(thread):
            os_tid, name = meta.threads.get(thread, (None, "thread-%d" % thread))
            proc.threads.append(ThreadProfile(pid=pid, thread=thread, os_tid=os_tid, name=name,
                                              root=Node("<root>", "", 0),
                                              dropped=meta.drops[thread]))

    # A code body compiled twice (revert and re-apply of a patch) is one function here.
    body_of: dict[tuple, int] = {}
    for thread, code_id, line, hits, total in res["lines"]:
        info = proc.code(code_id)
        body = body_of.setdefault((info.function, info.filename, info.firstlineno), code_id)
        per_thread = proc.lines.setdefault(body, {}).setdefault(thread, {})
        stat = per_thread.setdefault(line, LineStat())
        stat.hits += hits
        stat.total += total
    if res["bad_kinds"]:
        proc.warnings.append("%s: %d records of unknown kind were ignored"
                             % (path, res["bad_kinds"]))
    return proc
