"""Looking at the program without running its code: name completion and show().

Names are resolved through module and class __dict__s only (no getattr, so no
properties, __getattr__ hooks or descriptors of the program run).
"""
import builtins
import inspect
import sys
import types

_MISSING = object()


def _members(obj):
    """The attribute dict(s) of obj, most specific first, without running its code."""
    if isinstance(obj, types.ModuleType):
        return [obj.__dict__]
    if isinstance(obj, type):
        return [klass.__dict__ for klass in type.__getattribute__(obj, "__mro__")]
    return []


def _lookup(obj, name):
    for members in _members(obj):
        if name in members:
            return members[name]
    if isinstance(obj, types.ModuleType):
        sub = sys.modules.get("%s.%s" % (obj.__name__, name))
        if sub is not None:
            return sub
    return _MISSING


def resolve(dotted, namespace=None):
    """The object a dotted name denotes, or raise LookupError saying what exists."""
    parts = dotted.split(".")
    obj, consumed = _MISSING, 0
    for i in range(len(parts), 0, -1):  # the longest imported module prefix wins
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None:
            obj, consumed = mod, i
            break
    if obj is _MISSING and namespace is not None and parts[0] in namespace:
        obj, consumed = namespace[parts[0]], 1
    if obj is _MISSING:
        raise LookupError("no module or name %r is loaded in this process" % parts[0])
    for j in range(consumed, len(parts)):
        nxt = _lookup(obj, parts[j])
        if nxt is _MISSING:
            near = sorted(n for n in _names(obj) if not n.startswith("__"))[:20]
            raise LookupError("%s has no member %r; it has: %s"
                              % (".".join(parts[:j]), parts[j], ", ".join(near) or "nothing"))
        obj = nxt
    return obj


def _names(obj):
    seen = set()
    for members in _members(obj):
        seen.update(k for k in members if isinstance(k, str))
    if isinstance(obj, types.ModuleType):
        prefix = obj.__name__ + "."
        seen.update(m[len(prefix):] for m in list(sys.modules)
                    if m.startswith(prefix) and "." not in m[len(prefix):])
    return seen


def complete(text, namespace):
    """Dotted completions of text: 'mod.Cl' -> ['mod.Class', ...] (at most 200)."""
    head, dot, tail = text.rpartition(".")
    if dot:
        try:
            names = _names(resolve(head, namespace))
        except LookupError:
            return []
        candidates = ("%s.%s" % (head, n) for n in names if n.startswith(tail))
    else:
        names = set(namespace) | set(vars(builtins)) | {m.split(".")[0] for m in list(sys.modules)}
        candidates = (n for n in names if n.startswith(tail))
    hide_private = not tail.startswith("_")
    out = sorted(c for c in candidates
                 if not (hide_private and c.rpartition(".")[2].startswith("_")))
    return out[:200]


def code_of(obj):
    """The code object behind a function-like object, following wrappers statically."""
    for _ in range(20):
        if isinstance(obj, types.CodeType):
            return obj
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif isinstance(obj, property):
            obj = obj.fget
        elif isinstance(obj, types.MethodType):
            obj = obj.__func__
        elif isinstance(obj, types.FunctionType):
            return obj.__code__
        else:
            wrapped = _static_attr(obj, "__wrapped__")
            if wrapped is _MISSING:
                return None
            obj = wrapped
    return None


def _static_attr(obj, name):
    try:
        return inspect.getattr_static(obj, name)
    except AttributeError:
        return _MISSING


def show(name):
    """Print the source of a function of this process with its line numbers."""
    obj = resolve(name)
    code = code_of(obj)
    if code is None and isinstance(obj, type):
        lines, start = inspect.getsourcelines(obj)
        filename = inspect.getsourcefile(obj)
    elif code is None:
        raise TypeError("%s is a %s, not a function, method or class"
                        % (name, type(obj).__name__))
    else:
        lines, start = inspect.getsourcelines(code)
        filename = code.co_filename
    width = len(str(start + len(lines)))
    print("%s (%s:%d)" % (name, filename, start))
    for i, line in enumerate(lines):
        print("%*d  %s" % (width, start + i, line.rstrip("\n")))
