"""Code found by its origin: every function compiled from a module's files, wherever the
program keeps it.

The static walk of targets.py follows module and class dicts, descriptors and
``__wrapped__``; a program also keeps functions in places no walk can name: lambdas in
default arguments and containers, decorator objects holding the function in an
attribute of their own (toolz ``@curry``), descriptors whose function was deleted from
the class body (boltons ``cachedproperty``), registries, closures. Every function object
is tracked by the garbage collector, so one pass over ``gc.get_objects()`` finds them
all by ``co_filename``; their nested code (closures not made yet) comes from
``co_consts``. Only type checks and the C-level ``__code__``/``__globals__`` of plain
functions are read: no code of the program runs.
"""
import gc
import importlib.machinery
from types import CodeType, FunctionType, ModuleType

__all__ = ["module_files", "scan", "extension_modules", "is_function_code"]

_CO_OPTIMIZED = 0x1
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def is_function_code(code):
    """Whether ``code`` is a function's body (not a module's or a class body's code,
    which run once when they are executed and are no target of a pattern)."""
    return bool(code.co_flags & _CO_OPTIMIZED)


def _source_file(module):
    mdict = vars(module)
    f = mdict.get("__file__")
    if not isinstance(f, str):
        return None
    if f.endswith((".pyc", ".pyo")):
        spec = mdict.get("__spec__")
        origin = getattr(spec, "origin", None) if spec is not None else None
        return origin if isinstance(origin, str) and origin.endswith(".py") else f[:-1]
    return f


def module_files(modules):
    """{source file: [(module name, module dict), ...]} of (name, module) pairs."""
    files = {}
    for name, module in modules:
        if not isinstance(module, ModuleType):
            continue
        f = _source_file(module)
        if f is not None and not f.endswith(_EXTENSION_SUFFIXES):
            files.setdefault(f, []).append((name, vars(module)))
    return files


def extension_modules(modules):
    """Names of the compiled (extension) modules among (name, module) pairs."""
    out = []
    for name, module in modules:
        f = vars(module).get("__file__") if isinstance(module, ModuleType) else None
        if isinstance(f, str) and f.endswith(_EXTENSION_SUFFIXES):
            out.append(name)
    return out


def _owner(owners, func):
    """The module a function of a shared file belongs to: the one whose dict is its
    globals (a file run as __main__ and imported under its name), else the first."""
    if len(owners) > 1:
        g = func.__globals__
        for name, mdict in owners:
            if mdict is g:
                return name
    return owners[0][0]


def _nested(code):
    for const in code.co_consts:
        if type(const) is CodeType:
            if is_function_code(const):
                yield const
            yield from _nested(const)      # a class body's methods are nested in it


def scan(files):
    """[(module name, code, function or None)] for every function whose code comes from
    one of ``files`` (module_files()), and the function code nested in it."""
    if not files:
        return []
    found, seen = [], set()
    objects = gc.get_objects()
    for obj in objects:
        if type(obj) is not FunctionType:
            continue
        code = obj.__code__
        owners = files.get(code.co_filename)
        if owners is None or id(code) in seen:
            continue
        seen.add(id(code))
        name = _owner(owners, obj)
        found.append((name, code, obj))
        for inner in _nested(code):
            if id(inner) not in seen:
                seen.add(id(inner))
                found.append((name, inner, None))
    del objects
    found.sort(key=lambda f: (f[0], f[1].co_firstlineno, f[1].co_qualname))
    return found
