"""Instrument: run handlers at join points of the target functions.

The handlers are bound per code object (handlers.bind) and armed through the engine;
a wildcard scope also watches for matching code seen later. The predefined
modifications are subclasses: they change what each code gets through the extension
points ``fields_for``, ``wrap`` and ``partial_binding`` (docs/DESIGN.md section 5).
"""
import contextlib

from .. import handlers as _handlers
from .. import targets as _targets
from . import budget as _budget
from . import registry
from .base import UpdateBase
from .validation import (LINE_POINTS, UpdateError, event_source, joinpoint, payload_items,
                         scope_patterns)

__all__ = ["Instrument"]


@contextlib.contextmanager
def unregister_on_error(update):
    """A constructor that fails leaves no update behind (its id stays used, so ids
    created in one id block mean the same update in every process)."""
    try:
        yield
    except UpdateError as e:
        registry.forget(update)
        raise UpdateError(str(e)) from None
    except BaseException:
        registry.forget(update)
        raise


def _chain_calls(first, second):
    def both(*args):
        try:
            first(*args)
        finally:
            second(*args)
    return both


def _merge(fields, field, value):
    if field in ("on_func_begin", "on_func_end"):
        old = fields.get(field)
        fields[field] = value if old is None else _chain_calls(old, value)
        return
    table = fields.setdefault(field, {})
    for line, f in value.items():
        old = table.get(line)
        table[line] = f if old is None else _chain_calls(old, f)


def has_wildcard(pattern):
    return "*" in pattern


