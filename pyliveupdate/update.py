"""Updates of a running program: Instrument, Redefine, and the UpdateManager.

    from pyliveupdate.update import Instrument, Redefine, UpdateManager

    UpdateManager.apply_update(Instrument('__main__.bar', {('line_after', (12, 14)): show}))
    UpdateManager.apply_update(Redefine('__main__', None, {'__main__.bar': new_bar}))
    UpdateManager.revert_update(1)          # any order: the others stay in effect

Every update has an id (a process-wide counter, or ids from ``UpdateManager.id_block``),
a status (``created``, ``applied``, ``reverted``, ``failed: <reason>``) and ``describe()``.
Bad input raises ``UpdateError`` (a ValueError) with a message saying what exists, and
changes nothing.

Revert in any order works because nothing is stacked on "the code before me": the
effective state of every function we touch is recomputed from its original state plus
the still-applied redefinitions (newest wins), and instrumentation is the engine's
per-update arming, re-armed on whatever code is in effect.
"""
import contextlib
import gc
import sys
import threading
import time
import types
from collections import deque
from itertools import chain, starmap
from types import CodeType, FunctionType, ModuleType

from . import handlers as _handlers
from . import targets as _targets
from .handlers import HandlerError
from .targets import TargetError

__all__ = ["UpdateError", "UpdateBase", "Instrument", "Redefine", "UpdateManager", "LU"]


class UpdateError(ValueError):
    """An update that cannot be built or applied; nothing was changed."""


# ---------------------------------------------------------------------------
# Ids

_lock = threading.RLock()          # one update operation at a time, process-wide
_next_id = 1
_blocks = []                       # active id blocks, innermost last


class IdBlock:
    """Ids start, start+1, ... for the updates created inside the block."""

    def __init__(self, start):
        self.start = start
        self.used = 0


def _allocate_id():
    global _next_id
    with _lock:
        if _blocks:
            block = _blocks[-1]
            uid = block.start + block.used
            if uid in UpdateManager._updates:
                raise UpdateError("update id %d is already taken in this process" % uid)
            block.used += 1
        else:
            uid = _next_id
            while uid in UpdateManager._updates:
                uid += 1
        _next_id = max(_next_id, uid + 1)
        return uid


# ---------------------------------------------------------------------------
# Atomic swaps

def _swap(sets, deletes=()):
    """Apply (obj, attr, value) assignments and (obj, attr) deletions in one C call.

    ``deque(starmap(setattr, ...))`` never returns to the bytecode loop between items,
    so no other thread runs in the middle (with the GIL) and every new call sees either
    all of the old state or all of the new. Everything is validated beforehand, so
    nothing here is expected to fail.
    """
    deque(chain(starmap(setattr, sets), starmap(delattr, deletes)), maxlen=0)


def _running_old_code(codes, scan_generators):
    """Names of the threads (and suspended generators) currently in one of ``codes``."""
    ids = {id(c) for c in codes}
    blockers = []
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    for tid, frame in sys._current_frames().items():
        f = frame
        while f is not None:
            if id(f.f_code) in ids:
                who = "this thread" if tid == me else "thread %r" % names.get(tid, tid)
                blockers.append("%s is running %s" % (who, f.f_code.co_qualname))
                break
            f = f.f_back
        del f
    del frame
    if scan_generators:
        kinds = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
        for obj in gc.get_objects():
            if type(obj) in kinds:
                code = getattr(obj, "gi_code", None) or getattr(obj, "cr_code", None) \
                    or getattr(obj, "ag_code", None)
                frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None) \
                    or getattr(obj, "ag_frame", None)
                if frame is not None and id(code) in ids:
                    blockers.append("a suspended %s of %s" % (type(obj).__name__, code.co_qualname))
    return blockers


def _wait_quiescent(codes, wait):
    """Poll until no thread runs ``codes``; raise UpdateError naming blockers at timeout."""
    if not wait or not codes:
        return
    deadline = time.monotonic() + wait
    delay = 0.0005
    while True:
        blockers = _running_old_code(codes, scan_generators=True)
        if not blockers:
            return
        if time.monotonic() >= deadline:
            raise UpdateError("no quiescent point within %.3g s: %s" % (wait, "; ".join(blockers)))
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


# ---------------------------------------------------------------------------
# Update base and manager

class _ClassOrInstance:
    """Method usable both as ``LU.apply(ids)`` (class) and ``update.apply()`` (instance)."""

    def __init__(self, on_class, on_instance):
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, obj, cls):
        if obj is None:
            return self.on_class
        return types.MethodType(self.on_instance, obj)


