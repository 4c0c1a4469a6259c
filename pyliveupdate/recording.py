"""Starting and stopping the recorder (the C side is `_engine.recorder_*`).

Where logs go is `pyliveupdate.logdir`'s policy (shared with pylu-processlogs).
"""
import sys

from . import _engine, logdir


class RecordingError(RuntimeError):
    """No safe log directory could be found or the recorder could not start."""


def choose_directory(directory=None):
    """Return (directory, refusals): the first safe place, and why earlier ones were refused."""
    try:
        return logdir.choose_directory(directory)
    except LookupError as e:
        raise RecordingError(str(e)) from None


def ensure_started(directory=None, **options):
    """Start recording unless it is running; return the log path.

    options go to `_engine.recorder_start` (ring_slots, level, flush_ms, frame_ms)."""
    if _engine.recorder_active():
        return _engine.recorder_stats()["path"]
    if _engine.recorder_stats()["running"]:
        _engine.recorder_stop()      # a log that failed (disk full, deleted): close it first
    chosen, refusals = choose_directory(directory)
    for line in refusals:
        print("pyliveupdate: %s; using %s" % (line, chosen), file=sys.stderr)
    try:
        return _engine.recorder_start(chosen, **options)
    except ValueError as e:
        raise RecordingError(str(e)) from None


def stop():
    """Drain everything, write the final frame and close the log."""
    _engine.recorder_stop()


def stats():
    """Counters of the current (or last) log: events, dropped, bytes_written, error, ..."""
    return _engine.recorder_stats()


def log_path():
    """Path of the current log, or None when not recording."""
    return _engine.recorder_stats()["path"] if _engine.recorder_active() else None
