"""The predefined modifications: FP, LP, FD, LD, VD and LU (names of the original tool).

    FP.profile(scope)            function timing into the log; FP.top() summarises it live
    LP.profile(func, lines)      line timing into the log; LP.show() summarises it live
    FD.debug(scope)              print the arguments and the return value of each call
    LD.debug(func, lines=())     print the values each line reads, then those it wrote
    VD.debug(func, vars)         print the named variables where they are read or written
    LU.ls() / LU.revert(ids) / LU.apply(ids)

Every one takes ``condition='expr'`` (evaluated in the target frame; the point is skipped
while it is false), ``ttl=seconds`` (the update reverts itself and says so),
``source=`` ("auto" = "monitoring", or "frame") and ``budget=`` (the handlers' time budget:
by default 5 % of the time since applied + 0.5 s; None, seconds, or updates.budget.Budget);
the debuggers also take ``rate=lines_per_second`` (output.py's limit for that update).
Each pattern of a scope becomes one update, as in the original; if any of them cannot be
built or applied, none stays applied and the call raises UpdateError.

They are Instrument updates (pyliveupdate.updates) built on its documented extension
points (docs/DESIGN.md section 5): ids, status, any-order revert, LU, re-arming after a
redefinition and code seen later all come from there. The profilers
ask the engine for timing records (no Python runs per call); the debuggers run their
handlers through the engine and send their lines to pyliveupdate.output.
"""
import heapq
import linecache
import os
import reprlib
import threading
import time

from . import handlers as _handlers
from . import output
from .conditions import check_names, compile_condition
from .handlers import HandlerError
from .updates import events
from .updates.base import LU, UpdateBase
from .updates.instrument import Instrument
from .updates.manager import UpdateManager
from .updates.redefine import Redefine
from .updates.validation import (UpdateError, line_numbers, positive_number, scope_patterns,
                                 variable_names)

__all__ = ["FuncProfiler", "FP", "LineProfiler", "LP", "FuncDebugger", "FD", "LineDebugger",
           "LD", "VarDebugger", "VD", "LU", "UpdateError", "predefined", "update_state"]

_tls = threading.local()        # the target frame whose handler is running on this thread
_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlevel = 3
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = 20


def _noop():
    """Placeholder join-point handler of the profilers (they arm timing, not handlers)."""


# --- time to live ---------------------------------------------------------------

class _Expiry:
    """One daemon thread that reverts updates whose time to live has ended."""

    def __init__(self):
        self._heap = []
        self._cv = threading.Condition()
        self._thread = None

    def schedule(self, update, seconds):
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + seconds, update.id, seconds))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pyliveupdate-ttl",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self):
        while True:
            with self._cv:
                while not self._heap:
                    if self._thread is not threading.current_thread():
                        return  # stop()
                    self._cv.wait()
                due, uid, seconds = self._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                heapq.heappop(self._heap)
            update = UpdateManager.get(uid)
            if update is None or not update.is_active():
                continue
            try:
                update.revert()
                update.status = "reverted: time to live of %gs ended" % seconds
                text = "time to live of %gs ended; reverted" % seconds
            except Exception as e:  # noqa: BLE001
                text = "time to live ended but the revert failed: %s" % e
            events.report("expired", uid, text)

    def stop(self):
        """End the thread (detach); pending deadlines are dropped with their updates."""
        with self._cv:
            self._heap.clear()
            thread, self._thread = self._thread, None
            self._cv.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def after_fork(self):
        # The thread did not survive the fork; the deadlines did.
        self._cv = threading.Condition()
        self._thread = None
        if self._heap:
            self._thread = threading.Thread(target=self._run, name="pyliveupdate-ttl", daemon=True)
            self._thread.start()


_expiry = _Expiry()
os.register_at_fork(after_in_child=lambda: _expiry.after_fork())


def stop_helper_thread():
    """End the time-to-live thread (pyliveupdate.detach)."""
    _expiry.stop()


# --- the common part of every modification -------------------------------------------

