"""`pylu-processlogs`: read pyliveupdate logs and write summaries, flamegraphs, line reports.

Pipeline: read (LogReader) -> aggregate (C CallTreeBuilder) -> tree -> processors
(filters) -> one renderer per format.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import filters
from .lines import render_lines
from .model import Report
from .reading import LogError, default_inputs, default_log_dir, find_logs, read_log
from .render_folded import render_folded
from .render_json import render_json
from .render_speedscope import render_speedscope
from .render_summary import render_summary
from .render_svg import render_svg
from .render_text import render_text

# format name -> (file extension, renderer)
FORMATS = {
    "summary": (".summary", render_summary),
    "lines": (".lines", render_lines),
    "svg": (".svg", render_svg),
    "folded": (".folded", render_folded),
    "speedscope": (".speedscope.json", render_speedscope),
    "json": (".json", render_json),
    "text": (".text", render_text),
}
# By default: summary and svg, plus lines and text when the logs hold any.
DEFAULT_FORMATS = ["summary", "svg", "lines", "text"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pylu-processlogs",
        description="Turn pyliveupdate logs into call summaries, flamegraphs and line reports.")
    p.add_argument("-i", "--input", action="append", metavar="PATH",
                   help="a log file or a directory of logs (repeatable; default %s)"
                   % default_log_dir())
    p.add_argument("-o", "--outdir", default=".", metavar="OUTDIR",
                   help="where to write the reports (default: current directory)")
    p.add_argument("--format", action="append", metavar="FMT",
                   help="%s, or 'all' (repeatable or comma separated; default %s). "
                   "'-' as OUTDIR with one format prints it"
                   % (", ".join(FORMATS), ",".join(DEFAULT_FORMATS)))
    p.add_argument("--name", help="base name of the output files (default: from the input)")
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


def _base_name(inputs: list[str], logs: list[str]) -> str:
    if len(logs) == 1:
        name = os.path.basename(logs[0])
        return name[:-len(".pylog")] if name.endswith(".pylog") else name
    return "pyliveupdate"


def build_report(logs: list[str], args) -> Report:
    start_ns = None if args.start is None else int(args.start * 1e9)
    end_ns = None if args.end is None else int(args.end * 1e9)
    report = Report([read_log(path, start_ns=start_ns, end_ns=end_ns) for path in logs])
    if args.start is not None or args.end is not None:
        report.notes.append("time window %s s to %s s after each log's start (slices clipped)"
                            % ("start" if args.start is None else "%g" % args.start,
                               "end" if args.end is None else "%g" % args.end))
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
    inputs = args.input or default_inputs()
    try:
        logs = find_logs(inputs)
        report = build_report(logs, args)
    except LogError as exc:
        print("pylu-processlogs: error: %s" % exc, file=sys.stderr)
        return 2
    if not report.processes:
        print("pylu-processlogs: error: no process left after the filters", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print("pylu-processlogs: warning: %s" % warning, file=sys.stderr)
    if args.outdir == "-":
        sys.stdout.write(FORMATS[formats[0]][1](report))
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    base = args.name or _base_name(inputs, logs)
    if not args.format:
        has_lines = any(p.lines for p in report.processes)
        has_text = any(p.texts for p in report.processes)
        formats = [f for f in formats if (f != "lines" or has_lines) and (f != "text" or has_text)]
    for name in formats:
        ext, render = FORMATS[name]
        path = os.path.join(args.outdir, base + ext)
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(report))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
