"""`.svg`: a self-contained interactive flamegraph (our renderer; no perl, no external tool).

Widths are inclusive times: a frame's children sit on top of it and never exceed it, so
nothing is counted twice; the gap right of the children is the frame's self time.
"""
from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape, quoteattr

from .flamegraph_script import SCRIPT, STYLE
from .model import Node, Report

WIDTH = 1200
PAD = 10
FRAME_HEIGHT = 16
TOP = 70            # title, details and buttons
BOTTOM_MARGIN = 30
MIN_PX = 0.1        # frames narrower than this at full width are omitted
CHAR_W = 7.3


def _color(name: str) -> str:
    h = hashlib.blake2b(name.encode(), digest_size=3).digest()
    return "rgb(%d,%d,%d)" % (205 + h[0] % 50, 80 + h[1] % 150, h[2] % 60)


ELLIPSIS = "\u2026"


def fit_label(name: str, fit: int) -> str:
    """`name` in at most `fit` characters. A cut drops the module path from the left, at a
    dot, so the function's own name stays: `…views.results`; only a frame too narrow for
    the own name cuts that on the right. The script's `fitLabel` does the same on zoom."""
    if fit < 3:
        return ""
    if len(name) <= fit:
        return name
    dot = name.find(".")
    while dot >= 0:
        tail = ELLIPSIS + name[dot + 1:]
        if len(tail) <= fit:
            return tail
        dot = name.find(".", dot + 1)
    own = name[name.rfind(".") + 1:]
    return own[:fit - 1] + ELLIPSIS


def _fit(name: str, px: float) -> str:
    return fit_label(name, int((px - 6) // CHAR_W))


def _ms(ns: float) -> str:
    return "{:,.3f} ms".format(ns / 1e6)


class _Frames:
    def __init__(self, total: int):
        self.total = max(total, 1)
        self.items: list[tuple] = []   # (name, x, w, depth, title, color)
        self.max_depth = 0
        self.omitted = 0

    def add(self, name, x, w, depth, title, color):
        if w * (WIDTH - 2 * PAD) / self.total < MIN_PX:
            self.omitted += 1
            return False
        self.items.append((name, x, w, depth, title, color))
        self.max_depth = max(self.max_depth, depth)
        return True

    def subtree(self, top: Node, x: int, depth: int) -> None:
        """Lay out `top` and its callees (iteratively: trees can be very deep)."""
        stack = [(top, x, depth)]
        while stack:
            node, nx, nd = stack.pop()
            share = 100.0 * node.total / self.total
            title = "%s (%s, %.2f%%; self %s; %d hits%s)" % (
                node.function, _ms(node.total), share, _ms(node.self), node.hits,
                ", %s/hit" % _ms(node.per_hit) if node.per_hit is not None else "")
            if not self.add(node.function, nx, node.total, nd, title, _color(node.function)):
                continue
            cx = nx
            for child in node.children:
                stack.append((child, cx, nd + 1))
                cx += child.total


def render_svg(report: Report, title: str = "pyliveupdate flame graph") -> str:
    threads = [t for p in report.processes for t in p.threads if t.total > 0]
    total = sum(t.total for t in threads)
    frames = _Frames(total)
    frames.add("all", 0, total, 0, "all (%s, 100%%)" % _ms(total), "rgb(200,200,200)")
    x = 0
    for t in threads:
        share = 100.0 * t.total / frames.total
        if frames.add(t.key, x, t.total, 1, "%s (%s, %.2f%%)" % (t.key, _ms(t.total), share),
                      "rgb(180,180,220)"):
            cx = x
            for child in t.root.children:
                frames.subtree(child, cx, 2)
                cx += child.total
        x += t.total
    height = TOP + (frames.max_depth + 1) * FRAME_HEIGHT + BOTTOM_MARGIN
    bottom = height - BOTTOM_MARGIN
    scale = (WIDTH - 2 * PAD) / frames.total
    warn = report.warnings
    subtitle = ("times are inclusive wall time of recorded calls; click a frame to zoom, "
                "Ctrl-F or Search to highlight")
    if warn:
        subtitle = "WARNING: %d warning(s), see the summary; " % len(warn) + subtitle
    out = [
        '<?xml version="1.0" standalone="no"?>',
        '<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" data-width="%d" data-pad="%d" data-frame-height="%d" '
        'data-total="%d" data-bottom="%d">' % (WIDTH, height, WIDTH, height, WIDTH, PAD,
                                               FRAME_HEIGHT, frames.total, bottom),
        "<style>%s</style>" % STYLE,
        "<script><![CDATA[%s]]></script>" % SCRIPT,
        '<rect x="0" y="0" width="100%%" height="%d" fill="#f8f8f0"/>' % height,
        '<text id="title" x="%d" y="24">%s</text>' % (WIDTH // 2, escape(title)),
        '<text id="subtitle" x="%d" y="42" style="font-size:11px">%s</text>' % (PAD, escape(subtitle)),
        '<text id="unzoom" class="button hide" x="%d" y="60">Reset Zoom</text>' % PAD,
        '<text id="search" class="button" x="%d" y="60">Search</text>' % (WIDTH - PAD - 110),
        '<text id="matched" x="%d" y="%d"> </text>' % (WIDTH - PAD - 160, height - 10),
        '<text id="details" x="%d" y="%d"> </text>' % (PAD, height - 10),
        '<g id="frames">',
    ]
    for name, x0, w, depth, tip, color in frames.items:
        px = PAD + x0 * scale
        pw = w * scale
        y = bottom - (depth + 1) * FRAME_HEIGHT
        out.append(
            '<g class="f" data-n=%s data-x="%d" data-w="%d" data-d="%d"><title>%s</title>'
            '<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" rx="2" ry="2"/>'
            '<text x="%.2f" y="%d">%s</text></g>'
            % (quoteattr(name), x0, w, depth, escape(tip), px, y, pw, FRAME_HEIGHT - 1, color,
               px + 3, y + FRAME_HEIGHT - 4, escape(_fit(name, pw))))
    out.append("</g>")
    if total == 0:
        out.append('<text x="%d" y="%d">no recorded calls in these logs (see the summary)</text>'
                   % (PAD, bottom - 4))
    if frames.omitted:
        out.append("<!-- %d frames narrower than %.1f px omitted -->" % (frames.omitted, MIN_PX))
    out.append("</svg>")
    return "\n".join(out) + "\n"
