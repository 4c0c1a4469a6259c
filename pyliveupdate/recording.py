"""Where logs go, and starting/stopping the recorder (the C side is `_engine.recorder_*`).

Directory policy: the argument, else ``$PYLU_LOG_DIR``, else ``/tmp/pyliveupdate``. The
directory is created 0700. One that is a symlink, not ours, or writable by group/others is
refused (a clear line on stderr) and the log goes to a per-user place instead:
``$XDG_RUNTIME_DIR/pyliveupdate`` or ``~/.cache/pyliveupdate``.
"""
import os
import stat
import sys

from . import _engine

DEFAULT_DIR = "/tmp/pyliveupdate"


class RecordingError(RuntimeError):
    """No safe log directory could be found or the recorder could not start."""


def check_private_dir(path):
    """Create `path` (0700) if missing; return None if it is safe, else why not."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        return "cannot create it: %s" % e.strerror
    try:
        st = os.lstat(path)
    except OSError as e:
        return "cannot stat it: %s" % e.strerror
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.geteuid():
        return "it is owned by uid %d, not by us (uid %d)" % (st.st_uid, os.geteuid())
    if st.st_mode & 0o022:
        return "it is writable by group or others (mode %o)" % stat.S_IMODE(st.st_mode)
    return None


def _fallbacks():
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        yield os.path.join(runtime, "pyliveupdate")
    cache = os.path.join(os.path.expanduser("~"), ".cache")
    try:
        os.makedirs(cache, 0o700, exist_ok=True)
    except OSError:
        pass
    yield os.path.join(cache, "pyliveupdate")


def choose_directory(directory=None):
    """Return (directory, refusals): the first safe place, and why earlier ones were refused."""
    wanted = directory or os.environ.get("PYLU_LOG_DIR") or DEFAULT_DIR
    refusals = []
    for candidate in [os.path.abspath(wanted), *_fallbacks()]:
        why = check_private_dir(candidate)
        if why is None:
            return candidate, refusals
        refusals.append("refusing log directory %s: %s" % (candidate, why))
    raise RecordingError("no safe log directory: " + "; ".join(refusals))


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
