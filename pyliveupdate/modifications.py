"""The predefined modifications: FP, LP, FD, LD, VD and LU (names of the original tool).

    FP.profile(scope)            function timing into the log; FP.top() summarises it live
    LP.profile(func, lines)      line timing into the log; LP.show() summarises it live
    FD.debug(scope)              print the arguments and the return value of each call
    LD.debug(func, lines=())     print the values each line reads, then those it wrote
    VD.debug(func, vars)         print the named variables where they are read or written
    LU.ls() / LU.revert(ids) / LU.apply(ids)

Every one takes ``condition='expr'`` (evaluated in the target frame; the point is skipped
while it is false) and ``ttl=seconds`` (the update reverts itself and says so); the
debuggers also take ``rate=lines_per_second`` (output.py's limit for that update).
Each pattern of a scope becomes one update, as in the original; if any of them cannot be
built or applied, none stays applied and the call raises UpdateError.

They are Instrument updates (pyliveupdate.update): ids, status, any-order revert,
re-arming after a redefinition and code seen later all come from there. The profilers
ask the engine for timing records (no Python runs per call); the debuggers run their
handlers through the engine and send their lines to pyliveupdate.output.
"""
import heapq
import linecache
import os
import reprlib
import threading
import time

from . import output
from .update import Instrument, UpdateBase, UpdateError, UpdateManager
from . import handlers as _handlers

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


def _scopes(scope):
    if isinstance(scope, str):
        return [scope]
    try:
        scopes = list(scope)
    except TypeError:
        raise UpdateError("scope must be a pattern or a list of patterns, got %r" % (scope,)) from None
    if not scopes or not all(isinstance(s, str) for s in scopes):
        raise UpdateError("scope must be a pattern or a list of patterns, got %r" % (scope,))
    return scopes


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
            if update is None or update.status != "applied":
                continue
            try:
                update.revert()
                text = "update %d: time to live of %gs ended; reverted" % (uid, seconds)
            except Exception as e:  # noqa: BLE001
                text = "update %d: time to live ended but the revert failed: %s" % (uid, e)
            output.emit(uid, "[pyliveupdate] " + text, output.TEXT_ENGINE)

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


# --- the list of updates (LU) -----------------------------------------------------

def _id_list(ids):
    if isinstance(ids, int) and not isinstance(ids, bool):
        return [ids]
    try:
        out = list(ids)
    except TypeError:
        out = None
    if not out or not all(isinstance(i, int) and not isinstance(i, bool) for i in out):
        raise UpdateError("expected an update id or a list of ids, got %r" % (ids,))
    return out


class LU:
    """List, revert and re-apply updates by id (every kind: FP, FD, Instrument, Redefine...)."""

    @staticmethod
    def ls(all=False):
        """Print the applied updates (all=True: every update, with its status)."""
        shown = [u for _, u in sorted(UpdateManager._updates.items())
                 if all or u.status == "applied"]
        if not shown:
            print("no update is applied" if not all else "no update")
        for u in shown:
            print("%d : %r" % (u.id, u))
            for note in getattr(u, "notes", ()):
                print("    note: %s" % note)

    @staticmethod
    def revert(ids):
        """Revert updates by id; raises UpdateError if any of them could not be reverted."""
        failed = [uid for uid in _id_list(ids) if not UpdateManager.revert_update(uid)]
        if failed:
            raise UpdateError("not reverted: %s" % ", ".join(map(str, failed)))

    @staticmethod
    def apply(ids):
        """Re-apply updates by id; raises UpdateError if any of them could not be applied."""
        failed = [uid for uid in _id_list(ids) if not UpdateManager.apply_update(uid)]
        if failed:
            raise UpdateError("not applied: %s" % ", ".join(map(str, failed)))

    @staticmethod
    def detach():
        """Revert every update and leave this process as it was (pyliveupdate.detach)."""
        from .detach import detach
        print(detach())


class _ClassLevel:
    """LU's methods, reachable from every modification class (FP.ls(), FD.revert(3))."""

    def __init__(self, func):
        self.func = func

    def __get__(self, obj, cls):
        if obj is None:
            return self.func
        return UpdateBase.__dict__[self.func.__name__].__get__(obj, cls)


# --- the common part of every modification -------------------------------------------

