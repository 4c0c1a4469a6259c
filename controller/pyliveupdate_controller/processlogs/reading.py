"""Find log files and read each one into a `ProcessProfile` (read -> aggregate)."""
from __future__ import annotations

import os

from pyliveupdate import _engine

from .aggregate import build_process, consume
from .model import ProcessProfile

LOG_SUFFIX = ".pylog"


class LogError(Exception):
    """A log that cannot be read at all (missing, empty, foreign)."""


def default_log_dir() -> str:
    return os.environ.get("PYLU_LOG_DIR") or "/tmp/pyliveupdate"


def default_inputs() -> list[str]:
    """The default log directory, plus the per-user places the recorder falls back to
    when that directory is unsafe (pyliveupdate/recording.py), where they hold logs."""
    places = [default_log_dir()]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        places.append(os.path.join(runtime, "pyliveupdate"))
    places.append(os.path.join(os.path.expanduser("~"), ".cache", "pyliveupdate"))
    with_logs = [p for p in places if os.path.isdir(p) and any(
        name.endswith(LOG_SUFFIX) for name in os.listdir(p))]
    return with_logs[:1] or places[:1]


def find_logs(inputs: list[str]) -> list[str]:
    """Expand directories to their `*.pylog` files; every path must exist."""
    found: list[str] = []
    for path in inputs:
        if os.path.isdir(path):
            logs = sorted(os.path.join(path, name) for name in os.listdir(path)
                          if name.endswith(LOG_SUFFIX))
            if not logs:
                raise LogError("%s: no pyliveupdate logs (*%s) in this directory"
                               % (path, LOG_SUFFIX))
            found.extend(logs)
        elif os.path.exists(path):
            found.append(path)
        else:
            raise LogError("%s: no such file or directory" % path)
    return found


def _guarded_chunks(reader, path: str, warnings: list[str]):
    """The reader's chunks; an error part-way ends the stream with a warning."""
    try:
        yield from reader.chunks()
    except (ValueError, OSError, RuntimeError) as exc:
        warnings.append("%s: reading stopped early (%s); the report covers what came before"
                        % (path, exc))


def read_log(path: str, *, start_ns: int | None = None,
             end_ns: int | None = None) -> ProcessProfile:
    reader_type = getattr(_engine, "LogReader", None)
    if reader_type is None:
        raise LogError("this build of pyliveupdate has no log reader (_engine.LogReader)")
    try:
        reader = reader_type(path)
    except (ValueError, OSError) as exc:
        text = str(exc)
        raise LogError(text if path in text else "%s: %s" % (path, text)) from None
    header = dict(reader.header)
    warnings: list[str] = []
    builder, meta = consume(_guarded_chunks(reader, path, warnings),
                            start_ns=start_ns, end_ns=end_ns)
    proc = build_process(builder, meta, pid=int(header.get("pid", 0)), path=path, header=header)
    error = getattr(reader, "error", None)
    if error:
        warnings.append("%s: %s; the report covers the complete part before it" % (path, error))
    proc.complete = bool(getattr(reader, "complete", True)) and not warnings
    if not getattr(reader, "complete", True) and not error:
        warnings.append("%s: the log has no end record (process still running, or killed); "
                        "the report covers what was written" % path)
    proc.warnings[:0] = warnings
    return proc
