"""`condition='expr'` of the predefined modifications: compiled once, and its names checked
against each target when the update is built or armed, so a typo is refused at once
instead of failing at every call.

A condition is evaluated in the target frame (its globals, then its locals); the names it
reads must be parameters, locals, cells of the target, globals of its module, or builtins.
Names the condition binds itself (comprehension variables, lambda parameters) are its own.
"""
import ast
import builtins
import sys

from . import targets as _targets
from .handlers import HandlerError
from .updates.validation import UpdateError

__all__ = ["compile_condition", "unknown_names", "check_names"]


def compile_condition(condition):
    """None, or (source, code object) of a valid expression; UpdateError otherwise."""
    if condition is None:
        return None
    if not isinstance(condition, str):
        raise UpdateError("condition must be a Python expression in a string, got %r"
                          % (condition,))
    try:
        tree = ast.parse(condition.strip(), "<condition>", "eval")
        code = compile(tree, "<condition>", "eval")
    except SyntaxError as e:
        raise UpdateError("condition %r is not a valid expression: %s"
                          % (condition, e.msg)) from None
    return code, frozenset(_free_names(tree))


def _free_names(tree):
    """Names the expression reads from outside itself."""
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read - bound


def unknown_names(names, code):
    """The names of `names` that `code`'s frames cannot resolve, or an empty list."""
    local = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
    module = sys.modules.get(_targets.module_of_code(code) or "")
    known_globals = set(vars(module)) if module is not None else None
    missing = []
    for name in sorted(names):
        if name in local or hasattr(builtins, name):
            continue
        if known_globals is None or name in known_globals:
            continue     # a module we cannot see: its globals are not checked
        missing.append(name)
    return missing


def check_names(condition, names, code, display):
    """HandlerError naming what exists when the condition reads a name `code` lacks."""
    missing = unknown_names(names, code)
    if not missing:
        return
    local = list(code.co_varnames[:code.co_nlocals]) + [
        n for n in code.co_cellvars + code.co_freevars if n not in code.co_varnames]
    raise HandlerError(
        "condition %r reads %s, which %s not a parameter, local or global of %s nor a "
        "builtin; its parameters and locals are: %s"
        % (condition, ", ".join(missing), "is" if len(missing) == 1 else "are", display,
           ", ".join(local) or "none"))
