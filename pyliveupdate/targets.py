"""Target patterns -> code objects, found without running any of the program's code.

Patterns (dotted, module prefix first):
    module.func            one function (or method, property, nested function: outer.inner)
    module.Class.*         every member one level below Class
    module.**              everything defined in the module, at any depth
    **                     the program's own code: __main__ and every module whose file is
                           outside the standard library, site-packages and pyliveupdate
    **.name                `name` at any depth in the program's own code

A target is a *code object*: nested functions and closures are reached through the
``co_consts`` of the code that encloses them, decorated functions through their
``__wrapped__`` chain. Only ``vars()``, ``__dict__`` of builtin types and
``inspect.getattr_static`` are used: no property getter, ``__getattr__`` or descriptor of
the program ever runs while resolving.
"""
import difflib
import functools
import importlib.util
import inspect
import os
import site
import sys
import sysconfig
from types import CodeType, FunctionType, ModuleType

from .updates import origin as _origin
from .updates.origin import is_function_code
from .updates.validation import UpdateError

__all__ = ["Target", "TargetError", "ModuleNotImported", "resolve", "CodeMatcher",
           "module_of_code", "importable"]


class TargetError(UpdateError):
    """A pattern that cannot be resolved; the message says what exists nearby."""


class Target:
    """One code object to act on, and how it was found."""
    __slots__ = ("module", "path", "code", "function")

    def __init__(self, module, path, code, function=None):
        self.module = module        # name of the defining module
        self.path = path            # attribute path below the module that found the code
        self.code = code
        self.function = function    # the function holding the code, if reached by one

    def __repr__(self):
        return "Target(%s)" % self.name

    @property
    def qualname(self):
        if _generated(self.code) and self.path:
            return ".".join(self.path)     # exec'd for a class: named where it is found
        return self.code.co_qualname

    @property
    def name(self):
        return "%s.%s" % (self.module, self.qualname)


# ---------------------------------------------------------------------------
# Reading objects without running their code

_staticmethod_func = staticmethod.__dict__["__func__"].__get__
_classmethod_func = classmethod.__dict__["__func__"].__get__
_property_parts = [property.__dict__[n].__get__ for n in ("fget", "fset", "fdel")]


def wrapped(obj):
    """``obj.__wrapped__`` as stored (instance dict or class dict), or None."""
    try:
        value = inspect.getattr_static(obj, "__wrapped__")
    except Exception:          # getattr_static itself can fail on odd objects
        return None
    return value


def innermost_function(func):
    """Follow a ``__wrapped__`` chain down to the last plain function."""
    seen = set()
    while id(func) not in seen:
        seen.add(id(func))
        inner = func.__dict__.get("__wrapped__")
        if type(inner) is not FunctionType:
            break
        func = inner
    return func


def _functions_of(value):
    """The plain functions a class or module member stands for (no user code runs)."""
    kind = type(value)
    if kind is FunctionType:
        return [innermost_function(value)]
    if issubclass(kind, staticmethod):
        return _functions_of(_staticmethod_func(value))
    if issubclass(kind, classmethod):
        return _functions_of(_classmethod_func(value))
    if issubclass(kind, property):
        found = []
        for part in _property_parts:
            accessor = part(value)
            if accessor is not None:
                found.extend(_functions_of(accessor))
        return found
    if kind is functools.cached_property:
        return _functions_of(vars(value).get("func"))
    if kind is functools.partial or kind is functools.partialmethod:
        return []
    if issubclass(kind, (type, ModuleType)) or not callable(value):
        return []
    inner = wrapped(value)     # lru_cache and other C wrappers made by functools.wraps
    if type(inner) is FunctionType:
        return [innermost_function(inner)]
    return []


def _nested_codes(code, path):
    """(path, code) of the functions nested in ``code`` (through class bodies too)."""
    for const in code.co_consts:
        if type(const) is CodeType:
            sub = path + (const.co_name,)
            if is_function_code(const):
                yield sub, const
            yield from _nested_codes(const, sub)


def _generated(code):
    """Code made by exec (dataclasses, attrs): its file name is a <placeholder>."""
    return code.co_filename.startswith("<")