class UpdateBase:
    """Common face of every update: id, status, describe(), apply() / revert().

    Class-level helpers as in the original (``LU`` is this class):
    ``LU.ls()``, ``LU.revert(ids)``, ``LU.apply(ids)``.
    """

    kind = "update"

    def __init__(self):
        self.id = _allocate_id()
        self.status = "created"
        self.notes = []          # things the user should know (dropped line handlers, ...)
        UpdateManager._updates[self.id] = self

    # subclasses implement these two; they raise UpdateError and leave nothing half done
    def _apply(self):
        raise NotImplementedError

    def _revert(self):
        raise NotImplementedError

    def _apply_instance(self):
        with _lock:
            if self.status == "applied":
                raise UpdateError("update %d is already applied" % self.id)
            try:
                self._apply()
            except (UpdateError, TargetError, HandlerError) as e:
                self.status = "failed: %s" % e
                raise UpdateError(str(e)) from None
            except Exception as e:
                self.status = "failed: %s: %s" % (type(e).__name__, e)
                raise UpdateError("%s: %s" % (type(e).__name__, e)) from e
            self.status = "applied"
            UpdateManager._order.append(self.id)

    def _revert_instance(self):
        with _lock:
            if self.status != "applied":
                raise UpdateError("update %d is not applied (status: %s)" % (self.id, self.status))
            try:
                self._revert()
            except UpdateError:
                raise
            except Exception as e:
                raise UpdateError("%s: %s" % (type(e).__name__, e)) from e
            self.status = "reverted"
            if self.id in UpdateManager._order:
                UpdateManager._order.remove(self.id)

    @staticmethod
    def _ls_class():
        return UpdateManager.ls()

    @staticmethod
    def _apply_class(ids):
        for uid in _id_list(ids):
            UpdateManager.apply_update(uid)

    @staticmethod
    def _revert_class(ids):
        for uid in _id_list(ids):
            UpdateManager.revert_update(uid)

    apply = _ClassOrInstance(_apply_class, _apply_instance)
    revert = _ClassOrInstance(_revert_class, _revert_instance)
    ls = _ls_class

    def describe(self):
        return {"id": self.id, "type": self.kind, "status": self.status, "notes": list(self.notes)}

    def _repr_fields(self):
        return []

    def _note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def __repr__(self):
        fields = [("type", self.kind), ("status", self.status)] + self._repr_fields()
        return "{%s}" % ", ".join("%s: %s" % kv for kv in fields)


@contextlib.contextmanager
def _unregister_on_error(update):
    """A constructor that fails leaves no update behind (its id stays used, so ids
    created in one id block mean the same update in every process)."""
    try:
        yield
    except (TargetError, HandlerError) as e:
        UpdateManager._updates.pop(update.id, None)
        raise UpdateError(str(e)) from None
    except BaseException:
        UpdateManager._updates.pop(update.id, None)
        raise


def _id_list(ids):
    if isinstance(ids, int):
        return [ids]
    return list(ids)


class UpdateManager:
    """Registry of every update of this process, by id."""

    _updates = {}
    _order = []                   # ids of applied updates, in application order

    @staticmethod
    def get(update_id):
        return UpdateManager._updates.get(update_id)

    @staticmethod
    @contextlib.contextmanager
    def id_block(start):
        """Updates created inside get ids start, start+1, ...; ``blk.used`` counts them."""
        if not isinstance(start, int) or start < 1:
            raise UpdateError("an id block starts at a positive integer, got %r" % (start,))
        block = IdBlock(start)
        with _lock:
            _blocks.append(block)
        try:
            yield block
        finally:
            with _lock:
                _blocks.remove(block)

    @staticmethod
    def apply_update(update_or_id):
        """Apply (or re-apply) an update; prints the outcome. Returns True on success."""
        return UpdateManager._act(update_or_id, "apply", "applied")

    @staticmethod
    def revert_update(update_id):
        """Revert an update (any order); prints the outcome. Returns True on success."""
        return UpdateManager._act(update_id, "revert", "reverted")

    @staticmethod
    def _act(update_or_id, action, done):
        update = UpdateManager._lookup(update_or_id)
        if update is None:
            print("Update %s not found" % (update_or_id,))
            return False
        before = len(update.notes)
        try:
            getattr(update, action)()
        except UpdateError as e:
            print("Update %d not %s: %s" % (update.id, done, e))
            return False
        print("Update %d %s" % (update.id, done))
        for note in update.notes[before:]:
            print("  note: %s" % note)
        return True

    @staticmethod
    def revert_all():
        """Revert every applied update, newest first."""
        for uid in reversed(list(UpdateManager._order)):
            UpdateManager._updates[uid].revert()

    @staticmethod
    def ls(all=False):
        """Print every applied update (every update with all=True); returns describe()s."""
        shown = [u for u in UpdateManager._updates.values() if all or u.status == "applied"]
        for u in shown:
            print()
            print("%d : %r" % (u.id, u))
        return [u.describe() for u in shown]

    @staticmethod
    def _lookup(update_or_id):
        if isinstance(update_or_id, UpdateBase):
            UpdateManager._updates.setdefault(update_or_id.id, update_or_id)
            return update_or_id
        return UpdateManager._updates.get(update_or_id)


LU = UpdateBase


def _applied_instruments():
    return [UpdateManager._updates[i] for i in sorted(UpdateManager._order)
            if isinstance(UpdateManager._updates[i], Instrument)]


# ---------------------------------------------------------------------------
# Instrument

