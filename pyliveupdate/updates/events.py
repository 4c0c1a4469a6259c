"""What happens to updates on its own, for whoever watches (the stub sends it on).

    from pyliveupdate.updates import events
    events.subscribe(lambda kind, update_id, text: ...)

Kinds: "applied" (a pending update applied when its module was imported), "failed" (a
pending update that could not be applied then), "disabled" (its handlers were switched
off: errors or time budget), "expired" (its time to live ended and it was reverted).
``report()`` also writes the event's text as an engine line (text kind 3) to the
program's stderr, the controller's live output and the log (pyliveupdate.output), so a
stub that relays output needs the feed only for the state. Callbacks run in the thread
where it happened (an importing thread, a handler's thread, the time-to-live thread),
must be quick, and never raise into it: what they raise is dropped.
"""
import threading

__all__ = ["KINDS", "subscribe", "unsubscribe", "emit", "report"]

KINDS = ("applied", "failed", "disabled", "expired")

_lock = threading.Lock()
_subscribers = []


def subscribe(callback):
    """callback(kind, update_id, text) for every event from now on."""
    if not callable(callback):
        raise TypeError("callback must be callable")
    with _lock:
        _subscribers.append(callback)


def unsubscribe(callback):
    with _lock:
        if callback in _subscribers:
            _subscribers.remove(callback)


def emit(kind, update_id, text):
    """Tell every subscriber; never raises."""
    with _lock:
        subscribers = list(_subscribers)
    for callback in subscribers:
        try:
            callback(kind, update_id, text)
        except BaseException:  # noqa: BLE001 - a subscriber never disturbs the program
            pass


def report(kind, update_id, reason):
    """emit() the reason (what happened, without "update N <kind>": subscribers add that),
    and the whole sentence as an engine line through pyliveupdate.output."""
    emit(kind, update_id, reason)
    try:
        from .. import output
        output.emit(update_id, "[pyliveupdate] update %s %s: %s" % (update_id, kind, reason),
                    output.TEXT_ENGINE)
    except BaseException:  # noqa: BLE001
        pass
