"""pprof: a gzipped `perftools.profiles.Profile` (profile.proto), as `go tool pprof`,
Pyroscope, Grafana, Google Cloud Profiler and Datadog read it.

Sample types: `calls` (count) and `wall` (nanoseconds, the default). One sample per call
path of each thread: `calls` = the calls of the path's last function along that path,
`wall` = its self time on that path, so pprof's cumulative views add up to inclusive time
without double counting. Labels `pid` and `thread` keep processes and threads apart (for
`-tagfocus`, `-tagroot`). Recorded calls, not samples: the period is 1 ns.

The encoder is ours (`protowire.py`, ~60 lines): the protobuf runtime would bring a
compiled copy of profile.proto tied to its own version, for 6 message types we only write.
"""
from __future__ import annotations

import gzip

from .model import Node, ProcessProfile, Report
from .protowire import Message

# profile.proto field numbers
PROFILE_SAMPLE_TYPE, PROFILE_SAMPLE, PROFILE_MAPPING, PROFILE_LOCATION = 1, 2, 3, 4
PROFILE_FUNCTION, PROFILE_STRING_TABLE, PROFILE_TIME_NANOS, PROFILE_DURATION_NANOS = 5, 6, 9, 10
PROFILE_PERIOD_TYPE, PROFILE_PERIOD, PROFILE_COMMENT, PROFILE_DEFAULT_SAMPLE_TYPE = 11, 12, 13, 14
VALUE_TYPE_TYPE, VALUE_TYPE_UNIT = 1, 2
SAMPLE_LOCATION_ID, SAMPLE_VALUE, SAMPLE_LABEL = 1, 2, 3
LABEL_KEY, LABEL_STR, LABEL_NUM = 1, 2, 3
MAPPING_ID, MAPPING_FILENAME, MAPPING_HAS_FUNCTIONS = 1, 5, 7
MAPPING_HAS_FILENAMES, MAPPING_HAS_LINE_NUMBERS = 8, 9
LOCATION_ID, LOCATION_MAPPING_ID, LOCATION_LINE = 1, 2, 4
LINE_FUNCTION_ID, LINE_LINE = 1, 2
FUNCTION_ID, FUNCTION_NAME, FUNCTION_SYSTEM_NAME, FUNCTION_FILENAME, FUNCTION_START_LINE = 1, 2, 3, 4, 5

SAMPLE_TYPES = (("calls", "count"), ("wall", "nanoseconds"))


