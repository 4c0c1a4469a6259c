"""Detach: leave the process as it was before pyliveupdate started in it.

    LU.detach()          # typed at the controller: runs in each selected process

In order: every applied update is reverted (newest first; if one cannot be, nothing
else is stopped and the error says which, so the operator keeps control); the engine
disarms every code object, unregisters its callbacks, frees its sys.monitoring tool id
and removes its frame hook; the recorder drains, writes its last frame and stops its
thread; the helper threads (time-to-live, command deadlines) end; every stub
disconnects and its threads end — the one running this command right after its reply
is sent.

What stays: the imported modules (Python cannot unimport safely) and inert fork hooks
(os.register_at_fork has no removal; with no stub left they do nothing). A later
``pylu-attach`` starts a new stub in the same process.
"""
import sys

__all__ = ["detach", "DetachError"]

THREAD_JOIN_TIMEOUT = 5.0


class DetachError(RuntimeError):
    """An update could not be reverted; nothing was stopped."""


def detach():
    """Revert every update, stop recording and every thread of ours; returns a summary."""
    done = [_revert_all()]
    engine = sys.modules.get(__package__ + ".engine")
    if engine is not None:
        engine.shutdown()
        done.append("engine stopped (callbacks, tool id, frame hook)")
    log = _stop_recording()
    if log:
        done.append("recording stopped (%s)" % log)
    _stop_helper_threads()
    stubs = _stop_stubs()
    done.append("%d stub(s) disconnected" % stubs)
    return "detached: " + "; ".join(done)


def _revert_all():
    updates = sys.modules.get(__package__ + ".updates")
    if updates is None:
        return "no update was made"
    manager = updates.UpdateManager
    # newest first; pending updates (waiting for an import) stop waiting too
    active = [u for u in reversed(manager.all()) if u.is_active()]
    for update in active:
        if not manager.revert_update(update.id):
            raise DetachError("not detached: update %d could not be reverted (see above); "
                              "nothing was stopped" % update.id)
    return "%d update(s) reverted" % len(active)


def _stop_recording():
    core = sys.modules.get(__package__ + "._engine")
    if core is None or not core.recorder_stats().get("running"):
        return None
    path = core.recorder_stats().get("path")
    core.recorder_stop()
    return path


def _stop_helper_threads():
    modifications = sys.modules.get(__package__ + ".modifications")
    if modifications is not None:
        modifications.stop_helper_thread()
    command = sys.modules.get(__package__ + ".command")
    if command is not None:
        command.stop_helper_thread()


def _stop_stubs():
    stub_module = sys.modules.get(__package__ + ".stub")
    if stub_module is None:
        return 0
    stubs = list(stub_module._started)
    for stub in stubs:
        stub.stop(THREAD_JOIN_TIMEOUT)
    return len(stubs)
