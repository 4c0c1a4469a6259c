"""`--format perfetto`: a timeline in the Chrome trace-event JSON format, which
ui.perfetto.dev and chrome://tracing open (gzipped when large: both read .json.gz).

One complete slice ("ph": "X") per recorded call and, where line timing was on, per
profiled line inside it; each generator/coroutine resume is its own slice, so suspended
time is not drawn as running. Processes and threads carry their names as metadata;
debugger and handler output are instant events with their text; dropped records are
instant events that say how many. Times are µs (3 decimals: exact ns) since the earliest
log's start, so processes line up.

Unlike the other formats this one needs every event, not the aggregated tree: it reads
each process's log again (`ProcessProfile.source`) and keeps a stack per thread.
"""
from __future__ import annotations

import io
import json
import linecache
import struct

from .model import ProcessProfile, Report

CALL, RESUME, RETURN, YIELD, UNWIND, LINE, LINE_MARK = range(1, 8)
EVENT = struct.Struct("<qIIIHH")          # DESIGN.md §3: ts_ns, code_id, line, thread, kind
TEXT_KINDS = {1: "debug", 2: "handler", 3: "engine"}
DEFAULT_MAX_SLICES = 1_000_000
INSTANT_NAME_CHARS = 80


def _us(ns: int) -> str:
    """ns as µs with three decimals, exactly (no float rounding)."""
    sign = "-" if ns < 0 else ""
    q, r = divmod(abs(ns), 1000)
    return "%s%d.%03d" % (sign, q, r)


class _Frame:
    __slots__ = ("code", "start", "resumed", "drawn", "line", "line_start")

    def __init__(self, code: int, start: int, resumed: bool, drawn: bool = True):
        self.code, self.start, self.resumed, self.drawn = code, start, resumed, drawn
        self.line = 0              # the open line slice of this frame (0: none)
        self.line_start = 0


class _Writer:
    """Writes events as JSON into `out`, buffered, and counts slices."""

    FLUSH_EVERY = 4096

    def __init__(self, out):
        self.out = out
        self.slices = 0
        self.pending: list[str] = []
        self.written = False

    def event(self, ev: dict) -> None:
        self.pending.append(json.dumps(ev, separators=(",", ":"), ensure_ascii=False))
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def slice(self, text: str) -> None:
        """A slice whose JSON was formatted by the caller (the hot path)."""
        self.pending.append(text)
        self.slices += 1
        if len(self.pending) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write((",\n" if self.written else "\n") + ",\n".join(self.pending))
            self.written = True
            self.pending = []


