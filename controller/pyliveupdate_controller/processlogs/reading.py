"""Find logs and read each one (a process's segments in order) into a `ProcessProfile`.

Where logs are and how segments are named is `pyliveupdate.logdir`'s policy, shared with
the recorder. The log reader is reached only through `open_reader` (one import to change
if it moves to its own extension module).
"""
from __future__ import annotations

import array
import os

from pyliveupdate import _engine, logdir

from .aggregate import build_process, consume
from .model import ProcessProfile

LOG_SUFFIX = logdir.LOG_SUFFIX
LogGroup = logdir.LogGroup


class LogError(Exception):
    """A log that cannot be read at all (missing, empty, foreign)."""


def default_log_dir() -> str:
    return logdir.wanted_dir()


def default_inputs() -> list[str]:
    """The log directory, or the first per-user fallback of the recorder that holds logs."""
    places = logdir.reading_dirs()
    with_logs = [p for p in places if os.path.isdir(p) and any(
        name.endswith(LOG_SUFFIX) for name in os.listdir(p))]
    return with_logs[:1] or places[:1]


def _legacy_hint(path: str) -> str:
    """A pointer to where logs are now, for the paths the original tool used."""
    norm = os.path.normpath(os.path.abspath(path))
    if norm in logdir.LEGACY_PATHS or os.path.basename(norm) == "pyliveupdate.log":
        return ("; that is where the original PyLiveUpdate (or an earlier release) wrote. Logs "
                "are now %s files in %s (PYLU_LOG_DIR), read by default: run pylu-processlogs "
                "without -i" % ("pylu-<pid>-<ns>" + LOG_SUFFIX, default_log_dir()))
    return ""


def find_logs(inputs: list[str]) -> list[LogGroup]:
    """Expand directories to their logs and group each process's segments; every path
    must exist."""
    found: list[str] = []
    for path in inputs:
        if os.path.isdir(path):
            logs = [os.path.join(path, n) for n in os.listdir(path) if n.endswith(LOG_SUFFIX)]
            if not logs:
                raise LogError("%s: no pyliveupdate logs (*%s) in this directory%s"
                               % (path, LOG_SUFFIX, _legacy_hint(path)))
            found.extend(logs)
        elif os.path.exists(path):
            found.append(path)
        else:
            raise LogError("%s: no such file or directory%s" % (path, _legacy_hint(path)))
    return logdir.group_logs(list(dict.fromkeys(found)))


def open_reader(path: str):
    """The C log reader on one file (LogError for a file that is not a log)."""
    reader_type = getattr(_engine, "LogReader", None)
    if reader_type is None:
        raise LogError("this build of pyliveupdate has no log reader (_engine.LogReader)")
    try:
        return reader_type(path)
    except (ValueError, OSError) as exc:
        text = str(exc)
        if path not in text:
            text = "%s: %s" % (path, text)
        raise LogError(text + _legacy_hint(path)) from None


def _offset_ns(first: dict, header: dict) -> int:
    """ns from the first segment's start to this one's: event times are per segment."""
    ticks = header.get("ticks_per_sec")
    if (ticks and header.get("clock_id") == first.get("clock_id")
            and "start_ticks" in header and "start_ticks" in first):
        return round((header["start_ticks"] - first["start_ticks"]) * 1e9 / ticks)
    return int(header.get("start_unix_ns", 0)) - int(first.get("start_unix_ns", 0))


def _shifted(events: bytes, offset: int) -> bytes:
    """The packed events with `offset` added to every ts_ns (first 8 bytes of 24)."""
    if not offset or not events:
        return events
    words = array.array("q", events)       # 3 int64 words per event, ts first
    words[0::3] = array.array("q", (ts + offset for ts in words[0::3]))
    return words.tobytes()


class LogStream:
    """A log (one process's segments, in order) read as one stream of chunks.

    `chunks()` yields what `LogReader.chunks()` yields, segment after segment, with event
    times relative to the first kept segment's start. Problems go to `warnings`: an
    error part-way ends the stream (the report covers what came before)."""

    def __init__(self, group: LogGroup):
        self.group = group
        self.readers = [open_reader(path) for path in group.segments]
        self.header = dict(self.readers[0].header)
        self.warnings: list[str] = []
        if group.missing:
            self.warnings.append(
                "%s: segment(s) %s of this log were deleted (disk budget, oldest first); the "
                "report starts at segment %d" % (group.path, _ranges(group.missing),
                                                 group.numbers[0]))
        for path, reader in zip(group.segments[1:], self.readers[1:]):
            pid = reader.header.get("pid")
            if pid != self.header.get("pid"):
                raise LogError("%s: segment of process %s, but %s is of process %s"
                               % (path, pid, group.path, self.header.get("pid")))

    @property
    def complete(self) -> bool:
        return bool(getattr(self.readers[-1], "complete", True)) and not self.warnings

    def chunks(self):
        for path, reader in zip(self.group.segments, self.readers):
            offset = _offset_ns(self.header, reader.header)
            try:
                for events, metas in reader.chunks():
                    if offset:
                        metas = [("text", m[1], m[2] + offset, *m[3:]) if m[0] == "text" else m
                                 for m in metas]
                    yield _shifted(events, offset), metas
            except (ValueError, OSError, RuntimeError) as exc:
                self.warnings.append("%s: reading stopped early (%s); the report covers what "
                                     "came before" % (path, exc))
                return
            error = getattr(reader, "error", None)
            if error:
                self.warnings.append("%s: %s; the report covers the complete part before it"
                                     % (path, error))
                return
        if not getattr(self.readers[-1], "complete", True):
            self.warnings.append("%s: the log has no end record (process still running, or "
                                 "killed); the report covers what was written"
                                 % self.group.segments[-1])

    def close(self) -> None:
        for reader in self.readers:
            close = getattr(reader, "close", None)
            if close is not None:
                close()


def _ranges(numbers: list[int]) -> str:
    if len(numbers) > 1 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return "%d-%d" % (numbers[0], numbers[-1])
    return ", ".join(str(n) for n in numbers)


def _replay(group: LogGroup):
    """The log's chunks again, from its first kept segment (for the timeline)."""
    stream = LogStream(group)
    try:
        yield from stream.chunks()
    finally:
        stream.close()


def read_log(group: LogGroup | str, *, start_ns: int | None = None,
             end_ns: int | None = None) -> ProcessProfile:
    if isinstance(group, str):
        group = logdir.group_logs([group])[0]
    stream = LogStream(group)
    try:
        builder, meta = consume(stream.chunks(), start_ns=start_ns, end_ns=end_ns)
    finally:
        stream.close()
    proc = build_process(builder, meta, pid=int(stream.header.get("pid", 0)), path=group.path,
                         header=stream.header)
    proc.segments = list(group.segments)
    proc.source = lambda: _replay(group)
    proc.complete = stream.complete
    proc.warnings[:0] = stream.warnings
    return proc
