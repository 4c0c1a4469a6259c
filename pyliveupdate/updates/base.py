"""The common face of every update, and LU: list, revert and re-apply by id.

``update.apply()`` / ``update.revert()`` act on one update; the same names on the class
(``LU.revert(3)``, ``FP.ls()``) act on ids. One descriptor serves both.
"""
import threading
import types

from . import events, imports, registry
from ..targets import ModuleNotImported
from .validation import UpdateError, id_list

__all__ = ["UpdateBase", "LU", "act", "listing"]


class ClassOrInstance:
    """A method that is ``on_class`` when read from a class (``LU.apply(ids)``) and
    ``on_instance`` bound to the update when read from one (``update.apply()``)."""

    def __init__(self, on_class, on_instance):
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, obj, cls):
        if obj is None:
            return self.on_class
        return types.MethodType(self.on_instance, obj)


def act(update_or_id, action):
    """Apply or revert one update, print the outcome (and new notes). True on success."""
    done = {"apply": "applied", "revert": "reverted"}[action]
    update = _lookup(update_or_id)
    if update is None:
        print("Update %s not found" % (update_or_id,))
        return False
    before = len(update.notes)
    try:
        getattr(update, action)()
    except UpdateError as e:
        print("Update %d not %s: %s" % (update.id, done, e))
        return False
    if update.waiting_for is not None:
        print("Update %d %s" % (update.id, update.status))
    else:
        print("Update %d %s" % (update.id, done))
    for note in update.notes[before:]:
        print("  note: %s" % note)
    return True


def _lookup(update_or_id):
    if isinstance(update_or_id, UpdateBase):
        registry.adopt(update_or_id)
        return update_or_id
    return registry.get(update_or_id)


def listing(all=False):
    """Print the applied updates (every update with all=True) with their notes;
    returns the updates shown."""
    shown = [u for u in registry.all_updates() if all or u.is_active()]
    if not shown:
        print("no update" if all else "no update is applied")
    for u in shown:
        print("%d : %r" % (u.id, u))
        for note in u.notes:
            print("    note: %s" % note)
    return shown


def _ls(all=False):
    """Print the applied updates (all=True: every update, with its status)."""
    listing(all)


def _apply_ids(ids):
    """Re-apply updates by id; raises UpdateError if any of them could not be applied."""
    failed = [uid for uid in id_list(ids) if not act(uid, "apply")]
    if failed:
        raise UpdateError("not applied: %s" % ", ".join(map(str, failed)))


def _revert_ids(ids):
    """Revert updates by id; raises UpdateError if any of them could not be reverted."""
    failed = [uid for uid in id_list(ids) if not act(uid, "revert")]
    if failed:
        raise UpdateError("not reverted: %s" % ", ".join(map(str, failed)))


