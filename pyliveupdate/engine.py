"""Python face of the C engine (docs/DESIGN.md section 4).

The C side (``pyliveupdate._engine``) keeps per-code state and does the per-event work:
timing points are pure C, handler points call one Python dispatcher per code.  This
module decides *what* each code needs: the union of every update's requests on it, the
source of its function records (sys.monitoring or the PEP 523 hook), and the handler
multiplexing (update-id order, "line after" semantics, error counting, time budgets).

Importing this module takes nothing: no tool id, no hook, no watcher until first use.
"""
from __future__ import annotations

import dis
import os
import sys
import threading
import traceback
import types
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from . import _engine
from .updates import validation

__all__ = [
    "Request", "arm", "disarm", "watch", "unwatch", "armed_codes", "status",
    "handler_report", "handler_stats", "set_time_budget", "shutdown", "frame_source_refusal",
    "resolve_source",
    "MAX_CONSECUTIVE_FAILURES",
]

SOURCES = ("auto", "monitoring", "frame")
MAX_CONSECUTIVE_FAILURES = _engine.MAX_CONSECUTIVE_FAILURES

# The deepest recursion the frame hook allows on 3.13 (measured by
# tests/test_engine_frame.py: every Python call then also recurses on the C stack; a
# forwarding hook reaches ~4,990 frames on 3.13.0).  Programs that allow deeper
# recursion get sys.monitoring instead.
FRAME_HOOK_MAX_RECURSION = 4000

_GEN_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


@dataclass(frozen=True, eq=False)
class Request:
    """What one update wants from one code object."""
    func_timing: bool = False
    timing_lines: frozenset = frozenset()
    on_func_begin: Optional[Callable] = None
    on_func_end: Optional[Callable] = None
    on_line_before: Optional[Mapping[int, Callable]] = None
    on_line_after: Optional[Mapping[int, Callable]] = None

    def __post_init__(self):
        object.__setattr__(self, "timing_lines", frozenset(self.timing_lines or ()))
        for name in ("on_func_begin", "on_func_end"):
            f = getattr(self, name)
            if f is not None and not callable(f):
                raise TypeError("Request.%s must be callable, got %r" % (name, f))
        for name in ("on_line_before", "on_line_after"):
            m = getattr(self, name)
            if m is None:
                continue
            if not isinstance(m, Mapping):
                raise TypeError("Request.%s must be a mapping {line: handler}" % name)
            for line, f in m.items():
                if not isinstance(line, int) or isinstance(line, bool):
                    raise TypeError("Request.%s: line %r is not an int" % (name, line))
                if not callable(f):
                    raise TypeError("Request.%s[%d] must be callable, got %r" % (name, line, f))
            object.__setattr__(self, name, dict(m))
        for line in self.timing_lines:
            if not isinstance(line, int) or isinstance(line, bool):
                raise TypeError("Request.timing_lines: %r is not a line number" % (line,))

    def lines(self):
        return (set(self.timing_lines) | set(self.on_line_before or ())
                | set(self.on_line_after or ()))

    def is_empty(self):
        return not (self.func_timing or self.timing_lines or self.on_func_begin
                    or self.on_func_end or self.on_line_before or self.on_line_after)


class _UpdateStats(_engine.HandlerStats):
    """Handler bookkeeping of one update, shared by all its codes.  The counting, the
    time budget and the output gate run in C (dispatch.c); these run on its rare paths."""
    __slots__ = ()

    def report(self):
        return {
            "update_id": self.update_id, "calls": self.calls, "errors": self.errors,
            "consecutive_errors": self.consecutive, "last_error": self.last_error,
            "disabled": self.disabled, "disabled_reason": self.disabled_reason,
            "time_spent_s": self.time_ns / 1e9,
            "time_budget_s": None if self.budget_ns is None else self.budget_ns / 1e9,
            "skipped_while_output_closed": self.skipped,
        }

    def _failed(self, exc):
        self.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    def switch_off(self, reason):
        if self.disabled_reason is not None:
            return
        self.disabled = True
        self.disabled_reason = reason
        _reports.append("update %s: handlers switched off: %s" % (self.update_id, reason))
        del _reports[:-100]
        from .updates import events
        events.report("disabled", self.update_id, reason)   # stderr, controller, log


def _engine_report(text):
    _reports.append(text)
    del _reports[:-100]
    recorder_text = getattr(_engine, "recorder_text", None)
    active = getattr(_engine, "recorder_active", None)
    try:
        if recorder_text is not None and active is not None and active():
            recorder_text(_engine.TEXT_ENGINE, text)
    except Exception:
        pass