class Instrument(UpdateBase):
    """Run handlers at join points of the target functions (dispatched by the engine).

    Extension points for subclasses (the predefined modifications use only these):
    ``joinpoints`` (the normalised (kind, argument, handler) triples), ``fields_for``
    (the engine request fields for one code), ``wrap`` (applied to every bound handler),
    ``partial_binding`` (a join point that does not fit a code is left out there as
    long as another one fits) and ``located(code)``.
    """

    kind = "instrument"
    partial_binding = False

    def __init__(self, target_scope, jointpoint_payload, update_trigger=None,
                 revert_trigger=None, *, source="auto", budget=_budget.DEFAULT):
        scopes = scope_patterns(target_scope)
        joinpoints = []
        seen = set()
        for key, handler in payload_items(jointpoint_payload):
            kind, arg = joinpoint(key)
            if (kind, arg) in seen:
                raise UpdateError("join point %r given twice" % ((kind, arg),))
            seen.add((kind, arg))
            try:
                _handlers.handler_parameters(handler, kind)
            except _handlers.HandlerError as e:
                raise UpdateError(str(e)) from None
            joinpoints.append((kind, arg, handler))
        if not joinpoints:
            raise UpdateError("no join point given")
        self.scope = target_scope
        self.scopes = tuple(scopes)
        self.joinpoints = tuple(joinpoints)
        self.source = event_source(source)
        self.budget = _budget.budget_rule(budget)
        # id(code) -> (code, module, qualname, home file, qualname as armed); the entry
        # holds its code, so the id stays that code's while it is listed
        self._located = {}
        self._home_file = None      # while re-targeting: the file the join points' lines refer to
        self.instrumented = []
        self.skipped = []
        self.unreached = []         # [(dotted name, kind)]: covered, but no Python code
        self.source_used = None     # where function records come from, once applied
        super().__init__()
        with unregister_on_error(self):
            try:
                self._plan()        # validate now: bad input raises, nothing is applied
            except _targets.ModuleNotImported:
                pass                # checked when the module is imported (pending)
            self._matchers = [_targets.CodeMatcher(s) for s in scopes]

    # -- extension points
    def wrap(self, handler):
        """Called with every bound engine callable; returns what the engine calls."""
        return handler

    def fields_for(self, code, display, lenient=False):
        """engine.Request fields for one code. Strict: any misfit raises HandlerError.
        Lenient (code that replaced or joined the targets later): join points that do
        not fit are dropped there and noted; the others stay."""
        fields, errors = {}, []
        for kind, arg, handler in self.joinpoints:
            if lenient and kind in LINE_POINTS and arg:
                arg = self._lines_still_there(code, display, kind, arg)
                if not arg:
                    continue
            try:
                field, value = _handlers.bind(kind, handler, code, arg, display)
            except _handlers.HandlerError as e:
                if self.partial_binding:
                    errors.append(e)
                    continue
                if not lenient:
                    raise
                self.note("update %s: %s handler dropped on %s: %s"
                          % (self.id, kind, display, e))
                continue
            if isinstance(value, dict):
                value = {line: self.wrap(fn) for line, fn in value.items()}
            else:
                value = self.wrap(value)
            _merge(fields, field, value)
        if not fields and errors:
            raise errors[0]
        return fields

    def _lines_still_there(self, code, display, kind, lines):
        home_file = self._home_file
        if home_file is not None and code.co_filename != home_file:
            self.note("update %s: %s now runs code from %s; its %s handler on lines "
                      "%s of %s is dropped there"
                      % (self.id, display, code.co_filename, kind,
                         ", ".join(map(str, lines)), home_file))
            return ()
        have = set(_handlers.code_lines(code))
        missing = [n for n in lines if n not in have]
        if missing:
            self.note("update %s: line %s no longer holds code in %s; its %s handler is "
                      "dropped there" % (self.id, ", ".join(map(str, missing)), display, kind))
        return tuple(n for n in lines if n in have)

    def located(self, code):
        """(module, qualname) under which this update armed ``code``, or None."""
        entry = self._located.get(id(code))
        return (entry[1], entry[4]) if entry is not None and entry[0] is code else None

    # -- planning
    def _plan(self):
        targets, seen, unreached, later = [], set(), [], True
        for pattern in self.scopes:
            resolution = _targets.resolve(pattern)
            later = later and resolution.later
            unreached += [u for u in resolution.unreached if u not in unreached]
            for t in resolution:
                if id(t.code) not in seen:
                    seen.add(id(t.code))
                    targets.append(t)
        self._unreached = unreached
        strict = len(self.scopes) == 1 and not has_wildcard(self.scopes[0])
        plan, skipped = [], []
        for t in targets:
            try:
                plan.append((t, self.fields_for(t.code, t.name)))
            except _handlers.HandlerError as e:
                if strict:
                    raise
                skipped.append("%s: %s" % (t.name, e))
        if not plan and not (later and not skipped):
            raise UpdateError("no target fits the handlers: %s" % "; ".join(skipped[:3]))
        return plan, skipped

    # -- engine side
    def _apply(self):
        from .. import engine
        used, refusal = engine.resolve_source(self.source)
        plan, skipped = self._plan()
        self._located = {}
        try:
            for t, fields in plan:
                engine.arm(self.id, t.code, engine.Request(**fields), module=t.module,
                           qualname=t.qualname, source=self.source)
                self._located[id(t.code)] = (t.code, t.module, t.qualname, t.code.co_filename,
                                             t.qualname)
            if any(has_wildcard(p) for p in self.scopes):
                # Code seen later (modules imported later) only matters for wildcards: an
                # exact name needs its module imported now.
                engine.watch(self.id, self._match_later, source=self.source)
        except Exception as e:
            self._disarm_all()
            raise UpdateError("the engine refused: %s" % e) from e
        self.instrumented = [t.name for t, _ in plan]
        self.skipped = skipped
        self.source_used = used
        if refusal:
            self.note("update %d: events come from sys.monitoring: %s" % (self.id, refusal))
        elif used == "frame" and any(k.startswith("on_") for _, f in plan for k in f):
            self.source_used = "frame (function timing), monitoring (handlers)"
            self.note("update %d: its handlers run from sys.monitoring; the frame hook "
                      "serves function timing only" % self.id)
        self.unreached = self._unreached
        if self.unreached:
            self.note("update %d: not reached (no Python code): %s" % (self.id, ", ".join(
                "%s (%s)" % u for u in self.unreached[:10])
                + (", ..." if len(self.unreached) > 10 else "")))

    def _disarm_all(self):
        from .. import engine
        try:
            engine.unwatch(self.id)
        finally:
            engine.disarm(self.id)
            self._located = {}

    def _revert(self):
        self._disarm_all()

    def on_applied(self):
        _budget.track(self.id, self.budget)

    def on_reverted(self):
        _budget.untrack(self.id)

    def state(self):
        word, reason = super().state()
        if word == "applied":
            from .. import engine
            report = engine.handler_report(self.id)
            if report["disabled"]:
                reason = report["disabled_reason"] or "switched off"
                last = report["last_error"]
                if last and last not in reason:     # "10 consecutive failures; last: ..."
                    reason += "; last error: %s" % last
                return "disabled", reason
        return word, reason

    def _match_later(self, code):
        """engine.watch matcher: code seen after apply -> (Request, module, qualname)."""
        try:
            from .. import engine
            for matcher in self._matchers:
                hit = matcher(code)
                if hit is not None:
                    fields = self.fields_for(code, "%s.%s" % hit, lenient=True)
                    if not fields:
                        return None
                    self._located[id(code)] = (code, hit[0], hit[1], code.co_filename, hit[1])
                    return engine.Request(**fields), hit[0], hit[1]
        except Exception:
            return None
        return None

    # -- following redefinitions (called by commit.py)
    def holds_code(self, code):
        return self.located(code) is not None

    def arm_successor(self, old, new, redefined_by=None):
        """Arm on ``new`` what we armed on ``old`` (before the swap, so the first call of
        the new code is already instrumented). True if ``old`` was ours. The new code is
        described as "<qualname> [update N]" (N: the Redefine it comes from), so the log
        and the reports keep the patched and the original body apart."""
        from .. import engine
        entry = self._located.get(id(old))
        if entry is None or entry[0] is not old:
            return False
        _, module, qualname, home, _ = entry
        armed_as = qualname if redefined_by is None else "%s [update %s]" % (qualname,
                                                                            redefined_by)
        display = "%s.%s" % (module, qualname)
        self._home_file = home
        try:
            fields = self.fields_for(new, display, lenient=True)
        except _handlers.HandlerError as e:
            fields = None
            self.note("update %d: handlers dropped on %s: %s" % (self.id, display, e))
        finally:
            self._home_file = None
        if fields:
            try:
                engine.arm(self.id, new, engine.Request(**fields), module=module,
                           qualname=armed_as, source=self.source)
                self._located[id(new)] = (new, module, qualname, home, armed_as)
            except Exception as e:
                self.note("update %d: the engine refused %s: %s" % (self.id, display, e))
        return True

    def drop_code(self, old):
        from .. import engine
        entry = self._located.get(id(old))
        if entry is not None and entry[0] is old:
            engine.disarm(self.id, old)
            del self._located[id(old)]

    # -- reporting
    def describe(self):
        d = super().describe()
        d.update(scope=self.scope, joinpoints=[(k, a) for k, a, _ in self.joinpoints],
                 instrumented=list(self.instrumented), skipped=list(self.skipped),
                 unreached=["%s (%s)" % u for u in self.unreached], source=self.source,
                 source_used=self.source_used,
                 budget=None if self.budget is None else str(self.budget))
        return d

    def label(self):
        return "%s %s" % (self.kind, self.scope)

    def repr_fields(self):
        fields = [("scope", self.scope),
                  ("instrumented", "[%s]" % ", ".join(self.instrumented))]
        if self.source != "auto":         # "auto" is sys.monitoring
            fields.append(("source", self.source_used or self.source))
        if self.budget is not _budget.DEFAULT:
            fields.append(("budget", "none" if self.budget is None else self.budget))
        return fields