class UpdateBase:
    """Common face of every update: id, status, notes, describe(), apply() / revert().

    Subclasses implement ``_apply()`` and ``_revert()`` (raise UpdateError and leave
    nothing half done) and may extend ``describe()`` and ``repr_fields()``; ``on_applied()``
    and ``on_reverted()`` run after a successful apply / revert. Updates that keep
    handlers on code objects implement ``arm_successor``/``drop_code`` so a Redefine
    can move them to the code that replaces it (see commit.py).
    """

    kind = "update"

    def __init__(self):
        self.status = "created"
        self.notes = []          # things the user should know (dropped line handlers, ...)
        self.waiting_for = None  # while pending: the module it waits for
        registry.register(self)

    # -- what subclasses implement
    def _apply(self):
        raise NotImplementedError

    def _revert(self):
        raise NotImplementedError

    def on_applied(self):
        """Called (under the update lock) after a successful apply."""

    def on_reverted(self):
        """Called (under the update lock) after a successful revert."""

    def holds_code(self, code):
        """Whether this update has handlers or timing on ``code``."""
        return False

    def arm_successor(self, old_code, new_code, redefined_by=None):
        """``old_code`` is about to be replaced by ``new_code`` (the code of update
        ``redefined_by``, or None when the original comes back): put on ``new_code`` what
        this update has on ``old_code``. True if it had something there."""
        return False

    def drop_code(self, old_code):
        """Forget ``old_code`` (after it was replaced)."""

    def is_active(self):
        """Applied, or pending: in effect in this process as soon as it can be."""
        return self.status == "applied" or self.waiting_for is not None

    def state(self):
        """(status word, reason or None): "applied", "pending", "failed", "reverted",
        "disabled" (applied, but its handlers were switched off) or "created"."""
        word, _, reason = self.status.partition(": ")
        return word, reason or None

    # -- one update
    def _apply_instance(self):
        with registry.lock:
            if self.status == "applied" or self.waiting_for is not None:
                raise UpdateError("update %d is already %s" % (self.id, self.status))
            try:
                self._apply()
            except ModuleNotImported as e:
                self._wait(e.module)
                return
            except UpdateError as e:
                self.status = "failed: %s" % e
                raise UpdateError(str(e)) from None
            except Exception as e:
                self.status = "failed: %s: %s" % (type(e).__name__, e)
                raise UpdateError("%s: %s" % (type(e).__name__, e)) from e
            self.status = "applied"
            registry.mark_applied(self)
            self.on_applied()

    def _revert_instance(self):
        with registry.lock:
            if self.waiting_for is not None:
                self._stop_waiting()
                self.status = "reverted"
                return
            if self.status != "applied":
                raise UpdateError("update %d is not applied (status: %s)" % (self.id, self.status))
            try:
                self._revert()
            except UpdateError:
                raise
            except Exception as e:
                raise UpdateError("%s: %s" % (type(e).__name__, e)) from e
            self.status = "reverted"
            registry.mark_reverted(self)
            self.on_reverted()

    # -- pending until its module is imported
    def _wait(self, module):
        self.waiting_for = module
        self.status = "pending: module %s not imported yet" % module
        imports.wait_for(module, self._module_arrived)

    def _stop_waiting(self):
        imports.forget(self._module_arrived)
        self.waiting_for = None

    def _module_arrived(self, module):
        """In the importing thread, right after the module's code ran. The update lock
        may be held by a thread that waits for this very import: then a helper thread
        applies it as soon as it can (the module is in sys.modules by then)."""
        if registry.lock.acquire(timeout=2.0):
            try:
                self._apply_arrived()
            finally:
                registry.lock.release()
        else:
            threading.Thread(target=self._apply_arrived_locked, daemon=True,
                             name="pyliveupdate-pending").start()

    def _apply_arrived_locked(self):
        with registry.lock:
            self._apply_arrived()

    def _apply_arrived(self):
        module = self.waiting_for
        if module is None:
            return                          # reverted meanwhile
        self.waiting_for = None
        try:
            self._apply()
        except ModuleNotImported as e:      # a module further down: wait for that one
            self._wait(e.module)
            return
        except BaseException as e:  # noqa: BLE001 - never into the importer
            text = str(e) if isinstance(e, UpdateError) else "%s: %s" % (type(e).__name__, e)
            self.status = "failed: %s" % text
            events.report("failed", self.id, "when module %s was imported: %s" % (module, text))
            return
        self.status = "applied"
        registry.mark_applied(self)
        try:
            self.on_applied()
        finally:
            events.report("applied", self.id, "module %s was imported" % module)

    apply = ClassOrInstance(_apply_ids, _apply_instance)
    revert = ClassOrInstance(_revert_ids, _revert_instance)
    ls = staticmethod(_ls)

    @staticmethod
    def detach():
        """Revert every update and leave this process as it was (pyliveupdate.detach)."""
        from ..detach import detach
        print(detach())

    # -- reporting
    def describe(self):
        word, reason = self.state()
        return {"id": self.id, "type": self.kind, "status": self.status, "state": word,
                "reason": reason, "notes": list(self.notes)}

    def repr_fields(self):
        """(name, value) pairs shown by repr() and LU.ls() after type and status."""
        return []

    def label(self):
        """A few words naming the update, e.g. 'FuncProfiler shop.views.**' (the controller
        lists one per update: one command can make several). Sent with every report:
        keep it cheap."""
        return str(self.kind)

    def note(self, text):
        """Record something the user should know about this update (shown once)."""
        if text not in self.notes:
            self.notes.append(text)

    def __repr__(self):
        word, reason = self.state()
        status = "applied, disabled: %s" % reason if word == "disabled" else self.status
        fields = [("type", self.kind), ("status", status)] + self.repr_fields()
        return "{%s}" % ", ".join("%s: %s" % kv for kv in fields)


LU = UpdateBase
