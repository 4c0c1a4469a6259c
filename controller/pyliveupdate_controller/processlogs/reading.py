"""Find logs and read each one (a process's segments in order) into a `ProcessProfile`.

Where logs are and how segments are named is `pyliveupdate.logdir`'s policy, shared with
the recorder. The log reader (`pyliveupdate._reader`) is reached only through `open_reader`.
"""
from __future__ import annotations

import os

from pyliveupdate import _reader, logdir

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


def open_reader(paths: list[str]):
    """The C log reader on a log's segment files, read as one log with one clock (LogError
    for a file that is not a log, or a segment of another log)."""
    try:
        return _reader.LogReader(list(paths))
    except (ValueError, OSError) as exc:
        text = str(exc)
        if paths[0] not in text:
            text = "%s: %s" % (paths[0], text)
        raise LogError(text + _legacy_hint(paths[0])) from None


class LogStream:
    """A log (one process's segments, in order) read as one stream of chunks.

    `chunks()` yields what `LogReader.chunks()` yields; the C reader joins the segments and
    keeps event times relative to the first kept segment's start. Problems go to
    `warnings`: an error part-way ends the stream (the report covers what came before)."""

    def __init__(self, group: LogGroup):
        self.group = group
        self.reader = open_reader(group.segments)
        self.header = dict(self.reader.header)
        self.warnings: list[str] = []
        if group.missing:
            self.warnings.append(
                "%s: segment(s) %s of this log were deleted (disk budget, oldest first); the "
                "report starts at segment %d" % (group.path, _ranges(group.missing),
                                                 group.numbers[0]))

    @property
    def complete(self) -> bool:
        return bool(self.reader.complete) and not self.warnings

    def chunks(self):
        try:
            yield from self.reader.chunks()
        except (ValueError, OSError, RuntimeError) as exc:
            self.warnings.append("%s: reading stopped early (%s); the report covers what "
                                 "came before" % (self.group.path, exc))
            return
        if self.reader.error:
            self.warnings.append("%s: %s; the report covers the complete part before it"
                                 % (self.group.path, self.reader.error))
        elif not self.reader.complete:
            self.warnings.append("%s: the log has no end record (process still running, or "
                                 "killed); the report covers what was written"
                                 % self.group.segments[-1])

    def close(self) -> None:
        self.reader.close()


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