def module_members(module, unreached=None):
    """Every code object defined in ``module``: a list of Targets, aliases included.

    Functions of the module's own classes count when their globals are the module's,
    or when exec made them for the class (dataclasses, attrs: any file name). Members of
    those classes that are callable but hold no Python code are listed in ``unreached``
    as (dotted name, kind)."""
    modname = vars(module).get("__name__", "?")
    mdict = vars(module)
    found = []
    visited_classes = set()

    def visit(path, value, in_class):
        kind = type(value)
        if issubclass(kind, type):
            cdict = vars(value)
            if cdict.get("__module__") != modname or id(value) in visited_classes:
                return
            visited_classes.add(id(value))
            for name, member in list(cdict.items()):
                visit(path + (name,), member, True)
            return
        funcs = _functions_of(value)
        if not funcs and in_class and unreached is not None and _opaque_callable(value):
            unreached.append(("%s.%s" % (modname, ".".join(path)), kind.__name__))
        for func in funcs:
            if func.__globals__ is not mdict and not (in_class and _generated(func.__code__)):
                continue       # imported from elsewhere: belongs to its own module
            found.append(Target(modname, path, func.__code__, func))
            for sub, code in _nested_codes(func.__code__, path):
                found.append(Target(modname, sub, code, None))

    for name, value in list(mdict.items()):
        visit((name,), value, False)
    return found


def _opaque_callable(value):
    """A class member that can be called but has no Python code we could reach: a C
    function, a functools.partial, an object of a C type with __call__."""
    kind = type(value)
    if issubclass(kind, (type, ModuleType, staticmethod, classmethod, property)):
        return False
    if kind is functools.cached_property:
        return False
    try:
        call = inspect.getattr_static(value, "__call__", None)
    except Exception:
        return False
    return call is not None and type(call) is not FunctionType and not any(
        type(vars(k).get("__call__")) is FunctionType for k in kind.__mro__)


# ---------------------------------------------------------------------------
# The program's own modules

@functools.lru_cache(maxsize=1)
def _foreign_dirs():
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        for base in (None, sys.base_prefix):
            try:
                paths = sysconfig.get_paths(vars={"base": base, "platbase": base} if base else None)
                dirs.add(paths[key])
            except (KeyError, ValueError):
                pass
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    dirs.add(here)
    dirs.add(os.path.join(os.path.dirname(here), "pyliveupdatescripts"))
    return tuple(sorted(os.path.realpath(d) + os.sep for d in dirs if d))


def is_own_file(filename):
    if not filename or filename.startswith("<"):
        return False
    real = os.path.realpath(filename)
    return not any(real.startswith(d) for d in _foreign_dirs())


def is_own_module(name, module):
    if name == "__main__":
        return True
    if type(module) is not ModuleType and not isinstance(module, ModuleType):
        return False
    return is_own_file(vars(module).get("__file__"))


def own_modules():
    return [(n, m) for n, m in list(sys.modules.items()) if m is not None and is_own_module(n, m)]


# ---------------------------------------------------------------------------
# Matching paths

