"""Redefine: hot-patch functions, methods, properties and classes of one module.

Planning (this file) validates every definition and turns it into slot layers without
changing the program; commit.py swaps them in. Functions keep their identity (their
``__code__`` changes in place) wherever that is possible.
"""
import sys
import types
from types import FunctionType, ModuleType

from .. import targets as _targets
from .base import UpdateBase
from .commit import commit
from .instrument import unregister_on_error
from .slots import (KIND_FLAGS, MISSING, as_function, attr_slot, function_slot, kind_name,
                    renamed)
from .validation import UpdateError

__all__ = ["Redefine"]

_PREDEFINED = "(predefined)"       # display name of predefine's names: not listed as redefined
_replacements = {}                 # id(function) -> function: functions a rebind created
_CLASS_SKIP = {"__dict__", "__weakref__", "__module__", "__qualname__", "__firstlineno__",
               "__static_attributes__"}


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
        pending = isinstance(module, str) and sys.modules.get(module) is None \
            and _targets.importable(module)
        if not pending and (not isinstance(module, str) or sys.modules.get(module) is None):
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
        if pending:
            return                       # validated when the module is imported
        with unregister_on_error(self):
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
            value = vars(owner).get(seg, MISSING)
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
            if _targets.importable(self.module):
                raise _targets.ModuleNotImported(self.module, self.module)
            raise UpdateError("Module %s not found (no longer imported)" % self.module)
        funcs, attrs = [], []
        if not dry_run:
            for name, value in self._run_predefine(module).items():
                attrs.append((attr_slot(module, name), self._adopt(value, module, (name,)),
                              _PREDEFINED))
        for key, new in self.func_defines.items():
            path = self._path_of(key)
            dotted = ".".join((self.module,) + path)
            owner = self._owner_of(module, path, dotted)
            self._plan_member(module, owner, path, new, dotted, funcs, attrs, dry_run)
        return funcs, attrs

    def _adopt(self, value, module, path, owner=None):
        """A new function from a patch, re-created with the module's globals."""
        func, wrapper = as_function(value)
        if func is None or func.__globals__ is vars(module):
            return value
        qualname = ".".join(path)
        code = renamed(func.__code__, path[-1], qualname)
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
        existing = vars(owner).get(name, MISSING)
        if isinstance(new, type):
            if existing is MISSING:
                if not dry_run:
                    self._adopt_class(module, owner, path, new)
                attrs.append((attr_slot(owner, name), new, dotted))
                return
            if not isinstance(existing, type):
                raise UpdateError("%s is a %s; it cannot be replaced by class %s"
                                  % (dotted, type(existing).__name__, new.__name__))
            self._plan_class(module, existing, path, new, dotted, funcs, attrs, dry_run)
            return
        new_func, new_wrapper = as_function(new)
        if isinstance(existing, property) and isinstance(new, property):
            self._plan_property(module, owner, path, existing, new, dotted, funcs, attrs)
            return
        if new_func is None:
            if callable(new) and not isinstance(new, type):
                raise UpdateError("%s: cannot redefine with a %s; give a function, class or "
                                  "property" % (dotted, type(new).__name__))
            if existing is not MISSING and (type(existing) is FunctionType or isinstance(
                    existing, (type, staticmethod, classmethod, property))):
                raise UpdateError("%s is a %s; it cannot be replaced by a %s"
                                  % (dotted, type(existing).__name__, type(new).__name__))
            attrs.append((attr_slot(owner, name), new, dotted))
            return
        if existing is MISSING:
            attrs.append((attr_slot(owner, name), self._adopt(new, module, self._qual(owner, path),
                                                               owner), dotted))
            return
        old_func, old_wrapper = as_function(existing)
        cache = None
        if old_func is None:
            inner = _targets.wrapped(existing) if callable(existing) else None
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
        slot = function_slot(old_func)
        current = old_func.__code__
        new_code = new_func.__code__
        if (current.co_flags & KIND_FLAGS) != (new_code.co_flags & KIND_FLAGS):
            raise UpdateError("%s: the new definition is a %s but the running one is a %s; "
                              "callers would break" % (dotted, kind_name(new_code),
                                                       kind_name(current)))
        new_code = renamed(new_code, current.co_name, current.co_qualname)
        state = (new_code, new_func.__defaults__, new_func.__kwdefaults__, new_func.__doc__)
        ours = _replacements.get(id(old_func)) is old_func
        if new_code.co_freevars == current.co_freevars and not ours:
            funcs.append((slot, state, dotted, cache))
            for key, value in new_func.__dict__.items():   # function attributes set by the patch
                if key != "__wrapped__":
                    attrs.append((attr_slot(old_func, key), value, dotted))
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
        _, wrapper = as_function(existing)
        if existing is not old_func and wrapper is None:
            raise UpdateError("%s: the closure variables change (%s -> %s) and the function "
                              "is reached through a decorator, so it cannot be replaced in place"
                              % (dotted, ", ".join(current.co_freevars) or "none",
                                 ", ".join(new_code.co_freevars) or "none"))
        attrs.append((attr_slot(owner, path[-1]),
                      wrapper(replacement) if wrapper else replacement, dotted))
        if wrapper is None:
            for mod_owner, alias in self._module_aliases(old_func, owner, path[-1]):
                attrs.append((attr_slot(mod_owner, alias), replacement,
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
        attrs.append((attr_slot(owner, path[-1]), adopted, dotted))

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
            existing = vars(old).get(name, MISSING)
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
        commit(self, layers, add=True, caches=caches)
        self.redefined = sorted({d for _, _, d, _ in funcs} |
                                {d for _, _, d in attrs if d is not _PREDEFINED})
        self.predefined = sorted(slot.name for slot, _, d in attrs if d is _PREDEFINED)
        self._layers = layers
        self._caches = caches

    def _revert(self):
        commit(self, self._layers, add=False, caches=self._caches)
        self._layers = []

    def describe(self):
        d = super().describe()
        d.update(module=self.module, redefined=list(self.redefined),
                 predefined=list(getattr(self, "predefined", [])), wait=self.wait)
        return d

    def label(self):
        return "%s %s" % (self.kind, self.module)

    def repr_fields(self):
        return [("module", self.module), ("redefined", "[%s]" % ", ".join(self.redefined))]


