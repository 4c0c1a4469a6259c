"""The small in-memory profile the renderers read: processes, threads, call trees, lines.

Times are integer nanoseconds. A `Node` is one call path: the same function reached
through two different callers is two nodes; recursion nests as it happened.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pyliveupdate.identity import program_from_path


@dataclass(frozen=True)
class CodeInfo:
    code_id: int
    qualname: str
    filename: str
    firstlineno: int
    module: str

    @property
    def function(self) -> str:
        """Qualified name, `package.module.Class.method`, so two `__init__` never merge."""
        if not self.module:
            return self.qualname
        return "%s.%s" % (self.module, self.qualname)


def unknown_code(code_id: int) -> CodeInfo:
    return CodeInfo(code_id, "<code %d>" % code_id, "", 0, "")


@dataclass
class Node:
    function: str
    file: str
    line: int
    hits: int = 0          # calls (CALL events) on this path
    slices: int = 0        # calls + generator/coroutine resumes
    total: int = 0         # inclusive ns
    self: int = 0          # exclusive ns
    running: int = 0       # slices still open when the log ended (charged up to its end)
    running_ns: int = 0    # the part of `total` those open slices account for
    code_id: int = -1
    children: list["Node"] = field(default_factory=list)

    @property
    def per_hit(self) -> float | None:
        """Mean time of a completed call (slices still running at the end are left out)."""
        return (self.total - self.running_ns) / self.hits if self.hits else None

    def walk(self, depth: int = 0):
        """(depth, node) in depth-first order, children in their current order.
        Iterative: deep recursion in the profiled program makes deep trees."""
        stack = [(depth, self)]
        while stack:
            d, node = stack.pop()
            yield d, node
            stack.extend((d + 1, c) for c in reversed(node.children))

    @property
    def key(self) -> tuple:
        """What makes two nodes one row: the same code body (name, file, first line)."""
        return (self.function, self.file, self.line)

    def add_stats(self, other: "Node") -> None:
        self.hits += other.hits
        self.slices += other.slices
        self.running += other.running
        self.running_ns += other.running_ns
        self.total += other.total
        self.self += other.self

    def merge_from(self, other: "Node") -> None:
        """Add `other`'s callees into this node's (same key merges), at any depth.
        `other`'s own numbers are not added (see `add_stats`)."""
        stack = [(self, other)]
        while stack:
            d, s = stack.pop()
            by_key = {c.key: c for c in d.children}
            for child in s.children:
                mine = by_key.get(child.key)
                if mine is None:
                    mine = Node(child.function, child.file, child.line, code_id=child.code_id)
                    d.children.append(mine)
                    by_key[child.key] = mine
                mine.add_stats(child)
                stack.append((mine, child))

    def merge_equal_siblings(self) -> None:
        """One child per code body below this node, at any depth: a body compiled twice
        (a hot patch reverted and applied again) has two code ids but is one row."""
        for _depth, node in self.walk():       # walk reads children after they merge
            if len({c.key for c in node.children}) == len(node.children):
                continue
            by_key: dict[tuple, Node] = {}
            for child in node.children:
                first = by_key.setdefault(child.key, child)
                if first is not child:
                    first.add_stats(child)
                    first.merge_from(child)
            node.children = list(by_key.values())

    def paths(self, prefix: tuple = ()):
        """(stack of nodes below self, node) for every descendant, depth first."""
        stack = [(prefix + (c,), c) for c in reversed(self.children)]
        while stack:
            path, node = stack.pop()
            yield path, node
            stack.extend((path + (c,), c) for c in reversed(node.children))


@dataclass
class OpenFrame:
    """A slice still open when the log ended: reported, and charged up to the end."""
    stack: list[str]          # function names from the outermost open slice to this one
    started_ns: int           # ns since log start
    running_ns: int           # until the last event of the log


@dataclass
class ThreadProfile:
    pid: int
    thread: int               # thread number in the log
    os_tid: int | None
    name: str
    root: Node                # synthetic: children are the top-level call paths
    open_frames: list[OpenFrame] = field(default_factory=list)
    dropped: int = 0
    unmatched_closes: int = 0
    forced_closes: int = 0
    gap_closes: int = 0       # slices closed where records were dropped
    members: list[int] = field(default_factory=list)   # log thread numbers, when merged
    first_ns: int = 0
    last_ns: int = 0

    @property
    def key(self) -> str:
        return "%d-%s" % (self.pid, self.name)

    @property
    def total(self) -> int:
        return sum(c.total for c in self.root.children)


@dataclass
class LineStat:
    hits: int = 0
    total: int = 0


@dataclass
class ProcessProfile:
    pid: int
    path: str
    header: dict
    codes: dict[int, CodeInfo]
    threads: list[ThreadProfile]
    # code_id -> thread number -> line -> LineStat
    lines: dict[int, dict[int, dict[int, LineStat]]]
    events: int = 0
    duration_ns: int = 0
    complete: bool = True
    warnings: list[str] = field(default_factory=list)
    texts: list[tuple] = field(default_factory=list)
    thread_names: dict[int, str] = field(default_factory=dict)   # every thread the log named
    segments: list[str] = field(default_factory=list)  # the log's files, in order
    # () -> iterable of (events_bytes, metas) from the start of the log again, for
    # formats that need every event (perfetto); None when the events are gone
    source: Callable[[], Iterable[tuple[bytes, list]]] | None = None
    thread_filter: set[int] | None = None   # log thread numbers kept by --thread

    @property
    def program(self) -> str:
        """The program's name as its command line gave it: `webservice.py`, `gunicorn`."""
        return program_name(self.header.get("argv"))

    def code(self, code_id: int) -> CodeInfo:
        return self.codes.get(code_id) or unknown_code(code_id)

    @property
    def dropped(self) -> int:
        return sum(t.dropped for t in self.threads)


def program_name(argv) -> str:
    if not isinstance(argv, (list, tuple)) or not argv or not argv[0]:
        return "python"
    first = str(argv[0])
    if first in ("-c", "-m"):
        return "python " + first
    return program_from_path(first)     # python -m gunicorn: gunicorn, as procs() says


@dataclass
class Report:
    """Everything one run of pylu-processlogs renders."""
    processes: list[ProcessProfile]
    notes: list[str] = field(default_factory=list)   # filters applied, for the reader
    window: tuple[int | None, int | None] = (None, None)   # --start/--end, ns since log start

    @property
    def warnings(self) -> list[str]:
        return [w for p in self.processes for w in p.warnings]

    def programs(self) -> dict[str, list[int]]:
        """Program name -> pids of its processes in the report, in report order."""
        out: dict[str, list[int]] = {}
        for p in self.processes:
            out.setdefault(p.program, []).append(p.pid)
        return out

    def programs_line(self) -> str:
        """`webservice.py (3 processes: 11, 12, 13); worker.py (pid 20)`."""
        parts = []
        for name, pids in self.programs().items():
            if len(pids) == 1:
                parts.append("%s (pid %d)" % (name, pids[0]))
            else:
                parts.append("%s (%d processes: %s)" % (name, len(pids),
                                                       ", ".join(str(p) for p in pids)))
        return "; ".join(parts)