class _Modification(Instrument):
    kind = "modification"
    label = "?"
    ls = _ClassLevel(LU.ls)
    revert = _ClassLevel(LU.revert)
    apply = _ClassLevel(LU.apply)

    def __init__(self, pattern, payload, condition=None, ttl=None, rate=None):
        self.condition = condition
        self._condition = _compile_condition(condition)
        if ttl is not None and not (isinstance(ttl, (int, float)) and ttl > 0):
            raise UpdateError("ttl must be a positive number of seconds, got %r" % (ttl,))
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
            raise UpdateError("rate must be a positive number of lines per second, got %r"
                              % (rate,))
        self.ttl, self.rate = ttl, rate
        self._condition_errors = 0
        super().__init__(pattern, payload)
        if rate is not None:
            output.set_rate_limit(rate, update_id=self.id)

    @classmethod
    def _create(cls, scope, *args, **kwargs):
        """One update per pattern; all applied, or none (then UpdateError)."""
        built = []
        try:
            for pattern in _scopes(scope):
                built.append(cls(pattern, *args, **kwargs))
        except UpdateError:
            for u in built:
                UpdateManager._updates.pop(u.id, None)
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

    def _apply(self):
        super()._apply()
        if self._output_only:
            from . import engine
            output.set_gate(self.id, engine.handler_stats(self.id))

    def _revert(self):
        super()._revert()
        output.forget(self.id)

    # Which engine request each code gets: the handlers of the join points, each
    # wrapped so it knows its frame and honours the condition.
    def _fields_for(self, code, display, lenient=False):
        fields = {}
        errors = []
        for kind, arg, handler in self._joinpoints:
            if lenient and kind in ("line_before", "line_after") and arg:
                have = set(_handlers.code_lines(code))
                arg = tuple(n for n in arg if n in have)
                if not arg:
                    continue
            try:
                field, value = _handlers.bind(kind, handler, code, arg, display)
            except _handlers.HandlerError as e:
                if not self._tolerant:
                    raise
                errors.append(e)
                continue
            fields[field] = self._wrap(value)
        if not fields and errors:
            raise errors[0]
        return fields

    _tolerant = False   # VD: a variable may be only read or only written

    def _wrap(self, value):
        if isinstance(value, dict):
            return {line: self._guard(fn) for line, fn in value.items()}
        return self._guard(value)

    def _guard(self, fn):
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

    def _say(self, label, value, line=None):
        """One debugger line: '<file>, <line>, <module>.<qualname>: <label>: <value>'.

        The rate limit is checked before the value is formatted: a closed limit must cost
        next to nothing in the program's hot path."""
        if not output.admit(self.id):
            return
        frame = _tls.frame
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

    def _repr_fields(self):
        fields = super()._repr_fields()
        if self.condition:
            fields.append(("condition", self.condition))
        if self.ttl:
            fields.append(("ttl", "%gs" % self.ttl))
        return fields


def _compile_condition(condition):
    if condition is None:
        return None
    if not isinstance(condition, str):
        raise UpdateError("condition must be a Python expression in a string, got %r"
                          % (condition,))
    try:
        return compile(condition, "<condition>", "eval")
    except SyntaxError as e:
        raise UpdateError("condition %r is not a valid expression: %s" % (condition, e.msg)) from None


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

    def _fields_for(self, code, display, lenient=False):
        if self._condition is not None:
            return self._python_timing(code, display, lenient)
        return self._timing_request(code, display, lenient)


class FuncProfiler(_Profiler):
    """FP.profile(scope): time every call of the matched functions."""
    kind = "FuncProfiler"

    def __init__(self, pattern, condition=None, ttl=None):
        self._py_stats = {}
        super().__init__(pattern, {"func_begin": _noop}, condition=condition, ttl=ttl)

    @classmethod
    def profile(cls, scope, condition=None, ttl=None):
        cls._create(scope, condition=condition, ttl=ttl)

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
        for u in _applied(FuncProfiler):
            for code in engine.armed_codes(u.id):
                state = _engine.code_state(code)
                if state is None:
                    continue
                hits, total, self_ns = funcs.get(state["id"], (0, 0, 0))
                rows.append(("%s.%s" % (_module_of(u, code), code.co_qualname),
                             hits, total, self_ns))
            for name, (hits, total) in u._py_stats.items():
                rows.append((name + " [if]", hits, total, None))
        rows = sorted({r for r in rows if r[1]}, key=lambda r: (-r[2], r[0]))[:n]
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

    def __init__(self, pattern, lines, condition=None, ttl=None):
        self.lines = _line_tuple(lines)
        self._py_stats = {}
        super().__init__(pattern, {"func_begin": _noop}, condition=condition, ttl=ttl)

    @classmethod
    def profile(cls, scope, lines, condition=None, ttl=None):
        cls._create(scope, lines, condition=condition, ttl=ttl)

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

    def _repr_fields(self):
        return super()._repr_fields() + [("lines", list(self.lines) or "all")]

    @staticmethod
    def show():
        """Print the time of each profiled line so far, with its source."""
        from . import _engine, engine
        _, lines = _engine.recorder_live() if _engine.recorder_active() else ({}, {})
        printed = False
        for u in _applied(LineProfiler):
            for code in engine.armed_codes(u.id):
                state = _engine.code_state(code)
                if state is None:
                    continue
                chosen = u._chosen_lines(code, "", True)
                rows = [(n,) + tuple(lines.get((state["id"], n), (0, 0))) for n in chosen]
                _print_lines("%s.%s" % (_module_of(u, code), code.co_qualname),
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


def _print_lines(name, filename, rows):
    print("%s (%s)" % (name, filename))
    print("  %5s %9s %11s %12s  %s" % ("line", "hits", "total ms", "per hit us", "source"))
    for line, hits, total in rows:
        src = linecache.getline(filename, line).rstrip()
        print("  %5d %9d %11.3f %12.2f  %s" % (line, hits, total / 1e6,
                                               total / 1e3 / hits if hits else 0.0, src))


def _line_tuple(lines):
    if lines is None:
        return ()
    items = (lines,) if isinstance(lines, int) else lines
    try:
        out = tuple(sorted(set(items)))
    except TypeError:
        raise UpdateError("lines must be a line number or a list of them, got %r" % (lines,)) from None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in out):
        raise UpdateError("lines must be positive line numbers, got %r" % (lines,))
    return out