def _normalize_joinpoint(key):
    if isinstance(key, str):
        kind, arg = key, ()
    elif isinstance(key, (tuple, list)) and len(key) == 2 and isinstance(key[0], str):
        kind, arg = key
    else:
        raise UpdateError("join point %r: expected 'kind' or ('kind', argument)" % (key,))
    if kind not in _handlers.JOIN_POINTS:
        raise UpdateError("unknown join point %r; known: %s"
                          % (kind, ", ".join(_handlers.JOIN_POINTS)))
    if kind in ("func_begin", "func_end"):
        if arg not in ((), None, []):
            raise UpdateError("join point %s takes no argument, got %r" % (kind, arg))
        return kind, ()
    if arg is None:
        arg = ()
    if kind in ("line_before", "line_after"):
        items = (arg,) if isinstance(arg, int) else arg
        try:
            lines = tuple(sorted(set(items)))
        except TypeError:
            raise UpdateError("join point %s: lines must be an int or a collection of ints, "
                              "got %r" % (kind, arg)) from None
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lines):
            raise UpdateError("join point %s: lines must be positive ints, got %r" % (kind, arg))
        return kind, lines
    items = (arg,) if isinstance(arg, str) else arg
    try:
        names = tuple(dict.fromkeys(items))
    except TypeError:
        raise UpdateError("join point %s: variables must be a name or a collection of names, "
                          "got %r" % (kind, arg)) from None
    if not all(isinstance(n, str) and n for n in names):
        raise UpdateError("join point %s: variables must be names, got %r" % (kind, arg))
    return kind, names


def _payload_items(payload):
    """A dict, or (as the seed README's list-valued keys need) an iterable of pairs."""
    if isinstance(payload, dict):
        return list(payload.items())
    try:
        items = [tuple(p) for p in payload]
    except TypeError:
        raise UpdateError("join points must be a dict {join_point: handler}, got %s"
                          % type(payload).__name__) from None
    if not all(len(p) == 2 for p in items):
        raise UpdateError("join points must be (join_point, handler) pairs")
    return items


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


def _has_wildcard(pattern):
    return "*" in pattern