class _ProfileBuilder:
    """Interns strings, functions and locations; collects samples."""

    def __init__(self):
        self.strings: dict[str, int] = {"": 0}     # string_table[0] must be ""
        self.functions: dict[tuple, int] = {}      # (name, file, line) -> id (from 1)
        self.samples: list[Message] = []
        self.comments: list[int] = []

    def string(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def location(self, node: Node) -> int:
        """One location per function (its first line): we record calls, not call sites."""
        return self.functions.setdefault(node.key, len(self.functions) + 1)

    def add_thread_samples(self, proc: ProcessProfile, thread) -> None:
        labels = [Message().integer(LABEL_KEY, self.string("pid")).integer(LABEL_NUM, proc.pid),
                  Message().integer(LABEL_KEY, self.string("thread"))
                  .integer(LABEL_STR, self.string(thread.name))]
        for path, node in thread.root.paths():
            if not (node.hits or node.self):
                continue
            sample = Message()
            sample.packed(SAMPLE_LOCATION_ID, [self.location(n) for n in reversed(path)])
            sample.packed(SAMPLE_VALUE, [node.hits, node.self])
            for label in labels:
                sample.submessage(SAMPLE_LABEL, label)
            self.samples.append(sample)

    def encode(self, *, time_nanos: int, duration_nanos: int, mapping_name: str) -> bytes:
        out = Message()
        for kind, unit in SAMPLE_TYPES:
            out.submessage(PROFILE_SAMPLE_TYPE, Message().integer(VALUE_TYPE_TYPE, self.string(kind))
                           .integer(VALUE_TYPE_UNIT, self.string(unit)))
        for sample in self.samples:
            out.submessage(PROFILE_SAMPLE, sample)
        out.submessage(PROFILE_MAPPING, Message().integer(MAPPING_ID, 1)
                       .integer(MAPPING_FILENAME, self.string(mapping_name))
                       .flag(MAPPING_HAS_FUNCTIONS, True).flag(MAPPING_HAS_FILENAMES, True)
                       .flag(MAPPING_HAS_LINE_NUMBERS, True))
        functions = []
        for (name, filename, line), fid in self.functions.items():
            line_msg = Message().integer(LINE_FUNCTION_ID, fid).integer(LINE_LINE, line)
            out.submessage(PROFILE_LOCATION, Message().integer(LOCATION_ID, fid)
                           .integer(LOCATION_MAPPING_ID, 1).submessage(LOCATION_LINE, line_msg))
            functions.append(Message().integer(FUNCTION_ID, fid)
                             .integer(FUNCTION_NAME, self.string(name))
                             .integer(FUNCTION_SYSTEM_NAME, self.string(name))
                             .integer(FUNCTION_FILENAME, self.string(filename))
                             .integer(FUNCTION_START_LINE, line))
        for function in functions:
            out.submessage(PROFILE_FUNCTION, function)
        comments = list(self.comments)           # interned before the table is written
        wall = self.string("wall")
        period_type = Message().integer(VALUE_TYPE_TYPE, wall).integer(
            VALUE_TYPE_UNIT, self.string("nanoseconds"))
        for text in self.strings:
            out.text(PROFILE_STRING_TABLE, text)
        out.integer(PROFILE_TIME_NANOS, time_nanos).integer(PROFILE_DURATION_NANOS, duration_nanos)
        out.submessage(PROFILE_PERIOD_TYPE, period_type).integer(PROFILE_PERIOD, 1)
        out.packed(PROFILE_COMMENT, comments)
        out.integer(PROFILE_DEFAULT_SAMPLE_TYPE, wall)
        return out.encode()


def profile_bytes(report: Report, processes: list[ProcessProfile]) -> bytes:
    """One gzipped profile of `processes` (their threads after the report's filters)."""
    builder = _ProfileBuilder()
    builder.comments.append(builder.string(
        "pyliveupdate: every recorded call (not samples); wall = self time of the call path"))
    for note in report.notes:
        builder.comments.append(builder.string("filter: " + note))
    for proc in processes:
        builder.comments.append(builder.string("process %d: %s (%s)" % (
            proc.pid, proc.program, proc.path)))
        if proc.dropped:
            builder.comments.append(builder.string(
                "DROPPED: %d records lost in process %d; its numbers are incomplete"
                % (proc.dropped, proc.pid)))
        for warning in proc.warnings:
            builder.comments.append(builder.string("WARNING: " + warning))
        for thread in proc.threads:
            builder.add_thread_samples(proc, thread)
    starts = [int(p.header.get("start_unix_ns") or 0) for p in processes]
    start = min(starts, default=0)
    end = max((s + p.duration_ns for s, p in zip(starts, processes)), default=0)
    names = sorted({p.program for p in processes})
    data = builder.encode(time_nanos=start, duration_nanos=max(0, end - start),
                          mapping_name=", ".join(names) or "python")
    # mtime=0: the same report gives the same bytes
    return gzip.compress(data, mtime=0)


def render_pprof(report: Report, merge: bool = True) -> dict[str, bytes]:
    """{"" : merged profile} or {".<pid>": profile} per process (suffixes before `.pb.gz`)."""
    if merge or len(report.processes) == 1:
        return {"": profile_bytes(report, report.processes)}
    return {".%d" % p.pid: profile_bytes(report, [p]) for p in report.processes}