class _Modification(Instrument):
    kind = "modification"

    def __init__(self, pattern, payload, condition=None, ttl=None, rate=None, **options):
        self.condition = condition
        compiled = compile_condition(condition)
        self._condition, self._condition_names = compiled or (None, frozenset())
        self.ttl = positive_number(ttl, "ttl", "seconds")
        self.rate = positive_number(rate, "rate", "lines per second")
        self._condition_errors = 0
        super().__init__(pattern, payload, **options)
        if rate is not None:
            output.set_rate_limit(rate, update_id=self.id)

    @classmethod
    def _create(cls, scope, *args, **kwargs):
        """One update per pattern; all applied, or none (then UpdateError)."""
        built = []
        try:
            for pattern in scope_patterns(scope):
                built.append(cls(pattern, *args, **kwargs))
        except UpdateError:
            for u in built:
                UpdateManager.forget(u)
            raise
        applied = []
        for u in built:
            if not UpdateManager.apply_update(u):
                for done in reversed(applied):
                    done.revert()
                    print("Update %d reverted (update %d failed)" % (done.id, u.id))
                raise UpdateError("update %d (%s) not applied: %s"
                                  % (u.id, u.scope, u.status.partition(": ")[2] or u.status))
            applied.append(u)
            u._after_apply()
        for u in applied:
            if u.ttl:
                _expiry.schedule(u, u.ttl)

    def _after_apply(self):
        pass

    # Debuggers: the handlers only emit lines, so while the rate limit is spent the
    # engine may skip them in C (output.set_gate) instead of building lines to drop.
    _output_only = False

    def on_applied(self):
        super().on_applied()
        if self._output_only:
            from . import engine
            output.set_gate(self.id, engine.handler_stats(self.id))

    def on_reverted(self):
        super().on_reverted()
        output.forget(self.id)

    def fields_for(self, code, display, lenient=False):
        """A condition that reads a name the target does not have is refused there."""
        if self._condition is not None:
            try:
                check_names(self.condition, self._condition_names, code, display)
            except HandlerError as e:
                if not lenient:
                    raise
                self.note("update %s: not armed on %s: %s" % (self.id, display, e))
                return {}
        return super().fields_for(code, display, lenient)

    # Every handler is wrapped so it knows its frame and honours the condition.
    partial_binding = False   # VD: a variable may be only read or only written

    def wrap(self, fn):
        condition = self._condition

        def guarded(frame, *rest):
            if condition is not None and not self._check(condition, frame):
                return
            previous = getattr(_tls, "frame", None)
            _tls.frame = frame
            try:
                fn(frame, *rest)
            finally:
                _tls.frame = previous
        return guarded

    def _check(self, condition, frame):
        try:
            return bool(eval(condition, frame.f_globals, frame.f_locals))
        except Exception as e:  # noqa: BLE001 - a condition that fails means "skip"
            self._condition_errors += 1
            if self._condition_errors == 1:
                output.emit(self.id, "[pyliveupdate] update %d: condition %r failed in %s "
                            "(%s: %s); treated as false" % (
                                self.id, self.condition, frame.f_code.co_qualname,
                                type(e).__name__, e), output.TEXT_ENGINE)
            return False

    def _say(self, label, value, line=None, call=False, last=False):
        """One debugger line: '<file>, <line>, <module>.<qualname>: <label>: <value>'.

        The rate limit is checked before the value is formatted: a closed limit must cost
        next to nothing in the program's hot path. With `call`, the lines of one call
        (its frame) pass or drop together; `last` marks the call's last line."""
        frame = _tls.frame
        if not output.admit(self.id, group=id(frame) if call else None, last=last):
            return
        code = frame.f_code
        module = frame.f_globals.get("__name__", "?")
        output.emit(self.id, "%s, %d, %s.%s: %s: %s" % (
            code.co_filename, line or frame.f_lineno or code.co_firstlineno, module,
            code.co_qualname, label, _repr.repr(value)), admitted=True)

    def describe(self):
        d = super().describe()
        d.update(type=self.kind, condition=self.condition, ttl=self.ttl)
        d.pop("joinpoints", None)
        return d

    def repr_fields(self):
        fields = super().repr_fields()
        if self.condition:
            fields.append(("condition", self.condition))
        if self.ttl:
            fields.append(("ttl", "%gs" % self.ttl))
        return fields