class Instrument(UpdateBase):
    """Run handlers at join points of the target functions (dispatched by the engine)."""

    kind = "instrument"

    def __init__(self, target_scope, jointpoint_payload, update_trigger=None,
                 revert_trigger=None, *, source="auto"):
        scopes = ([target_scope] if isinstance(target_scope, str)
                  else list(target_scope) if isinstance(target_scope, (list, tuple)) else [])
        if not scopes or not all(isinstance(s, str) for s in scopes):
            raise UpdateError("scope must be a pattern string or a list of them, got %r"
                              % (target_scope,))
        joinpoints = []
        seen = set()
        for key, handler in _payload_items(jointpoint_payload):
            kind, arg = _normalize_joinpoint(key)
            if (kind, arg) in seen:
                raise UpdateError("join point %r given twice" % ((kind, arg),))
            seen.add((kind, arg))
            try:
                _handlers.handler_parameters(handler, kind)
            except HandlerError as e:
                raise UpdateError(str(e)) from None
            joinpoints.append((kind, arg, handler))
        if not joinpoints:
            raise UpdateError("no join point given")
        self.scope = target_scope
        self._scopes = scopes
        self._joinpoints = joinpoints
        self._source = source
        self._where = {}            # id(code) -> (code, module, qualname, home file)
        self.instrumented = []
        self.skipped = []
        super().__init__()
        with _unregister_on_error(self):
            self._plan()            # validate now: bad input raises, nothing is applied
            self._matchers = [_targets.CodeMatcher(s) for s in scopes]

    # -- building requests
    _home_file = None       # while re-targeting: the file the join points' lines refer to

    def _fields_for(self, code, display, lenient=False):
        """Request fields for one code. Strict: any misfit raises HandlerError. Lenient
        (code that replaced or joined the targets later): join points that do not fit are
        dropped there and noted; the others stay. (Subclasses override this.)"""
        home_file = self._home_file
        fields = {}
        for kind, arg, handler in self._joinpoints:
            if lenient and kind in ("line_before", "line_after") and arg:
                if home_file is not None and code.co_filename != home_file:
                    self._note("update %s: %s now runs code from %s; its %s handler on lines "
                               "%s of %s is dropped there"
                               % (self.id, display, code.co_filename, kind,
                                  ", ".join(map(str, arg)), home_file))
                    continue
                have = set(_handlers.code_lines(code))
                missing = [n for n in arg if n not in have]
                if missing:
                    self._note("update %s: line %s no longer holds code in %s; its %s "
                               "handler is dropped there"
                               % (self.id, ", ".join(map(str, missing)), display, kind))
                    arg = tuple(n for n in arg if n in have)
                    if not arg:
                        continue
            try:
                field, value = _handlers.bind(kind, handler, code, arg, display)
            except HandlerError as e:
                if not lenient:
                    raise
                self._note("update %s: %s handler dropped on %s: %s"
                           % (self.id, kind, display, e))
                continue
            _merge(fields, field, value)
        return fields

    def _plan(self):
        targets, seen = [], set()
        for pattern in self._scopes:
            for t in _targets.resolve(pattern):
                if id(t.code) not in seen:
                    seen.add(id(t.code))
                    targets.append(t)
        strict = len(self._scopes) == 1 and not _has_wildcard(self._scopes[0])
        plan, skipped = [], []
        for t in targets:
            try:
                plan.append((t, self._fields_for(t.code, t.name)))
            except HandlerError as e:
                if strict:
                    raise
                skipped.append("%s: %s" % (t.name, e))
        if not plan:
            raise UpdateError("no target fits the handlers: %s" % "; ".join(skipped[:3]))
        return plan, skipped

    # -- engine side
    def _apply(self):
        from . import engine
        plan, skipped = self._plan()
        self._where = {}
        try:
            for t, fields in plan:
                engine.arm(self.id, t.code, engine.Request(**fields), module=t.module,
                           qualname=t.qualname, source=self._source)
                self._where[id(t.code)] = (t.code, t.module, t.qualname, t.code.co_filename)
            if any(_has_wildcard(p) for p in self._scopes):
                # Code seen later (modules imported later) only matters for wildcards: an
                # exact name needs its module imported now. Handlers are served by
                # sys.monitoring; "auto" could watch through the PEP 523 hook, which
                # costs every call of the program.
                engine.watch(self.id, self._match_later,
                             source="monitoring" if self._source == "auto" else self._source)
        except Exception as e:
            self._disarm_all()
            raise UpdateError("the engine refused: %s" % e) from e
        self.instrumented = [t.name for t, _ in plan]
        self.skipped = skipped

    def _disarm_all(self):
        from . import engine
        try:
            engine.unwatch(self.id)
        finally:
            engine.disarm(self.id)
            self._where = {}

    def _revert(self):
        self._disarm_all()

    def _match_later(self, code):
        """engine.watch matcher: code seen after apply -> (Request, module, qualname)."""
        try:
            from . import engine
            for matcher in self._matchers:
                hit = matcher(code)
                if hit is not None:
                    fields = self._fields_for(code, "%s.%s" % hit, lenient=True)
                    if not fields:
                        return None
                    self._where[id(code)] = (code, hit[0], hit[1], code.co_filename)
                    return engine.Request(**fields), hit[0], hit[1]
        except Exception:
            return None
        return None

    def _retarget(self, old, new):
        """The code of a function changed from ``old`` to ``new``: move our handlers."""
        if self._arm_successor(old, new):
            self._drop(old)

    def _arm_successor(self, old, new):
        """Arm on ``new`` what we armed on ``old`` (before the swap, so the first call of
        the new code is already instrumented). True if ``old`` was ours."""
        from . import engine
        entry = self._where.get(id(old))
        if entry is None or entry[0] is not old:
            return False
        _, module, qualname, home = entry
        display = "%s.%s" % (module, qualname)
        self._home_file = home
        try:
            fields = self._fields_for(new, display, lenient=True)
        except HandlerError as e:
            fields = None
            self._note("update %d: handlers dropped on %s: %s" % (self.id, display, e))
        finally:
            self._home_file = None
        if fields:
            try:
                engine.arm(self.id, new, engine.Request(**fields), module=module,
                           qualname=qualname, source=self._source)
                self._where[id(new)] = (new, module, qualname, home)
            except Exception as e:
                self._note("update %d: the engine refused %s: %s" % (self.id, display, e))
        return True

    def _drop(self, old):
        from . import engine
        entry = self._where.get(id(old))
        if entry is not None and entry[0] is old:
            engine.disarm(self.id, old)
            del self._where[id(old)]

    def describe(self):
        d = super().describe()
        d.update(scope=self.scope, joinpoints=[(k, a) for k, a, _ in self._joinpoints],
                 instrumented=list(self.instrumented), skipped=list(self.skipped))
        return d

    def _repr_fields(self):
        return [("scope", self.scope), ("instrumented", "[%s]" % ", ".join(self.instrumented))]


# ---------------------------------------------------------------------------
# Redefine: slots that hold a function's code or a namespace's binding

_MISSING = object()
_PREDEFINED = "(predefined)"       # display name of predefine's names: not listed as redefined
_replacements = {}                 # id(function) -> function: functions a rebind created
_KIND_FLAGS = 0x20 | 0x80 | 0x100 | 0x200    # generator, coroutine, iterable coroutine, async gen
_CLASS_SKIP = {"__dict__", "__weakref__", "__module__", "__qualname__", "__firstlineno__",
               "__static_attributes__"}


def _func_state(func):
    return (func.__code__, func.__defaults__, func.__kwdefaults__, func.__doc__)


class _FunctionSlot:
    """A function whose code we change in place; effective state = newest layer."""

    def __init__(self, func):
        self.func = func
        self.original = _func_state(func)
        self.layers = []          # [(update_id, state)]

    def state(self, layers):
        return layers[-1][1] if layers else self.original

    def assignments(self, state):
        f = self.func
        return [(f, "__code__", state[0]), (f, "__defaults__", state[1]),
                (f, "__kwdefaults__", state[2]), (f, "__doc__", state[3])]


