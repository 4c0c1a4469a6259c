"""This process's updates as the controller sees them.

* ``report()``: every update's status (applied, pending, failed, reverted, disabled) with
  its reason, and the time to live left, for hellos, replies and events;
* ``Definitions``: the commands that created this process's updates, kept so that a new
  controller learns the active set *with* what it takes to apply it elsewhere;
* ``discard_unapplied``: a failed command leaves no id taken behind.

Reads the updates layer defensively: ``UpdateManager.states()`` where it exists, else
the statuses of ``UpdateManager._updates``; handlers the engine switched off are
reported as disabled either way.
"""
import sys
import time

LIVE = ("applied", "pending", "disabled")   # an update that is in effect (or will be)
MAX_DEFINITIONS_BYTES = 8 * 1024 * 1024     # of sources in one hello (the frame is 16 MiB)


def update_manager():
    try:
        from .updates import UpdateManager
    except ImportError:
        from .update import UpdateManager
    return UpdateManager


def _normalised(status):
    """'failed: reason' -> ('failed', 'reason')."""
    head, _, reason = str(status).partition(": ")
    return head, (reason or None)


def _disabled_reason(uid):
    engine = sys.modules.get("pyliveupdate.engine")
    if engine is None:
        return None
    try:
        report = engine.handler_report(uid)
    except Exception:  # noqa: BLE001 - a report must never break the channel
        return None
    if not report.get("disabled"):
        return None
    reason = report.get("disabled_reason") or "switched off"
    last = report.get("last_error")
    return "%s (last error: %s)" % (reason, last) if last and last not in reason else reason


def states():
    """{id: (status, reason)} of every update this process knows."""
    manager = update_manager()
    out = {}
    official = getattr(manager, "states", None)
    if official is not None:
        for uid, entry in official().items():
            out[int(uid)] = (entry.get("status"), entry.get("reason"))
    else:
        for uid, update in list(manager._updates.items()):
            out[uid] = _normalised(update.status)
    for uid, (status, _) in list(out.items()):
        if status == "applied":
            why = _disabled_reason(uid)
            if why is not None:
                out[uid] = ("disabled", why)
    return out


def _ttl_left():
    """{id: seconds} left of the updates that expire (modifications' ttl=)."""
    mods = sys.modules.get("pyliveupdate.modifications")
    heap = getattr(getattr(mods, "_expiry", None), "_heap", None)
    if not heap:
        return {}
    now = time.monotonic()
    left = {}
    for entry in list(heap):
        try:
            due, uid = entry[0], entry[1]
        except (TypeError, IndexError):
            continue
        left[uid] = min(left.get(uid, float("inf")), max(0.0, due - now))
    return left


def report():
    """The update state sent with every hello and reply (JSON-ready)."""
    try:
        table = states()
        ttl = _ttl_left()
    except Exception:  # noqa: BLE001 - the channel must work even if the updates layer does not
        return {"active": [], "known": [], "states": [], "ttl": []}
    ids = sorted(table)
    active = [i for i in ids if table[i][0] in LIVE]
    return {"active": active,
            "known": ids,
            "states": [[i, table[i][0], table[i][1]] for i in ids],
            "ttl": [[i, round(ttl[i], 3)] for i in ids if i in ttl and table[i][0] in LIVE],
            "labels": _labels(active)}


def _labels(ids):
    """[[id, label], ...] of the updates in effect (UpdateBase.label: kind and scope)."""
    manager = update_manager()
    out = []
    for uid in ids:
        try:
            label = manager.get(uid).label()
        except Exception:  # noqa: BLE001 - an older or foreign update: no label
            continue
        out.append([uid, str(label)[:200]])
    return out


def status_map(reported):
    """{id: status} from a report() (as received: lists of lists)."""
    return {int(row[0]): row[1] for row in reported.get("states") or ()}


def discard_unapplied(base, used):
    """After a failed command: forget the updates of its id block that are not in effect
    (they hold no state), so the ids are free again. Returns the ids still used."""
    if not base or not used:
        return 0
    manager = update_manager()
    table = states()
    keep = 0
    for uid in range(base, base + used):
        if table.get(uid, ("reverted",))[0] in LIVE:
            keep = uid - base + 1
    forget = getattr(manager, "forget", None)     # the updates package's registry call
    for uid in range(base + keep, base + used):
        update = manager.get(uid)
        if update is None:
            continue
        if forget is not None:
            forget(update)
        else:
            manager._updates.pop(uid, None)
    return keep


def revert_quietly(ids):
    """Revert ids that are in effect (replay of a definition some of whose updates were
    reverted at the controller). Returns the ids it could not revert."""
    manager = update_manager()
    failed = []
    for uid in ids:
        update = manager.get(uid)
        if update is None or getattr(update, "status", None) != "applied":
            continue
        try:
            update.revert()
        except Exception:  # noqa: BLE001 - reported to the controller by id
            failed.append(uid)
    return failed


def shorten_ttl(remaining):
    """Replay: an update re-created with its full ttl expires when it does elsewhere."""
    mods = sys.modules.get("pyliveupdate.modifications")
    expiry = getattr(mods, "_expiry", None)
    if expiry is None:
        return
    manager = update_manager()
    for uid, seconds in remaining.items():
        update = manager.get(uid)
        if update is not None:
            expiry.schedule(update, max(0.001, float(seconds)))


class Definitions:
    """The commands that created this process's updates (inherited by forked children)."""

    def __init__(self):
        self._by_seq = {}

    def record(self, msg, used):
        seq = msg.get("seq")
        define = msg.get("define")
        if not used or not isinstance(seq, str) or not isinstance(define, dict):
            return
        self._by_seq[seq] = {"seq": seq, "src": msg.get("src"), "filename": msg.get("filename"),
                             "base": msg.get("base"), "used": used, "define": define}

    def held(self, known):
        """Definitions of which this process still knows an update, newest sources first
        until MAX_DEFINITIONS_BYTES (older ones then come without their source)."""
        known = set(known)
        rows = [d for d in self._by_seq.values()
                if any(d["base"] + i in known for i in range(d["used"]))]
        rows.sort(key=lambda d: d["base"], reverse=True)
        budget = MAX_DEFINITIONS_BYTES
        out = []
        for d in rows:
            size = len(d["src"] or "")
            if size > budget:
                d = dict(d, src=None)
            else:
                budget -= size
            out.append(d)
        return out[::-1]
