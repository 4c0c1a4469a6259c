"""Every update of this process by id, the ids themselves, and which are applied.

Ids come from a process-wide counter, or from an id block the controller opens around a
command (``UpdateManager.id_block(base)``) so one command's updates get the same ids in
every process. An id, once handed out, is never handed out again in this process.
"""
import threading

from .validation import UpdateError

# One update operation at a time, process-wide (re-entrant: an apply may revert).
lock = threading.RLock()

updates = {}          # id -> update (created, applied, reverted or failed)
order = []            # ids of the applied updates, in the order they were applied

_next_id = 1
_blocks = []          # open id blocks, innermost last


class IdBlock:
    """Ids start, start+1, ... for the updates created inside the block."""

    def __init__(self, start):
        self.start = start
        self.used = 0


def open_block(start):
    if not isinstance(start, int) or isinstance(start, bool) or start < 1:
        raise UpdateError("an id block starts at a positive integer, got %r" % (start,))
    block = IdBlock(start)
    with lock:
        _blocks.append(block)
    return block


def close_block(block):
    with lock:
        _blocks.remove(block)


def register(update):
    """Give ``update`` its id and list it."""
    global _next_id
    with lock:
        if _blocks:
            block = _blocks[-1]
            uid = block.start + block.used
            if uid in updates:
                raise UpdateError("update id %d is already taken in this process" % uid)
            block.used += 1
        else:
            uid = _next_id
            while uid in updates:
                uid += 1
        _next_id = max(_next_id, uid + 1)
        update.id = uid
        updates[uid] = update
        return uid


def adopt(update):
    """List an update object handed in directly (its id stays taken)."""
    with lock:
        updates.setdefault(update.id, update)


def forget(update):
    """Unlist an update that was never applied (its id stays used)."""
    with lock:
        if updates.get(update.id) is update:
            del updates[update.id]


def get(update_id):
    return updates.get(update_id)


def all_updates():
    """Every listed update, by id."""
    with lock:
        return [u for _, u in sorted(updates.items(), key=lambda kv: _id_key(kv[0]))]


def applied(kind=None):
    """The applied updates (of class ``kind`` if given), by id."""
    with lock:
        return [u for u in all_updates() if u.status == "applied"
                and (kind is None or isinstance(u, kind))]


def applied_in_order():
    """The applied updates in the order they were applied (newest last)."""
    with lock:
        return [updates[i] for i in order if i in updates]


def mark_applied(update):
    with lock:
        if update.id not in order:
            order.append(update.id)


def mark_reverted(update):
    with lock:
        if update.id in order:
            order.remove(update.id)


def _id_key(uid):
    return (0, uid, "") if isinstance(uid, int) else (1, 0, str(uid))
