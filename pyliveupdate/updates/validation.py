"""Checks of what a user hands to an update, with one text per kind of mistake.

Used by every layer that takes such input (the updates, the predefined modifications,
handler binding and the engine), so a bad line number or id reads the same wherever it
is refused. Each check returns the normalised value or raises; nothing here changes
any state.
"""

__all__ = ["UpdateError", "JOIN_POINTS", "id_list", "line_numbers", "variable_names",
           "scope_patterns", "joinpoint", "payload_items", "positive_number", "event_source",
           "check_lines", "describe_lines"]

JOIN_POINTS = ("func_begin", "func_end", "line_before", "line_after", "var_def", "var_use")
LINE_POINTS = ("line_before", "line_after")


class UpdateError(ValueError):
    """An update that cannot be built or applied; nothing was changed."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def id_list(ids):
    """An update id or a collection of ids -> list of ids."""
    if _is_int(ids):
        return [ids]
    try:
        out = list(ids)
    except TypeError:
        out = None
    if not out or not all(_is_int(i) for i in out):
        raise UpdateError("expected an update id or a list of ids, got %r" % (ids,))
    return out


def line_numbers(lines, context=""):
    """None, a line number or a collection of them -> sorted tuple of distinct lines."""
    if lines is None:
        return ()
    items = (lines,) if isinstance(lines, int) else lines
    try:
        out = tuple(sorted(set(items)))
    except TypeError:
        out = None
    if out is None or not all(_is_int(n) and n > 0 for n in out):
        raise UpdateError("%slines must be positive ints (a line number or a list of them), "
                          "got %r" % (context, lines))
    return out


def variable_names(names, context=""):
    """None, a name or a collection of names -> tuple of distinct names, in order."""
    if names is None:
        return ()
    items = (names,) if isinstance(names, str) else names
    try:
        out = tuple(dict.fromkeys(items))
    except TypeError:
        out = None
    if out is None or not all(isinstance(n, str) and n for n in out):
        raise UpdateError("%svariables must be names (a name or a list of them), got %r"
                          % (context, names))
    return out


def scope_patterns(scope):
    """A pattern or a list of patterns -> non-empty list of pattern strings."""
    if isinstance(scope, str):
        return [scope]
    try:
        scopes = list(scope)
    except TypeError:
        scopes = None
    if not scopes or not all(isinstance(s, str) for s in scopes):
        raise UpdateError("scope must be a pattern or a list of patterns, got %r" % (scope,))
    return scopes


def joinpoint(key):
    """'kind' or ('kind', argument) -> (kind, normalised argument)."""
    if isinstance(key, str):
        kind, arg = key, ()
    elif isinstance(key, (tuple, list)) and len(key) == 2 and isinstance(key[0], str):
        kind, arg = key
    else:
        raise UpdateError("join point %r: expected 'kind' or ('kind', argument)" % (key,))
    if kind not in JOIN_POINTS:
        raise UpdateError("unknown join point %r; known: %s" % (kind, ", ".join(JOIN_POINTS)))
    context = "join point %s: " % kind
    if kind in ("func_begin", "func_end"):
        if arg not in ((), None, []):
            raise UpdateError("join point %s takes no argument, got %r" % (kind, arg))
        return kind, ()
    if kind in LINE_POINTS:
        return kind, line_numbers(arg, context)
    return kind, variable_names(arg, context)


def payload_items(payload):
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


def positive_number(value, name, unit, allow_none=True):
    """A positive int or float (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise UpdateError("%s must be a positive number of %s, got %r" % (name, unit, value))
    return value


SOURCES = ("auto", "monitoring", "frame")


def event_source(source):
    """Where function events come from: "auto" (= "monitoring"), "monitoring", "frame"."""
    if source not in SOURCES:
        raise UpdateError("source must be one of %s, got %r" % (", ".join(SOURCES), source))
    return source


def describe_lines(lines):
    """'11-15 (11, 12, 14)'-style text for error messages."""
    if not lines:
        return "none"
    return "%d-%d (%s)" % (lines[0], lines[-1], ", ".join(map(str, lines)))


def _code_lines(code):
    return {line for _, _, line in code.co_lines() if line is not None}


def _nested_holding(code, line):
    for const in code.co_consts:
        if hasattr(const, "co_lines"):
            if line in _code_lines(const):
                return const
            found = _nested_holding(const, line)
            if found is not None:
                return found
    return None


def check_lines(code, lines, display, have, error=UpdateError):
    """Raise ``error`` if one of ``lines`` is not among ``have`` (the lines of ``code``
    that hold code), naming the lines that do and a nested function that holds it."""
    have = sorted(have)
    valid = set(have)
    bad = [n for n in lines if n not in valid]
    if not bad:
        return
    msg = "line %s holds no code in %s; lines with code: %s" % (
        ", ".join(map(str, bad)), display, describe_lines(have))
    inner = _nested_holding(code, bad[0])
    if inner is not None:
        msg += " (line %d belongs to the nested %s)" % (bad[0], inner.co_qualname)
    raise error(msg)