class _AttrSlot:
    """A name in a module or class namespace that we rebind."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name
        self.original = vars(owner).get(name, _MISSING)
        self.layers = []

    def state(self, layers):
        return layers[-1][1] if layers else self.original


_function_slots = {}     # id(func) -> _FunctionSlot
_attr_slots = {}         # (id(owner), name) -> _AttrSlot


def _function_slot(func):
    slot = _function_slots.get(id(func))
    if slot is None or slot.func is not func:
        slot = _function_slots[id(func)] = _FunctionSlot(func)
    return slot


def _attr_slot(owner, name):
    slot = _attr_slots.get((id(owner), name))
    if slot is None or slot.owner is not owner:
        slot = _attr_slots[(id(owner), name)] = _AttrSlot(owner, name)
    return slot


def _renamed(code, name, qualname):
    """The code with our target's names, nested code renamed along (logs stay readable)."""
    prefix = code.co_qualname + "."
    consts = tuple(
        _renamed(c, c.co_name, qualname + "." + c.co_qualname[len(prefix):])
        if type(c) is CodeType and c.co_qualname.startswith(prefix) else c
        for c in code.co_consts)
    return code.replace(co_name=name, co_qualname=qualname, co_consts=consts)


def _code_tree(code, path=()):
    tree = {path: code}
    for c in code.co_consts:
        if type(c) is CodeType:
            tree.update(_code_tree(c, path + (c.co_name,)))
    return tree


def _kind_name(code):
    flags = code.co_flags & _KIND_FLAGS
    return {0: "plain function", 0x20: "generator", 0x80: "coroutine",
            0x100: "iterable coroutine", 0x200: "async generator"}.get(flags, "function")


def _as_function(value):
    """staticmethod/classmethod -> (underlying function, wrapper type)."""
    if type(value) is FunctionType:
        return value, None
    if isinstance(value, (staticmethod, classmethod)):
        inner = value.__func__
        if type(inner) is FunctionType:
            return inner, type(value)
    return None, None


