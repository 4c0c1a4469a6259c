"""Handler binding and line analysis.

A handler names what it wants through its parameter names:

* a local, cell or free variable of the target function receives its current value
  (None, or the parameter's default, while it is unbound);
* special names, by join point:
    func_begin  _parameters   dict of the arguments at entry
    func_end    _parameters, _returnvalues (the value returned, None on an exception),
                _exception (the exception leaving the function, or None)
    line_before _righthands   dict of the variables the line reads
    line_after  _lefthands    dict of the variables the line wrote, after it ran
    var_use     _variable     dict of the watched variables the line reads
    var_def     _variable     dict of the watched variables the line wrote
  and ``_line`` (the line number) at the four line-level join points.

A name the target lacks is refused when the update is built, with the names it has.
Which names a line reads and writes comes from ``dis``; attribute chains such as
``self.x`` are read from the frame's values without running properties or other
descriptors (an attribute whose value is a descriptor is left out).
"""
import dis
import inspect
from dataclasses import dataclass

from . import _engine
from .updates import validation
from .updates.validation import JOIN_POINTS, describe_lines

__all__ = ["HandlerError", "JOIN_POINTS", "LineInfo", "analyse", "code_lines",
           "target_names", "bind", "check_lines", "describe_lines"]

_SPECIALS = {
    "func_begin": ("_parameters",),
    "func_end": ("_parameters", "_returnvalues", "_exception"),
    "line_before": ("_righthands", "_line"),
    "line_after": ("_lefthands", "_line"),
    "var_use": ("_variable", "_line"),
    "var_def": ("_variable", "_line"),
}
ALL_SPECIALS = frozenset(n for names in _SPECIALS.values() for n in names)


class HandlerError(validation.UpdateError):
    """A handler that cannot be bound to a target; nothing is applied."""


# ---------------------------------------------------------------------------
# Line analysis

@dataclass(frozen=True)
class LineInfo:
    reads: tuple      # names and attribute chains the line reads, in first-seen order
    writes: tuple     # names and attribute chains it writes


_LOADS = {"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_GLOBAL", "LOAD_NAME",
          "LOAD_FROM_DICT_OR_DEREF", "LOAD_FROM_DICT_OR_GLOBALS"}
_STORES = {"STORE_FAST", "STORE_DEREF", "STORE_GLOBAL", "STORE_NAME"}
_PROLOGUE = {"RESUME", "RETURN_GENERATOR", "POP_TOP", "NOP", "COPY_FREE_VARS", "MAKE_CELL"}

_analysis_cache = {}


def _prologue_end(instructions):
    """Index just past the first RESUME: what comes before it belongs to no line."""
    for i, ins in enumerate(instructions):
        if ins.opname == "RESUME":
            return i + 1
    return 0


def analyse(code):
    """{line: LineInfo} for every line of ``code`` that holds code."""
    cached = _analysis_cache.get(id(code))
    if cached is not None and cached[0] is code:
        return cached[1]
    instructions = list(dis.get_instructions(code))
    reads, writes, hidden = {}, {}, {}
    chain = None                 # dotted chain left on the stack by the previous instruction
    for ins in instructions[_prologue_end(instructions):]:
        line = ins.positions.lineno if ins.positions else None
        if line is None:
            chain = None
            continue
        r = reads.setdefault(line, {})
        w = writes.setdefault(line, {})
        op, val = ins.opname, ins.argval
        new_chain = None
        if op in _LOADS:
            r[val] = None
            new_chain = val
        elif op == "LOAD_FAST_LOAD_FAST":
            r[val[0]] = r[val[1]] = None
            new_chain = val[1]
        elif op in _STORES:
            w[val] = None
        elif op == "STORE_FAST_STORE_FAST":
            w[val[0]] = w[val[1]] = None
        elif op == "STORE_FAST_LOAD_FAST":
            w[val[0]] = None
            r[val[1]] = None
            new_chain = val[1]
        elif op == "LOAD_FAST_AND_CLEAR":
            hidden.setdefault(line, set()).add(val)     # an inlined comprehension's variable
        elif op == "LOAD_ATTR" and chain is not None and not (ins.arg or 0) & 1:
            new_chain = "%s.%s" % (chain, val)
            r[new_chain] = None
        elif op == "STORE_ATTR" and chain is not None:
            w["%s.%s" % (chain, val)] = None
        chain = new_chain
    result = {}
    for line in reads:
        skip = hidden.get(line, ())
        result[line] = LineInfo(tuple(n for n in reads[line] if n not in skip),
                                tuple(n for n in writes[line] if n not in skip))
    if len(_analysis_cache) > 4096:
        _analysis_cache.clear()
    _analysis_cache[id(code)] = (code, result)
    return result