class _Armed:
    """One armed code: every update's request on it."""
    __slots__ = ("code", "module", "qualname", "requests", "code_id", "hooked")

    def __init__(self, code, module, qualname):
        self.code = code
        self.module = module
        self.qualname = qualname
        self.requests = {}   # update_id -> (Request, resolved source)
        self.code_id = None
        self.hooked = False


_lock = threading.RLock()
# Keyed by identity: code objects compare equal by content (not by file), so two
# modules' identical functions, or a function and its same-source redefinition, would
# share one entry. The entry holds its code, so the id stays valid while it is armed.
_armed: dict = {}           # id(code) -> _Armed
_stats: dict = {}           # update_id -> _UpdateStats
_watches: dict = {}         # update_id -> (matcher, resolved source)
_reports: list = []
_matcher_errors = {"count": 0, "last": None}
_state = {"frame_refusal": None, "gen_offsets": {}}


# --- sources -----------------------------------------------------------------------

def frame_source_refusal():
    """Why the PEP 523 source cannot be used now, or None if it can."""
    retired = _engine.engine_counters()["frame_hook_retired"]
    if retired is not None:
        return "the frame hook was removed in this process: " + retired
    if sys.version_info < (3, 13):
        return ("the frame hook is refused on Python 3.12: under a hook every Python "
                "call also recurses on the C stack, and recursion then fails near depth "
                "750, below the default limit of 1000")
    limit = sys.getrecursionlimit()
    if limit > FRAME_HOOK_MAX_RECURSION:
        return ("the frame hook is refused: sys.getrecursionlimit() is %d, above the %d "
                "frames the hook allows" % (limit, FRAME_HOOK_MAX_RECURSION))
    return None


def resolve_source(source):
    """"auto" | "monitoring" | "frame" -> (the source used, why "frame" was refused or
    None). "auto" is sys.monitoring: the frame hook costs every call of the program, and
    pays off only when the update covers nearly all of them (bench/bench_update.py,
    "source" rows: with FP on code that makes 100% of the calls, 1.25x vs 1.35x; 50%:
    1.27x vs 1.24x; 10%: 1.34x vs 1.07x; 1%: 1.35x vs 1.01x, CPython 3.13)."""
    if source not in SOURCES:
        raise ValueError("source must be one of %s, got %r" % (", ".join(SOURCES), source))
    if source != "frame":
        return "monitoring", None
    refusal = frame_source_refusal()
    _state["frame_refusal"] = refusal
    return ("monitoring", refusal) if refusal else ("frame", None)


def _resolve(source):
    return resolve_source(source)[0]


def _update_frame_hook():
    want = any(a.hooked for a in list(_armed.values())) or any(
        src == "frame" for _, src in list(_watches.values()))
    installed = _engine.engine_counters()["frame_hook"]
    if want and not installed:
        # C re-checks the limit while installed and gives way to sys.monitoring when it
        # rises, or when a thread's C stack runs low (evalframe.c)
        _engine.frame_hook(True, max_recursion=FRAME_HOOK_MAX_RECURSION, report=_engine_report)
    elif not want and installed:
        _engine.frame_hook(False)


# --- line analysis -----------------------------------------------------------------

def _code_lines(code):
    return {line for _, _, line in code.co_lines() if line is not None}


def _instr_line(ins):
    pos = ins.positions
    return pos.lineno if pos is not None else None


def _following_lines(code, lines):
    """Lines that can start right after one of `lines` finishes: where a slice of those
    lines ends (fall-through, jump targets, exception handlers).  Over-approximates."""
    if not lines:
        return set()
    instrs = list(dis.get_instructions(code))
    by_offset = {ins.offset: n for n, ins in enumerate(instrs)}
    entries = dis.Bytecode(code).exception_entries
    eff = []
    last = None
    for ins in instrs:
        ln = _instr_line(ins)
        last = ln if ln is not None else last
        eff.append(last)
    out = set()

    def land(n):
        while n < len(instrs) and _instr_line(instrs[n]) is None:
            n += 1
        if n < len(instrs):
            out.add(_instr_line(instrs[n]))

    for n, ins in enumerate(instrs):
        if eff[n] not in lines:
            continue
        land(n + 1)
        target = getattr(ins, "jump_target", None)
        if target is None and (ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs):
            target = ins.argval
        if isinstance(target, int) and target in by_offset:
            land(by_offset[target])
        for e in entries:
            if e.start <= ins.offset < e.end and e.target in by_offset:
                land(by_offset[e.target])
    out.discard(None)
    return out