class Redefine(UpdateBase):
    """Hot-patch functions, methods, properties and classes of one module.

    ``Redefine(module, predefine, {dotted_name: new_object})``. New code runs with the
    module's globals. Functions are changed in place (``__code__``, defaults, doc), so
    every alias sees the change; when that is impossible (a different set of closure
    variables) the name is rebound and the aliases in loaded modules are rebound too.
    ``predefine`` (None, a function, a source string or a dict) defines helper names in
    the module first. ``wait=`` seconds waits for a point where no thread runs the
    replaced code.
    """

    kind = "redefine"

    def __init__(self, module, predefine, func_defines, update_trigger=None,
                 revert_trigger=None, *, wait=None):
        if isinstance(module, ModuleType):
            module = vars(module).get("__name__")
        if not isinstance(module, str) or sys.modules.get(module) is None:
            close = [m for m in sys.modules if isinstance(module, str) and module in m][:5]
            raise UpdateError("Module %s not found (not imported in this process)%s"
                              % (module, "; similar: " + ", ".join(close) if close else ""))
        if predefine is not None and not (callable(predefine) or isinstance(predefine, (str, dict))):
            raise UpdateError("predefine must be None, a function, source text or a dict")
        if not isinstance(func_defines, dict):
            raise UpdateError("definitions must be a dict {dotted_name: new_object}")
        if wait is not None and not (isinstance(wait, (int, float)) and wait >= 0):
            raise UpdateError("wait must be a number of seconds >= 0")
        self.module = module
        self.predefine = predefine
        self.func_defines = dict(func_defines)
        self.wait = wait
        self.redefined = []
        self._layers = []            # [(slot, state)] this update added
        self._caches = []
        super().__init__()
        with _unregister_on_error(self):
            self._plan(dry_run=True)     # validate names and kinds now

    # -- planning (no change to the program)
    def _path_of(self, dotted):
        if not isinstance(dotted, str) or not dotted:
            raise UpdateError("a definition name must be a dotted string, got %r" % (dotted,))
        if dotted.startswith(self.module + "."):
            return tuple(dotted[len(self.module) + 1:].split("."))
        head = dotted.split(".")[0]
        if head != self.module and head in sys.modules and "." in dotted:
            raise UpdateError("%s is in module %s, not in %s (one Redefine per module)"
                              % (dotted, head, self.module))
        return tuple(dotted.split("."))

    def _owner_of(self, module, path, dotted):
        owner = module
        for i, seg in enumerate(path[:-1]):
            value = vars(owner).get(seg, _MISSING)
            if type(value) is FunctionType:
                raise UpdateError("%s: a nested function cannot be redefined on its own; "
                                  "redefine the enclosing %s.%s"
                                  % (dotted, self.module, ".".join(path[:i + 1])))
            if not issubclass(type(value), type):
                where = ".".join((self.module,) + path[:i])
                names = sorted(k for k, v in vars(owner).items() if isinstance(v, type))
                raise UpdateError("%s: %s has no class %r (classes there: %s)"
                                  % (dotted, where, seg, ", ".join(names[:20]) or "none"))
            owner = value
        return owner

    def _run_predefine(self, module):
        pre = self.predefine
        if pre is None:
            return {}
        if isinstance(pre, dict):
            return dict(pre)
        mdict = vars(module)
        if isinstance(pre, str):
            names = {}
            exec(compile(pre, "<predefine of update>", "exec"), mdict, names)
            return names
        if type(pre) is not FunctionType:
            raise UpdateError("predefine must be a plain function")
        if pre.__code__.co_argcount or pre.__code__.co_kwonlyargcount:
            raise UpdateError("predefine must take no arguments")
        func = FunctionType(pre.__code__, mdict, pre.__name__, None, pre.__closure__)
        captured = {}

        def grab(frame, event, arg):
            if event == "return" and frame.f_code is func.__code__:
                captured.update(frame.f_locals)
        previous = sys.getprofile()
        sys.setprofile(grab)
        try:
            func()
        finally:
            sys.setprofile(previous)
        return captured

    def _plan(self, dry_run=False):
        """Validate every definition; returns (function changes, attribute changes).

        function change: (slot, new_state, dotted name, wrapper-to-clear-or-None)
        attribute change: (slot, new_value, dotted name)
        """
        module = sys.modules.get(self.module)
        if module is None:
            raise UpdateError("Module %s not found (no longer imported)" % self.module)
        funcs, attrs = [], []
        if not dry_run:
            for name, value in self._run_predefine(module).items():
                attrs.append((_attr_slot(module, name), self._adopt(value, module, (name,)),
                              _PREDEFINED))
        for key, new in self.func_defines.items():
            path = self._path_of(key)
            dotted = ".".join((self.module,) + path)
            owner = self._owner_of(module, path, dotted)
            self._plan_member(module, owner, path, new, dotted, funcs, attrs, dry_run)
        return funcs, attrs

    def _adopt(self, value, module, path, owner=None):
        """A new function from a patch, re-created with the module's globals."""
        func, wrapper = _as_function(value)
        if func is None or func.__globals__ is vars(module):
            return value
        qualname = ".".join(path)
        code = _renamed(func.__code__, path[-1], qualname)
        closure = self._closure_for(code, func, None, owner)
        new = FunctionType(code, vars(module), path[-1], func.__defaults__, closure)
        new.__kwdefaults__ = func.__kwdefaults__
        new.__doc__ = func.__doc__
        new.__dict__.update(func.__dict__)
        new.__qualname__ = qualname
        new.__module__ = vars(module).get("__name__")
        return wrapper(new) if wrapper else new

    def _adopt_class(self, module, owner, path, cls):
        """A class new to the module: its methods get the module's globals."""
        qual = self._qual(owner, path)
        for name, value in list(vars(cls).items()):
            adopted = self._adopt(value, module, qual + (name,), cls)
            if adopted is not value:
                setattr(cls, name, adopted)
        cls.__module__ = self.module
        cls.__qualname__ = ".".join(qual)

    @staticmethod
    def _closure_for(code, new_func, old_func, owner):
        if not code.co_freevars:
            return None
        cells = []
        old_cells = dict(zip(old_func.__code__.co_freevars, old_func.__closure__ or ())) \
            if old_func is not None else {}
        new_cells = dict(zip(new_func.__code__.co_freevars, new_func.__closure__ or ()))
        for name in code.co_freevars:       # the patch's own cells win over the old ones
            if name == "__class__" and isinstance(owner, type):
                cells.append(types.CellType(owner))
            elif name in new_cells:
                cells.append(new_cells[name])
            elif name in old_cells:
                cells.append(old_cells[name])
            else:
                raise UpdateError("closure variable %r of %s cannot be provided"
                                  % (name, code.co_qualname))
        return tuple(cells)

    def _plan_member(self, module, owner, path, new, dotted, funcs, attrs, dry_run):
        name = path[-1]
        existing = vars(owner).get(name, _MISSING)
        if isinstance(new, type):
            if existing is _MISSING:
                if not dry_run:
                    self._adopt_class(module, owner, path, new)
                attrs.append((_attr_slot(owner, name), new, dotted))
                return
            if not isinstance(existing, type):
                raise UpdateError("%s is a %s; it cannot be replaced by class %s"
                                  % (dotted, type(existing).__name__, new.__name__))
            self._plan_class(module, existing, path, new, dotted, funcs, attrs, dry_run)
            return
        new_func, new_wrapper = _as_function(new)
        if isinstance(existing, property) and isinstance(new, property):
            self._plan_property(module, owner, path, existing, new, dotted, funcs, attrs)
            return
        if new_func is None:
            if callable(new) and not isinstance(new, type):
                raise UpdateError("%s: cannot redefine with a %s; give a function, class or "
                                  "property" % (dotted, type(new).__name__))
            if existing is not _MISSING and (type(existing) is FunctionType or isinstance(
                    existing, (type, staticmethod, classmethod, property))):
                raise UpdateError("%s is a %s; it cannot be replaced by a %s"
                                  % (dotted, type(existing).__name__, type(new).__name__))
            attrs.append((_attr_slot(owner, name), new, dotted))
            return
        if existing is _MISSING:
            attrs.append((_attr_slot(owner, name), self._adopt(new, module, self._qual(owner, path),
                                                               owner), dotted))
            return
        old_func, old_wrapper = _as_function(existing)
        cache = None
        if old_func is None:
            inner = _targets._wrapped(existing) if callable(existing) else None
            if type(inner) is FunctionType:
                old_func, cache = inner, existing        # e.g. functools.lru_cache
            else:
                raise UpdateError("%s is a %s, not a function; it cannot be redefined with a "
                                  "function" % (dotted, "class" if isinstance(existing, type)
                                                else type(existing).__name__))
        if old_wrapper is not None and new_wrapper is not None and old_wrapper is not new_wrapper:
            raise UpdateError("%s is a %s; the new definition is a %s"
                              % (dotted, old_wrapper.__name__, new_wrapper.__name__))
        self._plan_function(module, owner, path, old_func, new_func, dotted, funcs, attrs,
                            cache, dry_run)

    @staticmethod
    def _qual(owner, path):
        if isinstance(owner, type):
            return tuple(vars(owner).get("__qualname__", owner.__name__).split(".")) + path[-1:]
        return path[-1:]

    def _plan_function(self, module, owner, path, old_func, new_func, dotted, funcs, attrs,
                       cache=None, dry_run=False):
        old_func = _targets.innermost_function(old_func)
        new_func = _targets.innermost_function(new_func)
        slot = _function_slot(old_func)
        current = old_func.__code__
        new_code = new_func.__code__
        if (current.co_flags & _KIND_FLAGS) != (new_code.co_flags & _KIND_FLAGS):
            raise UpdateError("%s: the new definition is a %s but the running one is a %s; "
                              "callers would break" % (dotted, _kind_name(new_code),
                                                       _kind_name(current)))
        new_code = _renamed(new_code, current.co_name, current.co_qualname)
        state = (new_code, new_func.__defaults__, new_func.__kwdefaults__, new_func.__doc__)
        ours = _replacements.get(id(old_func)) is old_func
        if new_code.co_freevars == current.co_freevars and not ours:
            funcs.append((slot, state, dotted, cache))
            for key, value in new_func.__dict__.items():   # function attributes set by the patch
                if key != "__wrapped__":
                    attrs.append((_attr_slot(old_func, key), value, dotted))
            return
        # Different closure variables: __code__ cannot change in place. Build a new
        # function and rebind it where the old one is bound (owner and module aliases).
        closure = self._closure_for(new_code, new_func, old_func, owner)
        replacement = FunctionType(new_code, old_func.__globals__, old_func.__name__,
                                   new_func.__defaults__, closure)
        replacement.__kwdefaults__ = new_func.__kwdefaults__
        replacement.__doc__ = new_func.__doc__
        replacement.__dict__.update(old_func.__dict__)
        replacement.__qualname__ = old_func.__qualname__
        replacement.__module__ = old_func.__module__
        if not dry_run:
            _replacements[id(replacement)] = replacement
        existing = vars(owner).get(path[-1])
        _, wrapper = _as_function(existing)
        if existing is not old_func and wrapper is None:
            raise UpdateError("%s: the closure variables change (%s -> %s) and the function "
                              "is reached through a decorator, so it cannot be replaced in place"
                              % (dotted, ", ".join(current.co_freevars) or "none",
                                 ", ".join(new_code.co_freevars) or "none"))
        attrs.append((_attr_slot(owner, path[-1]),
                      wrapper(replacement) if wrapper else replacement, dotted))
        if wrapper is None:
            for mod_owner, alias in self._module_aliases(old_func, owner, path[-1]):
                attrs.append((_attr_slot(mod_owner, alias), replacement,
                              "%s.%s (alias)" % (vars(mod_owner).get("__name__"), alias)))

    @staticmethod
    def _module_aliases(func, owner, name):
        found = []
        for mod in list(sys.modules.values()):
            if not isinstance(mod, ModuleType):
                continue
            for alias, value in list(vars(mod).items()):
                if value is func and not (mod is owner and alias == name):
                    found.append((mod, alias))
        return found

    def _plan_property(self, module, owner, path, old, new, dotted, funcs, attrs):
        parts = ("fget", "fset", "fdel")
        olds = [getattr(old, p) for p in parts]
        news = [getattr(new, p) for p in parts]
        in_place = all(
            n is None or (type(o) is FunctionType and type(n) is FunctionType
                          and o.__code__.co_freevars == n.__code__.co_freevars)
            for o, n in zip(olds, news)) and all(
            n is not None for o, n in zip(olds, news) if o is not None)
        if in_place:
            for o, n, p in zip(olds, news, parts):
                if n is not None:
                    self._plan_function(module, owner, path, o, n, "%s.%s" % (dotted, p),
                                        funcs, attrs)
            return
        adopted = property(*[self._adopt(n, module, self._qual(owner, path), owner)
                             if n is not None else None for n in news], new.__doc__)
        attrs.append((_attr_slot(owner, path[-1]), adopted, dotted))

    def _plan_class(self, module, old, path, new, dotted, funcs, attrs, dry_run):
        if type(old) is not type(new):
            raise UpdateError("%s: the metaclass changes (%s -> %s); a class cannot change "
                              "that in place" % (dotted, type(old).__name__, type(new).__name__))
        old_bases = tuple(b.__qualname__ for b in old.__bases__)
        new_bases = tuple(b.__qualname__ for b in new.__bases__)
        if old_bases != new_bases:
            raise UpdateError("%s: the base classes change (%s -> %s); existing instances "
                              "could not follow" % (dotted, ", ".join(old_bases),
                                                    ", ".join(new_bases)))
        if vars(old).get("__slots__") != vars(new).get("__slots__"):
            raise UpdateError("%s: __slots__ changes; the instance layout cannot change in place"
                              % dotted)
        for name, value in vars(new).items():
            if name in _CLASS_SKIP or name == "__slots__":
                continue
            member_path = path + (name,)
            existing = vars(old).get(name, _MISSING)
            if existing is value:
                continue
            self._plan_member(module, old, member_path, value, "%s.%s" % (dotted, name),
                              funcs, attrs, dry_run)

    # -- applying
    def _changes(self):
        funcs, attrs = self._plan()
        seen = set()
        for slot, _, dotted, _ in funcs:
            if id(slot) in seen:
                raise UpdateError("%s is redefined twice in one update" % dotted)
            seen.add(id(slot))
        return funcs, attrs

    def _apply(self):
        funcs, attrs = self._changes()
        layers = [(slot, state) for slot, state, _, _ in funcs] + \
                 [(slot, value) for slot, value, _ in attrs]
        caches = [c for _, _, _, c in funcs if c is not None]
        _commit(self, layers, add=True, caches=caches)
        self.redefined = sorted({d for _, _, d, _ in funcs} |
                                {d for _, _, d in attrs if d is not _PREDEFINED})
        self.predefined = sorted(slot.name for slot, _, d in attrs if d is _PREDEFINED)
        self._layers = layers
        self._caches = caches

    def _revert(self):
        _commit(self, self._layers, add=False, caches=self._caches)
        self._layers = []

    def describe(self):
        d = super().describe()
        d.update(module=self.module, redefined=list(self.redefined),
                 predefined=list(getattr(self, "predefined", [])), wait=self.wait)
        return d

    def _repr_fields(self):
        return [("module", self.module), ("redefined", "[%s]" % ", ".join(self.redefined))]