def _glob(pattern, path):
    """``*`` matches one segment, ``**`` any number (at least one overall)."""
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(_glob(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return (head == "*" or head == path[0]) and _glob(pattern[1:], path[1:])


def _split_pattern(pattern):
    if not isinstance(pattern, str) or not pattern.strip():
        raise TargetError("a target pattern must be a non-empty string like 'module.func', got %r"
                          % (pattern,))
    parts = pattern.strip().split(".")
    if any(p == "" for p in parts):
        raise TargetError("malformed target pattern %r (empty name between dots)" % pattern)
    return parts


class ModuleNotImported(TargetError):
    """The pattern names a module that is not imported yet but can be: the update can
    wait for it (``module``)."""

    def __init__(self, module, pattern):
        self.module = module
        super().__init__("module %s not imported yet" % module)


def importable(name):
    """Whether ``name`` could be imported, decided without importing or running any of
    the program's modules: only when its parent package is imported already, through
    the import system's finders (importlib.util.find_spec)."""
    parent = name.rpartition(".")[0]
    if parent and not isinstance(sys.modules.get(parent), ModuleType):
        return False
    if parent and not hasattr(sys.modules[parent], "__path__"):
        return False          # a module's attribute, not a submodule
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _find_module(parts, pattern):
    """Longest imported module prefix -> (name, module, rest of the parts). A module
    that is not imported but importable raises ModuleNotImported."""
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        if "*" in name:
            continue
        module = sys.modules.get(name)
        if module is not None and isinstance(module, ModuleType):
            rest = tuple(parts[cut:])
            if rest and "*" not in rest[0] and rest[0] not in vars(module) \
                    and importable("%s.%s" % (name, rest[0])):
                raise ModuleNotImported("%s.%s" % (name, rest[0]), pattern)
            return name, module, rest
    first = parts[0]
    if "*" in first:
        raise TargetError("pattern %r: a wildcard can only follow a module name, or be a "
                          "leading '**'" % pattern)
    if importable(first):
        raise ModuleNotImported(first, pattern)
    close = difflib.get_close_matches(first, [m for m in sys.modules if "." not in m], n=5)
    hint = (" Imported modules with similar names: %s." % ", ".join(close)) if close else ""
    raise TargetError("module %r is not imported in this process, so %r matches nothing.%s"
                      % (first, pattern, hint))


def _explain_miss(modname, module, rest, members, pattern):
    """Name the level where an exact pattern stopped matching and what exists there."""
    depth = 0
    while depth < len(rest):
        prefix = rest[:depth + 1]
        if not any(m.path[:depth + 1] == prefix for m in members):
            break
        depth += 1
    here = ".".join((modname,) + rest[:depth])
    missing = rest[depth] if depth < len(rest) else None
    names = sorted({m.path[depth] for m in members
                    if len(m.path) > depth and m.path[:depth] == rest[:depth]})
    if missing is None:
        return "%r matches nothing" % pattern
    owner = module
    for seg in rest[:depth]:
        owner = vars(owner).get(seg) if isinstance(owner, (type, ModuleType)) else None
    if isinstance(owner, (type, ModuleType)):
        value = vars(owner).get(missing, _MISSING)
        if value is not _MISSING:
            return ("%s.%s is %s %s, which holds no code defined in %s"
                    % (here, missing, "a" if type(value) is not int else "an",
                       type(value).__name__, modname))
    if depth == 0:
        sub = sys.modules.get("%s.%s" % (modname, missing))
        if sub is None and hasattr(module, "__path__"):
            close = difflib.get_close_matches(missing, names, n=5)
            return ("%r: no %r in module %s, and no module %s.%s to import%s"
                    % (pattern, missing, modname, modname, missing,
                       "; did you mean %s?" % ", ".join(close) if close else ""))
    close = difflib.get_close_matches(missing, names, n=5)
    msg = "%r: %s has no function, class or member %r" % (pattern, here, missing)
    if close:
        msg += "; did you mean %s?" % ", ".join(close)
    if names:
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        msg += " (defined there: %s)" % shown
    return msg


_MISSING = object()


def _resolve_exact(modname, module, rest):
    """Fast path for a pattern without wildcards: follow the names, no module walk.
    Returns the targets, or None to let the full walk decide (and explain)."""
    mdict = vars(module)
    owner, path = module, ()
    for i, seg in enumerate(rest):
        if not isinstance(owner, (type, ModuleType)):
            return None
        value = vars(owner).get(seg, _MISSING)
        if value is _MISSING:
            return None
        path += (seg,)
        if issubclass(type(value), type):
            if vars(value).get("__module__") != modname:
                return None
            owner = value
            continue
        funcs = [f for f in _functions_of(value) if f.__globals__ is mdict]
        if not funcs:
            return None
        found = []
        sub = path + tuple(rest[i + 1:])
        for func in funcs:
            codes = [func.__code__]
            for name in rest[i + 1:]:      # every nested code of that name (two lambdas)
                codes = [c for code in codes for c in code.co_consts
                         if type(c) is CodeType and c.co_name == name]
            found.extend(Target(modname, sub, code, func if code is func.__code__ else None)
                         for code in codes)
        return found or None
    return None


class Resolution(list):
    """The Targets of a pattern (a list), and what the pattern covers but cannot reach:
    ``unreached`` = [(dotted name, kind)] (C functions, extension modules, ...)."""

    def __init__(self, targets=(), unreached=(), later=False):
        super().__init__(targets)
        self.unreached = list(unreached)
        self.later = later      # nothing yet, but the package's modules imported later count


def resolve(pattern):
    """Pattern -> Resolution (a list of Targets, one per distinct code object, in a
    stable order: the static walk's finds first, then those found by origin).

    Raises TargetError (a ValueError) naming what exists nearby when nothing matches.
    """
    parts = _split_pattern(pattern)
    if parts[0] == "**":
        rest = ("**",) + tuple(parts[1:])
        modules = own_modules()
        if not modules:
            raise TargetError("%r: no module of the program's own code is loaded" % pattern)
    elif "**" in parts[0] or "*" in parts[0]:
        raise TargetError("pattern %r: a wildcard can only follow a module name, or be a "
                          "leading '**'" % pattern)
    else:
        modname, module, rest = _find_module(parts, pattern)
        if not rest:
            raise TargetError("%r is a module; name a function in it (%s.func) or use %s.**"
                              % (pattern, modname, modname))
        modules = [(modname, module)]
        if rest == ("**",) and hasattr(module, "__path__"):
            # A package's ** also covers its imported submodules.
            prefix = modname + "."
            modules += [(n, m) for n, m in sorted(sys.modules.items())
                        if n.startswith(prefix) and isinstance(m, ModuleType)]
    wildcard = any("*" in p for p in rest)
    if len(modules) == 1 and not wildcard:
        found = _resolve_exact(modules[0][0], modules[0][1], rest)
        if found:
            return Resolution(found)
    targets, seen, unreached = [], set(), []
    members_by_module = []
    for modname, module in modules:
        members = module_members(module, unreached)
        members_by_module.append((modname, module, members))
        for member in members:
            if id(member.code) in seen or not _glob(rest, member.path):
                continue
            seen.add(id(member.code))
            targets.append(member)
    # Then by origin: functions compiled from these modules' files that the walk above
    # cannot name (lambdas in defaults and containers, decorator objects, descriptors).
    for modname, code, func in _origin.scan(_origin.module_files(modules)):
        path = code_path(code)
        if id(code) not in seen and _glob(rest, path):
            seen.add(id(code))
            targets.append(Target(modname, path, code, func))
    if wildcard:
        unreached += [(name, "extension module") for name in _origin.extension_modules(modules)]
    unreached = [(name, kind) for name, kind in unreached if _glob(rest, _dotted_path(name, modules))]
    if not targets and rest == ("**",) and hasattr(modules[0][1], "__path__") \
            and parts[0] != "**":
        return Resolution((), unreached, later=True)   # a package whose modules come later
    if not targets:
        if len(members_by_module) == 1 and not wildcard:
            modname, module, members = members_by_module[0]
            raise TargetError(_explain_miss(modname, module, rest, members, pattern))
        raise TargetError("%r matches no function in %s%s" % (
            pattern, ", ".join(m for m, _, _ in members_by_module[:5])
            + (", ..." if len(members_by_module) > 5 else ""), _unreached_text(unreached)))
    return Resolution(targets, unreached)


def _dotted_path(name, modules):
    """The attribute path below its module of a dotted name from ``unreached``."""
    best = max((m for m, _ in modules if name == m or name.startswith(m + ".")), key=len,
               default="")
    return tuple(name[len(best) + 1:].split(".")) if name != best else ("*",)


def _unreached_text(unreached):
    if not unreached:
        return ""
    return " (it covers only code it cannot reach: %s)" % ", ".join(
        "%s: %s" % u for u in unreached[:10])


def code_path(code):
    """Attribute-style path of a code object from its qualified name."""
    return tuple(p for p in code.co_qualname.split(".") if p != "<locals>")


class _ModuleTable:
    """file name -> module name, refreshed when sys.modules grows."""

    def __init__(self):
        self._by_file = {}
        self._size = -1

    def lookup(self, filename):
        name = self._by_file.get(filename)
        if name is None and len(sys.modules) != self._size:
            self._size = len(sys.modules)
            table = {}
            for modname, module in list(sys.modules.items()):
                if isinstance(module, ModuleType):
                    f = vars(module).get("__file__")
                    if isinstance(f, str):
                        table.setdefault(f, modname)
                        if f.endswith((".pyc", ".pyo")):
                            table.setdefault(f[:-1], modname)
            self._by_file = table
            name = table.get(filename)
        return name


_module_table = _ModuleTable()


def module_of_code(code):
    return _module_table.lookup(code.co_filename)


class CodeMatcher:
    """Decides for a code object seen later (a module imported or reloaded after the
    update, code re-created by a redefinition) whether the pattern covers it.

    matcher(code) -> (module name, qualname) or None; uses only co_filename,
    co_qualname and the table of loaded modules.
    """

    def __init__(self, pattern):
        parts = _split_pattern(pattern)
        self.pattern = pattern
        if parts[0] == "**":
            self._modules = None          # any of the program's own modules
            self._rest = ("**",) + tuple(parts[1:])
        else:
            self._modules = self._module_split(parts)
            self._rest = None

    @staticmethod
    def _module_split(parts):
        options = []
        for cut in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:cut])
            if "*" not in name:
                options.append((name, tuple(parts[cut:])))
        return options

    def __call__(self, code):
        if not is_function_code(code):
            return None
        modname = module_of_code(code)
        if modname is None:
            return None
        path = code_path(code)
        if self._modules is None:
            module = sys.modules.get(modname)
            if module is None or not is_own_module(modname, module) or not _glob(self._rest, path):
                return None
            return modname, code.co_qualname
        for name, rest in self._modules:
            if modname == name or (rest == ("**",) and modname.startswith(name + ".")):
                if _glob(rest, path):
                    return modname, code.co_qualname
        return None