def _gen_start(code):
    if not code.co_flags & _GEN_FLAGS:
        return -1
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_GENERATOR":
            return ins.offset
    return -1


# --- arming ------------------------------------------------------------------------

def _apply(entry):
    """Arm the union of the requests on entry.code (or disarm it if none is left)."""
    code = entry.code
    if not entry.requests:
        _engine.code_disarm(code)
        del _armed[id(code)]
        return
    items = sorted(entry.requests.items(), key=lambda kv: _order_key(kv[0]))
    flags = 0
    timing = set()
    begin, end, before, after = [], [], {}, {}
    for uid, (req, src) in items:
        stats = _stats_for(uid)
        if req.func_timing:
            flags |= _engine.CS_HOOK_RECORDS if src == "frame" else _engine.CS_FUNC_RECORDS
        timing |= req.timing_lines
        if req.on_func_begin is not None:
            begin.append((stats, req.on_func_begin))
        if req.on_func_end is not None:
            end.append((stats, req.on_func_end))
        for line, fn in (req.on_line_before or {}).items():
            before.setdefault(line, []).append((stats, fn))
        for line, fn in (req.on_line_after or {}).items():
            after.setdefault(line, []).append((stats, fn))
    if timing:
        flags |= _engine.CS_FUNC_RECORDS  # readers keep a frame stack for line slices
    if begin:
        flags |= _engine.CS_PY_START
    if end or after:
        flags |= _engine.CS_PY_EXIT
    if after:
        flags |= _engine.CS_PY_YIELD
    line_bits = {}
    for line in timing:
        line_bits[line] = _engine.LINE_TIME
    for line in _following_lines(code, timing) - timing:
        line_bits[line] = _engine.LINE_MARK
    dispatch_lines = set(before) | set(after) | _following_lines(code, set(after))
    for line in dispatch_lines:
        line_bits[line] = line_bits.get(line, 0) | _engine.LINE_DISPATCH
    dispatcher = None
    if begin or end or before or after:
        # Called from C as (kind, frame, line, arg): every update's handlers for that
        # point in update-id order, with "line after" semantics (dispatch.c).
        dispatcher = _engine.Dispatcher(begin, end, before, after)
    entry.code_id = _engine.code_arm(code, flags, line_bits or None, dispatcher,
                                     entry.module, entry.qualname, _gen_start(code))
    entry.hooked = bool(flags & _engine.CS_HOOK_RECORDS)


def _order_key(update_id):
    # update ids are ints in practice; keep a total order for anything else
    return (0, update_id, "") if isinstance(update_id, int) else (1, 0, str(update_id))


def _stats_for(update_id):
    stats = _stats.get(update_id)
    if stats is None:
        stats = _stats[update_id] = _UpdateStats(update_id)
    return stats


def _check_lines(code, req):
    wanted = req.lines()
    if wanted:
        validation.check_lines(code, sorted(wanted), "%s (%s:%d)" % (
            code.co_qualname, code.co_filename, code.co_firstlineno), _code_lines(code),
            error=ValueError)


def arm(update_id, code, req, module=None, qualname=None, source="auto"):
    """Arm `req` of update `update_id` on `code` (replacing that update's earlier
    request there).  Bad input raises before anything changes."""
    if not isinstance(code, types.CodeType):
        raise TypeError("arm() needs a code object, got %s" % type(code).__name__)
    if not isinstance(req, Request):
        raise TypeError("arm() needs an engine.Request, got %s" % type(req).__name__)
    if module is not None and not isinstance(module, str):
        raise TypeError("module must be a str or None")
    if qualname is not None and not isinstance(qualname, str):
        raise TypeError("qualname must be a str or None")
    _check_lines(code, req)
    src = _resolve(source)
    with _lock:
        entry = _armed.get(id(code))
        created = entry is None
        if created:
            entry = _armed[id(code)] = _Armed(code, module, qualname or code.co_qualname)
        previous = entry.requests.get(update_id)
        entry.requests[update_id] = (req, src)
        try:
            _apply(entry)
            _update_frame_hook()
        except BaseException:
            # leave things as they were
            if previous is None:
                entry.requests.pop(update_id, None)
            else:
                entry.requests[update_id] = previous
            try:
                if created and not entry.requests:
                    _engine.code_disarm(code)
                    _armed.pop(id(code), None)
                else:
                    _apply(entry)
            except Exception:
                pass
            raise
        return entry.code_id


