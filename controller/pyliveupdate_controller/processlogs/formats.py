"""The output formats of pylu-processlogs: name -> how to render and where to write it.

Most formats are one text file (`TextFormat`). The timeline streams to its file and is
gzipped when large; pprof is binary, one file per process unless merged.
"""
from __future__ import annotations

import gzip
import os
import shutil
import sys
from dataclasses import dataclass

from .lines import render_lines
from .model import Report
from .render_folded import render_folded
from .render_json import render_json
from .render_perfetto import DEFAULT_MAX_SLICES, write_perfetto
from .render_pprof import render_pprof
from .render_speedscope import render_speedscope
from .render_summary import render_summary
from .render_svg import render_svg
from .render_text import render_text

# A timeline larger than this is written gzipped (Perfetto and chrome://tracing read both).
GZIP_ABOVE_BYTES = 32 << 20


@dataclass
class Options:
    max_slices: int = DEFAULT_MAX_SLICES
    merge: bool = False


class TextFormat:
    def __init__(self, ext: str, render):
        self.ext = ext
        self._render = render

    def render(self, report: Report, options: Options) -> str:
        return self._render(report)

    def write(self, report: Report, options: Options, base: str) -> list[str]:
        """Write next to `base` (a path without extension); returns the paths written."""
        path = base + self.ext
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.render(report, options))
        return [path]


class PerfettoFormat:
    ext = ".perfetto.json"

    def __init__(self):
        self.notes: list[str] = []

    def render(self, report: Report, options: Options) -> str:
        from io import StringIO
        out = StringIO()
        self.notes = write_perfetto(report, out, options.max_slices)
        return out.getvalue()

    def write(self, report: Report, options: Options, base: str) -> list[str]:
        path = base + self.ext
        with open(path, "w", encoding="utf-8") as f:
            self.notes = write_perfetto(report, f, options.max_slices)
        if os.path.getsize(path) <= GZIP_ABOVE_BYTES:
            return [path]
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.unlink(path)
        return [path + ".gz"]


class PprofFormat:
    ext = ".pb.gz"
    notes: list[str] = []

    def render(self, report: Report, options: Options) -> bytes:
        """One profile (all processes merged): what `-o -` prints."""
        return render_pprof(report, merge=True)[""]

    def write(self, report: Report, options: Options, base: str) -> list[str]:
        paths = []
        for suffix, data in render_pprof(report, merge=options.merge).items():
            paths.append(base + suffix + self.ext)
            with open(paths[-1], "wb") as f:
                f.write(data)
        return paths


FORMATS = {
    "summary": TextFormat(".summary", render_summary),
    "lines": TextFormat(".lines", render_lines),
    "svg": TextFormat(".svg", render_svg),
    "folded": TextFormat(".folded", render_folded),
    "speedscope": TextFormat(".speedscope.json", render_speedscope),
    "json": TextFormat(".json", render_json),
    "text": TextFormat(".text", render_text),
    "perfetto": PerfettoFormat(),
    "pprof": PprofFormat(),
}
# By default: summary and svg, plus lines and text when the logs hold any.
DEFAULT_FORMATS = ["summary", "svg", "lines", "text"]


def print_format(fmt, report: Report, options: Options) -> None:
    """`-o -`: the format on standard output."""
    data = fmt.render(report, options)
    if isinstance(data, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data)