# --- profilers ------------------------------------------------------------------------

class _Profiler(_Modification):
    """Timing through the engine (C records into the log); in Python only with a condition."""

    def _after_apply(self):
        from . import recording
        try:
            path = recording.ensure_started()
            print("  timing goes to %s" % path)
        except Exception as e:  # noqa: BLE001
            print("  note: no log is being recorded (%s); live summaries stay empty" % e)

    def _timing_request(self, code, display, lenient):
        raise NotImplementedError

    def fields_for(self, code, display, lenient=False):
        if self._condition is not None:
            return self._python_timing(code, display, lenient)
        return self._timing_request(code, display, lenient)


class FuncProfiler(_Profiler):
    """FP.profile(scope): time every call of the matched functions."""
    kind = "FuncProfiler"

    def __init__(self, pattern, condition=None, ttl=None, **options):
        self._py_stats = {}
        super().__init__(pattern, {"func_begin": _noop}, condition=condition, ttl=ttl,
                         **options)

    @classmethod
    def profile(cls, scope, condition=None, ttl=None, **options):
        """source: "auto" (= "monitoring") or "frame" (the PEP 523 hook, CPython 3.13+:
        cheaper only when the scope makes nearly every call of the program)."""
        cls._create(scope, condition=condition, ttl=ttl, **options)

    def _timing_request(self, code, display, lenient):
        return {"func_timing": True}

    def _python_timing(self, code, display, lenient):
        # With a condition the engine cannot decide per call, so the timing of the
        # calls that pass is measured here (shown by FP.top(), not written to the log).
        starts = {}
        stats = self._py_stats.setdefault(display, [0, 0])
        condition = self._condition

        def begin(frame):
            if condition is None or self._check(condition, frame):
                starts[id(frame)] = time.perf_counter_ns()

        def end(frame, retval, exc):
            t0 = starts.pop(id(frame), None)
            if t0 is not None:
                stats[0] += 1
                stats[1] += time.perf_counter_ns() - t0
        return {"on_func_begin": begin, "on_func_end": end}

    @staticmethod
    def top(n=20):
        """Print the most expensive profiled functions so far (from the live aggregates)."""
        from . import _engine, engine
        funcs, _ = _engine.recorder_live() if _engine.recorder_active() else ({}, {})
        rows = []
        for u in UpdateManager.applied(FuncProfiler):
            for code in engine.armed_codes(u.id):
                state = _engine.code_state(code)
                if state is None:
                    continue
                hits, total, self_ns = funcs.get(state["id"], (0, 0, 0))
                rows.append((_name_of(u, code),
                             hits, total, self_ns))
            for name, (hits, total) in u._py_stats.items():
                rows.append((name + " [if]", hits, total, None))
        rows = sorted({r for r in rows if r[1]}, key=lambda r: (-r[2], r[0]))[:n]
        _print_live_gaps()
        if not rows:
            print("no profiled function yet (FP.profile(scope) first)")
            return
        width = max(len(r[0]) for r in rows)
        print("%-*s %9s %11s %12s %11s" % (width, "function", "hits", "total ms", "per hit ms",
                                           "self ms"))
        for name, hits, total, self_ns in rows:
            print("%-*s %9d %11.3f %12.4f %11s" % (
                width, name, hits, total / 1e6, total / 1e6 / hits if hits else 0.0,
                "-" if self_ns is None else "%.3f" % (self_ns / 1e6)))