class _ProcessTimeline:
    """Turns one process's event stream into trace events."""

    def __init__(self, proc: ProcessProfile, writer: _Writer, offset_ns: int,
                 window: tuple[int | None, int | None], allowed: set[int] | None,
                 budget: int):
        self.proc = proc
        self.w = writer
        self.offset = offset_ns
        self.lo = window[0] if window[0] is not None else -(1 << 62)
        self.hi = window[1] if window[1] is not None else 1 << 62
        self.allowed = allowed
        self.budget = budget          # slices this process may still draw
        self.stacks: dict[int, list[_Frame]] = {}
        self.last_ts: dict[int, int] = {}
        self.heads: dict[tuple, tuple[str, str]] = {}    # (thread, code) -> JSON around ts
        self.line_heads: dict[tuple, tuple[str, str]] = {}   # (thread, code, line) -> same
        self.codes: dict[int, tuple] = {}
        self.tids: dict[int, int] = {}
        self.drops: dict[int, int] = {}
        self.capped_at: int | None = None
        self.stray_lines = 0

    # ---- metadata ----
    def tid(self, thread: int) -> int:
        # OS thread ids when the log has them; log thread numbers stay apart from them
        return self.tids.get(thread, 1_000_000_000 + thread)

    def meta(self, m: tuple) -> None:
        kind = m[0]
        pid = self.proc.pid
        if kind == "code":
            _, code_id, qualname, filename, firstlineno, module = m
            self.codes[code_id] = (qualname, filename, firstlineno, module)
            for cache in (self.heads, self.line_heads):
                for key in [k for k in cache if k[1] == code_id]:
                    del cache[key]
        elif kind == "thread":
            _, thread, os_tid, name = m
            if os_tid:
                self.tids[thread] = os_tid
            if self.allowed is None or thread in self.allowed:
                self.w.event({"ph": "M", "name": "thread_name", "pid": pid,
                              "tid": self.tid(thread), "args": {"name": name}})
        elif kind == "text":
            _, thread, ts, text_kind, text = m
            if (self.allowed is None or thread in self.allowed) and self.lo <= ts <= self.hi:
                text = str(text)
                first = text.splitlines()[0] if text else ""
                if len(first) > INSTANT_NAME_CHARS:
                    first = first[:INSTANT_NAME_CHARS - 1] + "\u2026"
                self.w.event({"ph": "i", "s": "t", "name": first or "(empty line)",
                              "cat": TEXT_KINDS.get(text_kind, "text"), "pid": pid,
                              "tid": self.tid(thread), "ts": float(_us(ts + self.offset)),
                              "args": {"text": text}})
        elif kind == "drop":
            _, thread, count = m
            new = count - self.drops.get(thread, 0)
            if new > 0:
                self.drops[thread] = count
                self.gap(thread, new)

    def gap(self, thread: int, lost: int) -> None:
        """Records were lost on `thread`: close its slices there and mark the place."""
        ts = self.last_ts.get(thread, 0)
        self.close_all(thread, ts, "cut where records were dropped")
        if (self.allowed is None or thread in self.allowed) and self.lo <= ts <= self.hi:
            self.w.event({"ph": "i", "s": "t", "name": "DROPPED %d records" % lost,
                          "cat": "drop", "pid": self.proc.pid, "tid": self.tid(thread),
                          "ts": float(_us(ts + self.offset)),
                          "args": {"dropped": lost, "note": "the ring was full; calls around "
                                   "here are missing or cut"}})

    # ---- slices ----
    def name(self, code: int) -> str:
        qualname, _filename, _first, module = self.code_info(code)
        return "%s.%s" % (module, qualname) if module else qualname

    def code_info(self, code: int) -> tuple:
        return self.codes.get(code, ("<code %d>" % code, "", 0, ""))

    def head(self, thread: int, code: int) -> tuple[str, str]:
        """The JSON of a function slice of `code` on `thread` around its times:
        (up to "ts":, from the args on)."""
        key = (thread, code)
        got = self.heads.get(key)
        if got is None:
            _qualname, filename, firstlineno, _module = self.code_info(code)
            got = self.heads[key] = (
                '{"ph":"X","cat":"function","name":%s,"pid":%d,"tid":%d,"ts":'
                % (json.dumps(self.name(code), ensure_ascii=False), self.proc.pid,
                   self.tid(thread)),
                ',"args":{"file":%s' % json.dumps("%s:%d" % (filename or "?", firstlineno),
                                                  ensure_ascii=False))
        return got

    def emit(self, head: str, start: int, end: int, args: str) -> None:
        if end < self.lo or start > self.hi:
            return
        if start < self.lo:
            start = self.lo
        if end > self.hi:
            end = self.hi
        self.budget -= 1
        start += self.offset
        dur = end - start + self.offset
        # µs with three decimals, as _us (inlined: this runs once per slice)
        self.w.slice('%s%d.%03d,"dur":%d.%03d%s}' % (head, start // 1000, start % 1000,
                                                    dur // 1000, dur % 1000, args))

    def close_line(self, thread: int, f: _Frame, ts: int, note: str = "") -> None:
        if not f.line:
            return
        key = (thread, f.code, f.line)
        got = self.line_heads.get(key)
        if got is None:
            _qualname, filename, _first, _mod = self.code_info(f.code)
            source = linecache.getline(filename, f.line).strip() if filename else ""
            args = {"function": self.name(f.code), "line": f.line}
            if source:
                args["source"] = source
            got = self.line_heads[key] = (
                '{"ph":"X","cat":"line","name":"line %d","pid":%d,"tid":%d,"ts":'
                % (f.line, self.proc.pid, self.tid(thread)),
                ',"args":' + json.dumps(args, ensure_ascii=False)[:-1])
        head, args = got
        if note:
            args += ',"note":%s' % json.dumps(note)
        self.emit(head, f.line_start, ts, args + "}")
        f.line = 0

    def close_frame(self, thread: int, f: _Frame, ts: int, note: str = "") -> None:
        if f.line:
            self.close_line(thread, f, ts, note)
        if not f.drawn:
            return
        head, args = self.head(thread, f.code)
        if f.resumed:
            args += ',"resumed":true'
        if note:
            args += ',"note":%s' % json.dumps(note)
        self.emit(head, f.start, ts, args + "}")

    def close_all(self, thread: int, ts: int, note: str) -> None:
        stack = self.stacks.get(thread)
        while stack:
            self.close_frame(thread, stack.pop(), ts, note)

    # ---- events ----
    def feed(self, events: bytes) -> bool:
        """Process packed events; False once this process's slice budget is spent."""
        allowed = self.allowed
        stacks = self.stacks
        last_ts = self.last_ts
        for ts, code, line, thread, kind, _pad in EVENT.iter_unpack(events):
            if allowed is not None and thread not in allowed:
                continue
            if self.budget <= 0:
                self.capped_at = ts
                return False
            last_ts[thread] = ts
            stack = stacks.get(thread)
            if stack is None:
                stack = stacks[thread] = []
            if kind == CALL or kind == RESUME:
                stack.append(_Frame(code, ts, kind == RESUME))
            elif kind == RETURN or kind == YIELD or kind == UNWIND:
                i = len(stack)
                while i > 0 and stack[i - 1].code != code:
                    i -= 1
                if i == 0:
                    continue        # its call began before recording: nothing to draw
                while len(stack) >= i:
                    f = stack.pop()
                    self.close_frame(thread, f, ts,
                                     "" if len(stack) == i - 1 else "closed without its return")
            elif kind == LINE or kind == LINE_MARK:
                if stack and stack[-1].code == code:
                    f = stack[-1]
                elif not stack:       # a frame that began before recording: lines only
                    f = _Frame(code, ts, False, drawn=False)
                    stack.append(f)
                else:
                    self.stray_lines += 1
                    continue
                self.close_line(thread, f, ts)
                if kind == LINE and line:
                    f.line, f.line_start = line, ts
        return True

    def finish(self) -> None:
        """Slices still open at the end (or where the cap stopped us) end there."""
        note = ("still running at end of log" if self.capped_at is None
                else "cut: --max-slices reached")
        for thread in list(self.stacks):
            end = self.last_ts.get(thread, 0)
            if self.capped_at is not None:
                end = max(end, self.capped_at)
            self.close_all(thread, end, note)


def write_perfetto(report: Report, out, max_slices: int = DEFAULT_MAX_SLICES) -> list[str]:
    """Write the trace to the text stream `out`; returns notes (the cap, skipped processes)."""
    notes: list[str] = []
    procs = [p for p in report.processes if p.source is not None]
    starts = {p.pid: int(p.header.get("start_unix_ns") or 0) for p in procs}
    base = min(starts.values(), default=0)
    w = _Writer(out)
    out.write('{"displayTimeUnit":"ns","traceEvents":[')
    for p in report.processes:
        if p.source is None:
            notes.append("process %d: no event source; not drawn" % p.pid)
    for index, proc in enumerate(procs):
        # an equal share of what is left, so one busy process cannot take the whole cap
        share = max(1, (max_slices - w.slices) // (len(procs) - index))
        allowed = proc.thread_filter
        w.event({"ph": "M", "name": "process_name", "pid": proc.pid,
                 "args": {"name": "%s (pid %d)" % (proc.program, proc.pid)}})
        w.event({"ph": "M", "name": "process_labels", "pid": proc.pid,
                 "args": {"labels": " ".join(str(a) for a in proc.header.get("argv") or [])}})
        timeline = _ProcessTimeline(proc, w, starts[proc.pid] - base, report.window, allowed,
                                    share)
        for events, metas in proc.source():
            for m in metas:
                if m[0] != "drop":
                    timeline.meta(m)
            if events and not timeline.feed(events):
                break
            # as aggregate.consume: the gap fell somewhere in this chunk; close after it
            for m in metas:
                if m[0] == "drop":
                    timeline.meta(m)
        timeline.finish()
        if timeline.capped_at is not None:
            notes.append("--max-slices %d: process %d drawn up to %.3f s of its log only; later "
                         "calls are not in the timeline (narrow it with --start/--end, --pid, "
                         "--thread, or raise --max-slices)"
                         % (max_slices, proc.pid, timeline.capped_at / 1e9))
            w.event({"ph": "i", "s": "p", "name": "--max-slices reached: later calls not drawn",
                     "pid": proc.pid, "tid": 0, "cat": "note",
                     "ts": float(_us(timeline.capped_at + starts[proc.pid] - base))})
        if timeline.stray_lines:
            notes.append("process %d: %d line events outside their frame were not drawn"
                         % (proc.pid, timeline.stray_lines))
    w.flush()
    out.write('\n],"otherData":%s}\n' % json.dumps({
        "producer": "pylu-processlogs", "start_unix_ns": base,
        "programs": report.programs_line(), "filters": report.notes,
        "warnings": report.warnings, "notes": notes, "slices": w.slices}))
    return notes


def render_perfetto(report: Report, max_slices: int = DEFAULT_MAX_SLICES) -> str:
    out = io.StringIO()
    write_perfetto(report, out, max_slices)
    return out.getvalue()