def _commit(update, layers, add, caches=()):
    """Add (or remove) an update's layers, then make every touched slot show its
    effective state: validate, wait for quiescence, re-arm instrumentation on the new
    code, swap everything in one go, disarm the old code."""
    uid = update.id
    plans = []                       # (slot, new layer list)
    for slot, state in layers:
        if add:
            new_layers = slot.layers + [(uid, state)]
        else:
            new_layers = [(i, s) for i, s in slot.layers if i != uid]
        plans.append((slot, new_layers))
    sets, deletes, code_moves, old_codes = [], [], [], []
    for slot, new_layers in plans:
        before, after = slot.state(slot.layers), slot.state(new_layers)
        if isinstance(slot, _FunctionSlot):
            if len(after[0].co_freevars) != len(slot.func.__closure__ or ()):
                raise UpdateError("%s: closure size mismatch" % slot.func.__qualname__)
            sets.extend(slot.assignments(after))
            if before[0] is not after[0]:
                code_moves.append((before[0], after[0]))
                old_codes.append(before[0])
        else:
            if after is _MISSING:
                if slot.name in vars(slot.owner):
                    deletes.append((slot.owner, slot.name))
            else:
                sets.append((slot.owner, slot.name, after))
            old_f, _ = _as_function(before) if before is not _MISSING else (None, None)
            new_f, _ = _as_function(after) if after is not _MISSING else (None, None)
            if old_f is not None and new_f is not None and old_f.__code__ is not new_f.__code__:
                code_moves.append((old_f.__code__, new_f.__code__))
                old_codes.append(old_f.__code__)
    _wait_quiescent(old_codes, update.wait if isinstance(update, Redefine) else None)
    to_drop = _arm_successors(code_moves, update)
    _swap(sets, deletes)
    for slot, new_layers in plans:
        slot.layers = new_layers
    for cache in caches:
        clear = getattr(type(cache), "cache_clear", None)
        if clear is not None:
            clear(cache)
    for inst, old_code in to_drop:
        inst._drop(old_code)


def _arm_successors(code_moves, update):
    """Arm every applied Instrument's handlers on the code about to replace the code
    they are armed on (nested code matched by name); returns what to disarm after the
    swap."""
    instruments = _applied_instruments()
    to_drop = []
    if not instruments:
        return to_drop
    for old, new in code_moves:
        old_tree, new_tree = _code_tree(old), _code_tree(new)
        for path, old_code in old_tree.items():
            new_code = new_tree.get(path)
            for inst in instruments:
                entry = inst._where.get(id(old_code))
                if entry is None or entry[0] is not old_code:
                    continue
                to_drop.append((inst, old_code))
                if new_code is None:
                    update._note("update %d: %s no longer exists; its handlers are dropped"
                                 % (inst.id, old_code.co_qualname))
                    continue
                before = len(inst.notes)
                inst._arm_successor(old_code, new_code)
                for note in inst.notes[before:]:
                    update._note(note)
    return to_drop
