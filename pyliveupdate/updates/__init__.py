"""Updates of a running program: Instrument, Redefine, and the UpdateManager.

    from pyliveupdate.updates import Instrument, Redefine, UpdateManager

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

The parts, one file each: ``validation`` (checks and error texts shared with handlers,
targets and the engine), ``registry`` (ids, the table of updates), ``base``
(UpdateBase, LU), ``manager`` (UpdateManager), ``instrument``, ``slots`` and
``redefine`` (planning a hot patch), ``commit`` (quiescence and the atomic swap).
The public names below are loaded on first use, so the lower layers (handlers, targets,
engine) can import ``validation`` without the rest.
"""
import importlib

_EXPORTS = {
    "UpdateError": "validation",
    "UpdateBase": "base", "LU": "base",
    "UpdateManager": "manager",
    "Instrument": "instrument",
    "Redefine": "redefine",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
