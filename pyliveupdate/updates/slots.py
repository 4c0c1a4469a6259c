"""Where a Redefine's changes live: slots holding a function's code or a name's binding.

A slot keeps the original state and a stack of layers, one per applied update that
changes it; its effective state is the newest layer (or the original). Reverting an
update removes its layer wherever it is in the stack, so updates revert in any order.
Slots are kept per object identity for the life of the process.
"""
from types import CodeType, FunctionType

MISSING = object()
KIND_FLAGS = 0x20 | 0x80 | 0x100 | 0x200    # generator, coroutine, iterable coroutine, async gen


def func_state(func):
    return (func.__code__, func.__defaults__, func.__kwdefaults__, func.__doc__)


class FunctionSlot:
    """A function whose code we change in place; effective state = newest layer."""

    def __init__(self, func):
        self.func = func
        self.original = func_state(func)
        self.layers = []          # [(update_id, state)]

    def state(self, layers):
        return layers[-1][1] if layers else self.original

    def assignments(self, state):
        f = self.func
        return [(f, "__code__", state[0]), (f, "__defaults__", state[1]),
                (f, "__kwdefaults__", state[2]), (f, "__doc__", state[3])]


class AttrSlot:
    """A name in a module or class namespace that we rebind."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name
        self.original = vars(owner).get(name, MISSING)
        self.layers = []

    def state(self, layers):
        return layers[-1][1] if layers else self.original


_function_slots = {}     # id(func) -> FunctionSlot (the slot holds func: the id stays valid)
_attr_slots = {}         # (id(owner), name) -> AttrSlot


def function_slot(func):
    slot = _function_slots.get(id(func))
    if slot is None or slot.func is not func:
        slot = _function_slots[id(func)] = FunctionSlot(func)
    return slot


def attr_slot(owner, name):
    slot = _attr_slots.get((id(owner), name))
    if slot is None or slot.owner is not owner:
        slot = _attr_slots[(id(owner), name)] = AttrSlot(owner, name)
    return slot


def renamed(code, name, qualname):
    """The code with our target's names, nested code renamed along (logs stay readable)."""
    prefix = code.co_qualname + "."
    consts = tuple(
        renamed(c, c.co_name, qualname + "." + c.co_qualname[len(prefix):])
        if type(c) is CodeType and c.co_qualname.startswith(prefix) else c
        for c in code.co_consts)
    return code.replace(co_name=name, co_qualname=qualname, co_consts=consts)


def code_tree(code, path=()):
    """{path: code} for ``code`` and every code nested in it. A path step is (name, n):
    the n-th nested code of that name (two lambdas of one function are two steps)."""
    tree = {path: code}
    seen = {}
    for c in code.co_consts:
        if type(c) is CodeType:
            n = seen[c.co_name] = seen.get(c.co_name, -1) + 1
            tree.update(code_tree(c, path + ((c.co_name, n),)))
    return tree


def kind_name(code):
    flags = code.co_flags & KIND_FLAGS
    return {0: "plain function", 0x20: "generator", 0x80: "coroutine",
            0x100: "iterable coroutine", 0x200: "async generator"}.get(flags, "function")


def as_function(value):
    """A function, staticmethod or classmethod -> (underlying function, wrapper type)."""
    if type(value) is FunctionType:
        return value, None
    if isinstance(value, (staticmethod, classmethod)):
        inner = value.__func__
        if type(inner) is FunctionType:
            return inner, type(value)
    return None, None