def disarm(update_id, code=None):
    """Remove update `update_id` from one code, or from every code it armed."""
    with _lock:
        if code is not None:
            entry = _armed.get(id(code))
            entries = [entry] if entry is not None else []
        else:
            entries = [e for e in _armed.values() if update_id in e.requests]
        for entry in entries:
            if entry.requests.pop(update_id, None) is not None:
                _apply(entry)
        _update_frame_hook()


def armed_codes(update_id=None):
    with _lock:
        return [e.code for e in _armed.values() if update_id is None or update_id in e.requests]


def set_time_budget(update_id, seconds):
    """Switch the update's handlers off once they have spent `seconds` in total
    (None: no budget)."""
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError("time budget must be a positive number of seconds or None")
    with _lock:
        _stats_for(update_id).budget_ns = None if seconds is None else int(seconds * 1e9)


def handler_stats(update_id):
    """The update's HandlerStats (made if needed): output.set_gate takes it."""
    with _lock:
        return _stats_for(update_id)


def handler_report(update_id):
    with _lock:
        stats = _stats.get(update_id)
        return stats.report() if stats is not None else _UpdateStats(update_id).report()


# --- watching: code seen later -------------------------------------------------------

_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _decide(code):
    """Asked by C once per code (per matcher generation)."""
    if code.co_filename.startswith(_OWN_DIR):
        return None  # never our own code: arming it from inside the engine would re-enter it
    for uid in sorted(list(_watches), key=_order_key):
        matcher, src = _watches[uid]
        try:
            hit = matcher(code)
        except Exception as exc:
            _matcher_errors["count"] += 1
            _matcher_errors["last"] = "update %s: %s" % (
                uid, "".join(traceback.format_exception_only(type(exc), exc)).strip())
            continue
        if not hit:
            continue
        try:
            req, module, qualname = hit
            arm(uid, code, req, module=module, qualname=qualname,
                source="frame" if src == "frame" else "monitoring")
        except Exception as exc:
            _matcher_errors["count"] += 1
            _matcher_errors["last"] = "update %s: arming %s failed: %s" % (
                uid, getattr(code, "co_qualname", code), exc)


def watch(update_id, matcher, source="auto"):
    """matcher(code) -> (Request, module, qualname) | None is asked once for every code
    seen later: at its first run (frame source) or when a function is created with it
    (monitoring source)."""
    if not callable(matcher):
        raise TypeError("matcher must be callable")
    src = _resolve(source)
    with _lock:
        _watches[update_id] = (matcher, src)
        _engine.set_decider(_decide)  # new generation: every code is asked again
        _engine.function_watcher(bool(_watches))  # both sources: see functions made later
        _update_frame_hook()
    return src


def unwatch(update_id):
    with _lock:
        if _watches.pop(update_id, None) is None:
            return
        _engine.set_decider(_decide if _watches else None)
        _engine.function_watcher(bool(_watches))  # both sources: see functions made later
        _update_frame_hook()


# --- state -------------------------------------------------------------------------

def status():
    with _lock:
        counters = _engine.engine_counters()
        sources = {"monitoring": 0, "frame": 0}
        for entry in _armed.values():
            # the C side may have moved a frame request to sys.monitoring (3.13 __init__,
            # or the hook gave way): count where the records really come from
            hooked = _engine.code_state(entry.code)["flags"] & _engine.CS_HOOK_RECORDS
            for _, src in entry.requests.values():
                sources["frame" if src == "frame" and hooked else "monitoring"] += 1
        return {
            "tool_id": counters["tool_id"] if counters["tool_id"] >= 0 else None,
            "sources": sources,
            "frame_hook_installed": counters["frame_hook"],
            "function_watcher": counters["function_watcher"],
            "frame_source_refusal": frame_source_refusal(),
            "armed_codes": len(_armed),
            "watches": {uid: src for uid, (_, src) in _watches.items()},
            "handler_errors": sum(s.errors for s in _stats.values()),
            "handlers_disabled": sorted((uid for uid, s in _stats.items() if s.disabled),
                                        key=_order_key),
            "dispatch_errors": counters["dispatch_errors"],
            "matcher_errors": dict(_matcher_errors),
            "reports": list(_reports),
        }


def shutdown():
    """Disarm everything, unregister callbacks, free the tool id, remove the hook."""
    with _lock:
        _watches.clear()
        _engine.set_decider(None)
        _engine.function_watcher(False)
        _engine.monitor_stop()
        _armed.clear()
        if _engine.engine_counters()["frame_hook"]:
            _engine.frame_hook(False)
