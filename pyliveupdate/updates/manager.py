"""UpdateManager: the registry's public face (apply, revert, list, ids)."""
import contextlib

from . import registry
from .base import act, listing

__all__ = ["UpdateManager"]


class UpdateManager:
    """Every update of this process, by id."""

    # The registry's tables themselves (read-only use; kept for scripts that read them).
    _updates = registry.updates
    _order = registry.order

    @staticmethod
    def get(update_id):
        """The update with that id, or None."""
        return registry.get(update_id)

    @staticmethod
    def all():
        """Every update this process knows (created, applied, reverted, failed), by id."""
        return registry.all_updates()

    @staticmethod
    def applied(kind=None):
        """The applied updates, by id; only those of class ``kind`` if given."""
        return registry.applied(kind)

    @staticmethod
    def forget(update):
        """Unlist an update that was built but never applied; its id stays used."""
        registry.forget(update)

    @staticmethod
    @contextlib.contextmanager
    def id_block(start):
        """Updates created inside get ids start, start+1, ...; ``blk.used`` counts them."""
        block = registry.open_block(start)
        try:
            yield block
        finally:
            registry.close_block(block)

    @staticmethod
    def apply_update(update_or_id):
        """Apply (or re-apply) an update; prints the outcome. Returns True on success."""
        return act(update_or_id, "apply")

    @staticmethod
    def revert_update(update_id):
        """Revert an update (any order); prints the outcome. Returns True on success."""
        return act(update_id, "revert")

    @staticmethod
    def revert_all():
        """Revert every applied update, newest first."""
        for update in reversed(registry.applied_in_order()):
            update.revert()

    @staticmethod
    def states():
        """{id: {"status": "applied" | "pending" | "failed" | "reverted" | "disabled" |
        "created", "reason": text or None}} of every update (for the stub)."""
        out = {}
        for u in registry.all_updates():
            try:
                word, reason = u.state()
            except Exception as e:  # noqa: BLE001 - a report never fails
                word, reason = u.status.partition(": ")[0], "state unknown: %s" % e
            out[u.id] = {"status": word, "reason": reason}
        return out

    @staticmethod
    def ls(all=False):
        """Print every applied update (every update with all=True); returns describe()s."""
        return [u.describe() for u in listing(all)]
