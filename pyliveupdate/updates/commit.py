"""The commit step of a Redefine: make every touched slot show its effective state.

Validate, wait for quiescence if asked, arm instrumentation on the code about to run,
swap every change in one C call, then disarm the code that was replaced.
"""
import gc
import sys
import threading
import time
import types
from collections import deque
from itertools import chain, starmap

from . import registry
from .slots import MISSING, FunctionSlot, as_function, code_tree
from .validation import UpdateError

__all__ = ["commit", "swap", "running_old_code", "wait_quiescent"]


def swap(sets, deletes=()):
    """Apply (obj, attr, value) assignments and (obj, attr) deletions in one C call.

    ``deque(starmap(setattr, ...))`` never returns to the bytecode loop between items,
    so no other thread runs in the middle (with the GIL) and every new call sees either
    all of the old state or all of the new. Everything is validated beforehand, so
    nothing here is expected to fail.
    """
    deque(chain(starmap(setattr, sets), starmap(delattr, deletes)), maxlen=0)


def running_old_code(codes, scan_generators):
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


def wait_quiescent(codes, wait):
    """Poll until no thread runs ``codes``; raise UpdateError naming blockers at timeout."""
    if not wait or not codes:
        return
    deadline = time.monotonic() + wait
    delay = 0.0005
    while True:
        blockers = running_old_code(codes, scan_generators=True)
        if not blockers:
            return
        if time.monotonic() >= deadline:
            raise UpdateError("no quiescent point within %.3g s: %s" % (wait, "; ".join(blockers)))
        time.sleep(delay)
        delay = min(delay * 2, 0.02)

def commit(update, layers, add, caches=()):
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
        if isinstance(slot, FunctionSlot):
            if len(after[0].co_freevars) != len(slot.func.__closure__ or ()):
                raise UpdateError("%s: closure size mismatch" % slot.func.__qualname__)
            sets.extend(slot.assignments(after))
            if before[0] is not after[0]:
                code_moves.append((before[0], after[0], _top(new_layers)))
                old_codes.append(before[0])
        else:
            if after is MISSING:
                if slot.name in vars(slot.owner):
                    deletes.append((slot.owner, slot.name))
            else:
                sets.append((slot.owner, slot.name, after))
            old_f, _ = as_function(before) if before is not MISSING else (None, None)
            new_f, _ = as_function(after) if after is not MISSING else (None, None)
            if old_f is not None and new_f is not None and old_f.__code__ is not new_f.__code__:
                code_moves.append((old_f.__code__, new_f.__code__, _top(new_layers)))
                old_codes.append(old_f.__code__)
    wait_quiescent(old_codes, getattr(update, "wait", None))
    to_drop = arm_successors(code_moves, update)
    swap(sets, deletes)
    for slot, new_layers in plans:
        slot.layers = new_layers
    for cache in caches:
        clear = getattr(type(cache), "cache_clear", None)
        if clear is not None:
            clear(cache)
    for holder, old_code in to_drop:
        holder.drop_code(old_code)


def _top(layers):
    """The id of the update whose layer is in effect (None: the original)."""
    return layers[-1][0] if layers else None


def arm_successors(code_moves, update):
    """Let every applied update that holds one of the replaced codes put its handlers on
    the code about to replace it (nested code matched by name), before the swap, so the
    first call of the new code is already covered. Returns what to drop after the swap."""
    holders = [u for u in registry.applied() if u is not update]
    to_drop = []
    if not holders:
        return to_drop
    for old, new, redefined_by in code_moves:
        old_tree, new_tree = code_tree(old), code_tree(new)
        for path, old_code in old_tree.items():
            new_code = new_tree.get(path)
            for holder in holders:
                if not holder.holds_code(old_code):
                    continue
                to_drop.append((holder, old_code))
                if new_code is None:
                    update.note("update %d: %s no longer exists; its handlers are dropped"
                                % (holder.id, old_code.co_qualname))
                    continue
                before = len(holder.notes)
                holder.arm_successor(old_code, new_code, redefined_by)
                for note in holder.notes[before:]:
                    update.note(note)
    return to_drop