class LineProfiler(_Profiler):
    """LP.profile(func, lines): time the listed lines of the matched functions."""
    kind = "LineProfiler"

    def __init__(self, pattern, lines, condition=None, ttl=None, **options):
        self.lines = line_numbers(lines)
        self._py_stats = {}
        super().__init__(pattern, {"func_begin": _noop}, condition=condition, ttl=ttl,
                         **options)

    @classmethod
    def profile(cls, scope, lines, condition=None, ttl=None, **options):
        cls._create(scope, lines, condition=condition, ttl=ttl, **options)

    def _chosen_lines(self, code, display, lenient):
        have = _handlers.code_lines(code)
        if not self.lines:
            return tuple(have)
        if lenient:
            return tuple(n for n in self.lines if n in have)
        _handlers.check_lines(code, self.lines, display)
        return self.lines

    def _timing_request(self, code, display, lenient):
        chosen = self._chosen_lines(code, display, lenient)
        return {"timing_lines": frozenset(chosen)} if chosen else {}

    def _python_timing(self, code, display, lenient):
        chosen = self._chosen_lines(code, display, lenient)
        starts = {}
        condition = self._condition
        stats = self._py_stats

        def before(frame, line):
            if condition is None or self._check(condition, frame):
                starts[(id(frame), line)] = time.perf_counter_ns()

        def after(frame, line):
            t0 = starts.pop((id(frame), line), None)
            if t0 is not None:
                s = stats.setdefault((display, code.co_filename, line), [0, 0])
                s[0] += 1
                s[1] += time.perf_counter_ns() - t0
        return {"on_line_before": {n: before for n in chosen},
                "on_line_after": {n: after for n in chosen}} if chosen else {}

    def repr_fields(self):
        return super().repr_fields() + [("lines", list(self.lines) or "all")]

    @staticmethod
    def show():
        """Print the time of each profiled line so far, with its source."""
        from . import _engine, engine
        _, lines = _engine.recorder_live() if _engine.recorder_active() else ({}, {})
        _print_live_gaps()
        printed = False
        for u in UpdateManager.applied(LineProfiler):
            for code in engine.armed_codes(u.id):
                state = _engine.code_state(code)
                if state is None:
                    continue
                chosen = u._chosen_lines(code, "", True)
                rows = [(n,) + tuple(lines.get((state["id"], n), (0, 0))) for n in chosen]
                _print_lines(_name_of(u, code),
                             code.co_filename, rows)
                printed = True
            by_func = {}
            for (name, filename, line), (hits, total) in u._py_stats.items():
                by_func.setdefault((name, filename), []).append((line, hits, total))
            for (name, filename), rows in sorted(by_func.items()):
                _print_lines(name + " [if %s]" % u.condition, filename, sorted(rows))
                printed = True
        if not printed:
            print("no profiled line yet (LP.profile(func, lines) first)")


def _print_live_gaps():
    """Say what the live aggregates could not count: the flusher feeds them once asked,
    from the log written so far, whose oldest segments the disk budget may have deleted."""
    from . import _engine
    stats = _engine.recorder_stats()
    if stats["live_missed_segments"]:
        print("note: counted from log segment %d on: the log budget deleted the %d before it "
              "was read back" % (stats["live_missed_segments"], stats["live_missed_segments"]))
    if stats["live"] == "catching up":
        print("note: still reading the log written so far back into these counts; they are "
              "incomplete until it is done (ask again)")
    if stats["live"] == "partial":
        print("note: counts miss what was recorded before the first request (the log could "
              "not be read back: %s)" % (stats["error"] or "see stderr"))


def _print_lines(name, filename, rows):
    print("%s (%s)" % (name, filename))
    print("  %5s %9s %11s %12s  %s" % ("line", "hits", "total ms", "per hit us", "source"))
    for line, hits, total in rows:
        src = linecache.getline(filename, line).rstrip()
        print("  %5d %9d %11.3f %12.2f  %s" % (line, hits, total / 1e6,
                                               total / 1e3 / hits if hits else 0.0, src))


def _name_of(update, code):
    """module.qualname as the update armed it ("f [update 3]" for a redefined body)."""
    where = update.located(code)
    return "%s.%s" % where if where else "?.%s" % code.co_qualname


# --- debuggers -----------------------------------------------------------------------