def code_lines(code):
    """Sorted line numbers that hold code in ``code`` (its nested functions excluded)."""
    return sorted(analyse(code))


def check_lines(code, lines, display):
    """Raise HandlerError if a requested line holds no code in ``code``."""
    validation.check_lines(code, lines, display, code_lines(code), error=HandlerError)


def target_names(code):
    """Local, cell and free variable names of a code object, in definition order."""
    return tuple(dict.fromkeys(code.co_varnames + code.co_cellvars + code.co_freevars))


def parameter_names(code):
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return code.co_varnames[:n]


# ---------------------------------------------------------------------------
# Reading values from a frame without running the program's code

_MISSING = object()


def _is_descriptor(value):
    return any("__get__" in vars(k) for k in type(value).__mro__)


def _static_attr(obj, name):
    try:
        value = inspect.getattr_static(obj, name)
    except Exception:
        return _MISSING
    return _MISSING if _is_descriptor(value) else value


def _lookup(frame, local_values, name):
    base, _, attrs = name.partition(".")
    value = local_values.get(base, _MISSING)
    if value is _MISSING:
        value = frame.f_globals.get(base, _MISSING)
    if value is _MISSING:
        builtins = frame.f_builtins
        value = builtins.get(base, _MISSING) if isinstance(builtins, dict) else _MISSING
    if attrs and value is not _MISSING:
        for attr in attrs.split("."):
            value = _static_attr(value, attr)
            if value is _MISSING:
                break
    return value


def _values(frame, local_values, names):
    out = {}
    for name in names:
        value = _lookup(frame, local_values, name)
        if value is not _MISSING:
            out[name] = value
    return out


# ---------------------------------------------------------------------------
# Binding

_param_cache = {}


def handler_parameters(handler, kind):
    """[(name, default or _MISSING)] of a handler; refuses what cannot be bound."""
    cached = _param_cache.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    params = _read_parameters(handler, kind)
    if len(_param_cache) > 4096:
        _param_cache.clear()
    _param_cache[id(handler)] = (handler, params)
    return params


def _read_parameters(handler, kind):
    if not callable(handler):
        raise HandlerError("the handler for %s must be a function, got %s"
                           % (kind, type(handler).__name__))
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError) as e:
        raise HandlerError("cannot read the parameters of the handler for %s: %s" % (kind, e))
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise HandlerError("handler %s for %s: *args/**kwargs cannot be bound; name the "
                               "variables you want" % (_name(handler), kind))
        if p.kind is p.POSITIONAL_ONLY:
            raise HandlerError("handler %s for %s: positional-only parameter %r cannot be bound "
                               "by name" % (_name(handler), kind, p.name))
        params.append((p.name, p.default if p.default is not p.empty else _MISSING))
    return params


def _name(handler):
    return getattr(handler, "__qualname__", None) or repr(handler)


def check_handler(handler, kind, code, display):
    """Validate a handler against one target; returns its parameter list."""
    params = handler_parameters(handler, kind)
    allowed_specials = _SPECIALS[kind]
    have = target_names(code)
    for name, default in params:
        if name in ALL_SPECIALS:
            if name not in allowed_specials:
                raise HandlerError("handler %s: %s is not available at %s (there: %s)"
                                   % (_name(handler), name, kind, ", ".join(allowed_specials)))
        elif name not in have and default is _MISSING:
            raise HandlerError("handler %s for %s: %s has no variable %r; available: %s"
                               % (_name(handler), kind, display, name,
                                  ", ".join(have + allowed_specials)))
    return params


