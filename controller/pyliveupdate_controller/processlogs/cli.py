"""`pylu-processlogs`: read pyliveupdate logs and write summaries, flamegraphs, line reports,
timelines and pprof profiles.

Pipeline: read (LogReader) -> aggregate (C CallTreeBuilder) -> tree -> processors
(filters) -> one renderer per format.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import filters
from .formats import DEFAULT_FORMATS, FORMATS, Options, print_format
from .model import Report
from .reading import LogError, LogGroup, default_inputs, default_log_dir, find_logs, read_log
from .render_perfetto import DEFAULT_MAX_SLICES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pylu-processlogs",
        description="Turn pyliveupdate logs into call summaries, flamegraphs, line reports, "
        "timelines (Perfetto, chrome://tracing) and pprof profiles.")
    p.add_argument("-i", "--input", action="append", metavar="PATH",
                   help="a log file or a directory of logs; a process's rotated segments "
                   "are read as one log (repeatable; default %s, or PYLU_LOG_DIR)"
                   % default_log_dir())
    p.add_argument("-o", "--outdir", default=".", metavar="OUTDIR",
                   help="where to write the reports (default: current directory)")
    p.add_argument("--format", action="append", metavar="FMT",
                   help="%s, or 'all' (repeatable or comma separated; default %s). "
                   "'-' as OUTDIR with one format prints it"
                   % (", ".join(FORMATS), ",".join(DEFAULT_FORMATS)))
    p.add_argument("--name", help="base name of the output files (default: from the input)")
    p.add_argument("--program", action="append", default=[], metavar="NAME",
                   help="only processes of this program: the script or command name as "
                   "started (webservice.py, webservice, gunicorn; globs work; repeatable)")
    p.add_argument("--pid", type=int, action="append", default=[],
                   help="only this process (repeatable)")
    p.add_argument("--thread", action="append", default=[],
                   help="only this thread: name, OS thread id or log thread number (repeatable)")
    p.add_argument("--threads", choices=("each", "name", "all"), default="name",
                   help="'name' (default): merge threads whose names differ only in numbers, "
                   "such as the request threads of a threading server; 'each': keep every "
                   "thread apart; 'all': one tree per process")
    p.add_argument("--start", type=float, metavar="SEC",
                   help="time window start, seconds since the start of each log")
    p.add_argument("--end", type=float, metavar="SEC",
                   help="time window end, seconds since the start of each log")
    p.add_argument("--min-percent", type=float, default=0.0, metavar="P",
                   help="hide call paths under P%% of their thread's time")
    p.add_argument("--top", type=int, default=0, metavar="N",
                   help="show only the N heaviest callees of each call path")
    p.add_argument("--max-slices", type=int, default=DEFAULT_MAX_SLICES, metavar="N",
                   help="perfetto: draw at most about N slices (calls and lines), shared "
                   "between the processes; a note says where the timeline stops "
                   "(default %d)" % DEFAULT_MAX_SLICES)
    p.add_argument("--merge", action="store_true",
                   help="pprof: one profile of all processes (default: one file per process)")
    return p


def _formats(values: list[str] | None) -> list[str]:
    names: list[str] = []
    for v in values or [",".join(DEFAULT_FORMATS)]:
        for name in filter(None, (s.strip() for s in v.split(","))):
            if name == "all":
                names.extend(FORMATS)
            elif name not in FORMATS:
                raise ValueError("unknown format %r (choose from %s, all)"
                                 % (name, ", ".join(FORMATS)))
            else:
                names.append(name)
    return list(dict.fromkeys(names))


def _base_name(logs: list[LogGroup]) -> str:
    if len(logs) == 1:
        name = os.path.basename(logs[0].path)
        return name[:-len(".pylog")] if name.endswith(".pylog") else name
    return "pyliveupdate"


def build_report(logs: list[LogGroup], args) -> Report:
    start_ns = None if args.start is None else int(args.start * 1e9)
    end_ns = None if args.end is None else int(args.end * 1e9)
    report = Report([read_log(group, start_ns=start_ns, end_ns=end_ns) for group in logs],
                    window=(start_ns, end_ns))
    programs_found = report.programs_line()
    if args.start is not None or args.end is not None:
        report.notes.append("time window %s s to %s s after each log's start (slices clipped)"
                            % ("start" if args.start is None else "%g" % args.start,
                               "end" if args.end is None else "%g" % args.end))
    filters.select_programs(report, args.program)
    if args.program and not report.processes:
        raise LogError("no process of program %s in these logs; they hold: %s"
                       % (", ".join(args.program), programs_found))
    filters.select_processes(report, args.pid)
    filters.select_threads(report, args.thread)
    filters.merge_threads(report, args.threads)
    filters.min_percent(report, args.min_percent)
    filters.top(report, args.top)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        formats = _formats(args.format)
    except ValueError as exc:
        parser.error(str(exc))
    if args.start is not None and args.end is not None and args.start > args.end:
        parser.error("--start must not be after --end")
    if args.outdir == "-" and len(formats) != 1:
        parser.error("-o - prints one format; choose it with --format")
    if args.max_slices < 1:
        parser.error("--max-slices must be at least 1")
    inputs = args.input or default_inputs()
    try:
        logs = find_logs(inputs)
        report = build_report(logs, args)
    except LogError as exc:
        hint = "" if args.input else (" (the default log directory; PYLU_LOG_DIR or -i "
                                      "chooses another)")
        print("pylu-processlogs: error: %s%s" % (exc, hint), file=sys.stderr)
        return 2
    if not report.processes:
        print("pylu-processlogs: error: no process left after the filters", file=sys.stderr)
        return 2
    print("pylu-processlogs: %d log%s of %s" % (len(report.processes),
                                               "" if len(report.processes) == 1 else "s",
                                               report.programs_line()), file=sys.stderr)
    for warning in report.warnings:
        print("pylu-processlogs: warning: %s" % warning, file=sys.stderr)
    options = Options(max_slices=args.max_slices, merge=args.merge)
    if args.outdir == "-":
        fmt = FORMATS[formats[0]]
        print_format(fmt, report, options)
        _print_notes(fmt)
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    base = os.path.join(args.outdir, args.name or _base_name(logs))
    if not args.format:
        has_lines = any(p.lines for p in report.processes)
        has_text = any(p.texts for p in report.processes)
        formats = [f for f in formats if (f != "lines" or has_lines) and (f != "text" or has_text)]
    for name in formats:
        fmt = FORMATS[name]
        for path in fmt.write(report, options, base):
            print(path)
        _print_notes(fmt)
    return 0


def _print_notes(fmt) -> None:
    for note in getattr(fmt, "notes", []):
        print("pylu-processlogs: note: %s" % note, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