class FuncDebugger(_Modification):
    """FD.debug(scope): print each call's arguments and its return value (or exception)."""
    kind = "FuncDebugger"
    _output_only = True

    def __init__(self, pattern, condition=None, ttl=None, rate=None, **options):
        def on_begin(_parameters):
            self._say("parameters", _parameters, call=True)

        def on_end(_returnvalues, _exception):
            if _exception is not None:
                self._say("exception", _exception, call=True, last=True)
            else:
                self._say("returnvalues", _returnvalues, call=True, last=True)
        super().__init__(pattern, {"func_begin": on_begin, "func_end": on_end},
                         condition=condition, ttl=ttl, rate=rate, **options)

    @classmethod
    def debug(cls, scope, condition=None, ttl=None, rate=None, **options):
        cls._create(scope, condition=condition, ttl=ttl, rate=rate, **options)


class LineDebugger(_Modification):
    """LD.debug(func, lines=()): before each line the values it reads, after it those it wrote."""
    kind = "LineDebugger"
    _output_only = True

    def __init__(self, pattern, lines=(), condition=None, ttl=None, rate=None, **options):
        self.lines = line_numbers(lines)

        def before(_righthands, _line):
            if _righthands:
                self._say("usevalues", _righthands, _line)

        def after(_lefthands, _line):
            if _lefthands:
                self._say("defvalues", _lefthands, _line)
        super().__init__(pattern, {("line_before", self.lines): before,
                                   ("line_after", self.lines): after},
                         condition=condition, ttl=ttl, rate=rate, **options)

    @classmethod
    def debug(cls, scope, lines=(), condition=None, ttl=None, rate=None, **options):
        cls._create(scope, lines, condition=condition, ttl=ttl, rate=rate, **options)


class VarDebugger(_Modification):
    """VD.debug(func, vars): the named variables' values where a line reads or writes them."""
    kind = "VarDebugger"
    _output_only = True
    partial_binding = True

    def __init__(self, pattern, vars_=(), condition=None, ttl=None, rate=None, **options):
        names = variable_names(vars_)
        self.vars = names

        def use(_variable, _line):
            self._say("usevalues", _variable, _line)

        def define(_variable, _line):
            self._say("defvalues", _variable, _line)
        if names:
            payload = {("var_use", names): use, ("var_def", names): define}
        else:  # as the original: no names means every variable of every line
            payload = {("line_before", ()): _skip_empty(use, "_righthands"),
                       ("line_after", ()): _skip_empty(define, "_lefthands")}
        super().__init__(pattern, payload, condition=condition, ttl=ttl, rate=rate,
                         **options)

    @classmethod
    def debug(cls, scope, vars_=(), condition=None, ttl=None, rate=None, **options):
        if "vars" in options:
            vars_ = options.pop("vars")
        unknown = set(options) - {"source", "budget"}
        if unknown:
            raise TypeError("VD.debug() got unexpected keyword(s): %s" % ", ".join(sorted(unknown)))
        cls._create(scope, vars_, condition=condition, ttl=ttl, rate=rate, **options)

    def repr_fields(self):
        return super().repr_fields() + [("vars", list(self.vars) or "all")]


def _skip_empty(fn, special):
    if special == "_righthands":
        def handler(_righthands, _line):
            if _righthands:
                fn(_righthands, _line)
    else:
        def handler(_lefthands, _line):
            if _lefthands:
                fn(_lefthands, _line)
    return handler


FP, LP, FD, LD, VD = FuncProfiler, LineProfiler, FuncDebugger, LineDebugger, VarDebugger


# --- for the stub ---------------------------------------------------------------------

def predefined():
    """The names a controller command can use without importing anything."""
    return {
        "FP": FP, "FuncProfiler": FP, "LP": LP, "LineProfiler": LP,
        "FD": FD, "FuncDebugger": FD, "LD": LD, "LineDebugger": LD,
        "VD": VD, "VarDebugger": VD, "LU": LU, "UpdateBase": UpdateBase,
        "Instrument": Instrument, "Redefine": Redefine,
        "UpdateManager": UpdateManager, "UpdateError": UpdateError, "output": output,
    }


def update_state():
    """Ids of the updates applied in this process, and of every update it knows."""
    known = UpdateManager.all()
    return {"active": [u.id for u in known if u.is_active()],
            "known": [u.id for u in known]}