def _kwargs(params, frame, local_values, specials):
    kwargs = {}
    for name, default in params:
        if name in specials:
            kwargs[name] = specials[name]
            continue
        value = local_values.get(name, _MISSING)
        if value is _MISSING:
            value = None if default is _MISSING else default
        kwargs[name] = value
    return kwargs


def _has(params, name):
    return any(p == name for p, _ in params)


_NO_LOCALS = {}


def _arguments(frame, local_values, names):
    """The values of the target's parameters (`_parameters`)."""
    if local_values is _NO_LOCALS:
        return _engine.frame_vars(frame, names)
    return _values(frame, local_values, names)


def _reads_locals(params, specials):
    """Whether the handler has a parameter bound to a local of the target: only then is
    frame.f_locals built (the dearest step of a handler call, ~1.4 us on the bench VM)."""
    return any(name not in specials for name, _ in params)


def bind(kind, handler, code, arg, display):
    """Engine callables for one join point on one code object.

    Returns (field, value) where field is one of the engine.Request fields
    on_func_begin / on_func_end / on_line_before / on_line_after, and value is a
    callable or a {line: callable} dict. Raises HandlerError on a bad binding.
    """
    params = check_handler(handler, kind, code, display)
    if kind == "func_begin":
        arg_names = parameter_names(code)
        want_params = _has(params, "_parameters")
        need_locals = _reads_locals(params, ("_parameters",))

        def on_func_begin(frame):
            loc = frame.f_locals if need_locals else _NO_LOCALS
            specials = {"_parameters": _arguments(frame, loc, arg_names)} if want_params else {}
            handler(**_kwargs(params, frame, loc, specials))
        return "on_func_begin", on_func_begin

    if kind == "func_end":
        arg_names = parameter_names(code)
        want_params = _has(params, "_parameters")
        need_locals = _reads_locals(params, ("_parameters", "_returnvalues", "_exception"))

        def on_func_end(frame, retval, exc):
            loc = frame.f_locals if need_locals else _NO_LOCALS
            specials = {"_returnvalues": retval, "_exception": exc}
            if want_params:
                specials["_parameters"] = _arguments(frame, loc, arg_names)
            handler(**_kwargs(params, frame, loc, specials))
        return "on_func_end", on_func_end

    info = analyse(code)
    lines = sorted(info)
    if kind in ("line_before", "line_after"):
        wanted = tuple(arg) if arg else ()
        check_lines(code, wanted, display)
        chosen = wanted or lines
        before = kind == "line_before"
        special = "_righthands" if before else "_lefthands"
        want_values = _has(params, special)
        callables = {}
        for line in chosen:
            names = info[line].reads if before else info[line].writes
            callables[line] = _line_callable(handler, params, special, names, want_values)
        return ("on_line_before" if before else "on_line_after"), callables

    # var_use / var_def
    watched = tuple(arg) if arg else ()
    use = kind == "var_use"
    callables = {}
    for line in lines:
        names = info[line].reads if use else info[line].writes
        if watched:
            names = tuple(n for n in names if n in watched)
        if names:
            callables[line] = _line_callable(handler, params, "_variable", names, True)
    if not callables:
        seen = sorted({n for i in info.values() for n in (i.reads if use else i.writes)})
        raise HandlerError("%s: no line of %s %s %s; it %s: %s" % (
            kind, display, "reads" if use else "writes",
            ", ".join(watched) if watched else "any variable",
            "reads" if use else "writes", ", ".join(seen) or "nothing"))
    return ("on_line_before" if use else "on_line_after"), callables


def _line_callable(handler, params, special, names, want_values):
    need_locals = want_values or _reads_locals(params, (special, "_line"))

    def on_line(frame, line):
        loc = frame.f_locals if need_locals else _NO_LOCALS
        specials = {"_line": line}
        if want_values:
            specials[special] = _values(frame, loc, names)
        handler(**_kwargs(params, frame, loc, specials))
    return on_line