def _applied(cls):
    return [u for _, u in sorted(UpdateManager._updates.items())
            if isinstance(u, cls) and u.status == "applied"]


def _module_of(update, code):
    entry = update._where.get(id(code))
    return entry[1] if entry and entry[0] is code else "?"


# --- debuggers -----------------------------------------------------------------------

class FuncDebugger(_Modification):
    """FD.debug(scope): print each call's arguments and its return value (or exception)."""
    kind = "FuncDebugger"
    _output_only = True

    def __init__(self, pattern, condition=None, ttl=None, rate=None):
        def on_begin(_parameters):
            self._say("parameters", _parameters)

        def on_end(_returnvalues, _exception):
            if _exception is not None:
                self._say("exception", _exception)
            else:
                self._say("returnvalues", _returnvalues)
        super().__init__(pattern, {"func_begin": on_begin, "func_end": on_end},
                         condition=condition, ttl=ttl, rate=rate)

    @classmethod
    def debug(cls, scope, condition=None, ttl=None, rate=None):
        cls._create(scope, condition=condition, ttl=ttl, rate=rate)


class LineDebugger(_Modification):
    """LD.debug(func, lines=()): before each line the values it reads, after it those it wrote."""
    kind = "LineDebugger"
    _output_only = True

    def __init__(self, pattern, lines=(), condition=None, ttl=None, rate=None):
        self.lines = _line_tuple(lines)

        def before(_righthands, _line):
            if _righthands:
                self._say("usevalues", _righthands, _line)

        def after(_lefthands, _line):
            if _lefthands:
                self._say("defvalues", _lefthands, _line)
        super().__init__(pattern, {("line_before", self.lines): before,
                                   ("line_after", self.lines): after},
                         condition=condition, ttl=ttl, rate=rate)

    @classmethod
    def debug(cls, scope, lines=(), condition=None, ttl=None, rate=None):
        cls._create(scope, lines, condition=condition, ttl=ttl, rate=rate)


class VarDebugger(_Modification):
    """VD.debug(func, vars): the named variables' values where a line reads or writes them."""
    kind = "VarDebugger"
    _output_only = True
    _tolerant = True

    def __init__(self, pattern, vars_=(), condition=None, ttl=None, rate=None):
        names = (vars_,) if isinstance(vars_, str) else tuple(vars_ or ())
        if not all(isinstance(n, str) and n for n in names):
            raise UpdateError("variables must be a name or a list of names, got %r" % (vars_,))
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
        super().__init__(pattern, payload, condition=condition, ttl=ttl, rate=rate)

    @classmethod
    def debug(cls, scope, vars_=(), condition=None, ttl=None, rate=None, **kw):
        if "vars" in kw:
            vars_ = kw.pop("vars")
        if kw:
            raise TypeError("VD.debug() got unexpected keyword(s): %s" % ", ".join(kw))
        cls._create(scope, vars_, condition=condition, ttl=ttl, rate=rate)

    def _repr_fields(self):
        return super()._repr_fields() + [("vars", list(self.vars) or "all")]


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
    from . import update
    return {
        "FP": FP, "FuncProfiler": FP, "LP": LP, "LineProfiler": LP,
        "FD": FD, "FuncDebugger": FD, "LD": LD, "LineDebugger": LD,
        "VD": VD, "VarDebugger": VD, "LU": LU, "UpdateBase": UpdateBase,
        "Instrument": update.Instrument, "Redefine": update.Redefine,
        "UpdateManager": UpdateManager, "UpdateError": UpdateError, "output": output,
    }


def update_state():
    """Ids of the updates applied in this process, and of every update it knows."""
    return {"active": sorted(u.id for u in UpdateManager._updates.values()
                             if u.status == "applied"),
            "known": sorted(UpdateManager._updates)}
