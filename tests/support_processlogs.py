"""Helpers for the pylu-processlogs tests: synthetic event streams, a recorded workload with
cProfile's counts for reference, and a headless browser."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time

from pyliveupdate_controller.processlogs.aggregate import build_process, consume
from pyliveupdate_controller.processlogs.model import Report

from pyliveupdate._reader import (EV_CALL as CALL, EV_LINE as LINE, EV_LINE_MARK as LINE_MARK,  # noqa: F401 (the tests import them from here)
                                  EV_RESUME as RESUME, EV_RETURN as RETURN, EV_UNWIND as UNWIND,
                                  EV_YIELD as YIELD)
WIRE = struct.Struct("<qIIIHH")


def pack(kind: int, thread: int, ts: int, code: int, line: int = 0) -> bytes:
    return WIRE.pack(ts, code, line, thread, kind, 0)


class Trace:
    """A synthetic log: events plus the metadata records that describe them."""

    def __init__(self, pid: int = 4242, start_unix_ns: int = 1_700_000_000_000_000_000):
        self.pid = pid
        self.start_unix_ns = start_unix_ns
        self.events: list[bytes] = []
        self.metas: list[tuple] = []

    def code(self, code_id: int, qualname: str, module: str = "pkg.mod",
             filename: str = "/src/pkg/mod.py", firstlineno: int = 1) -> "Trace":
        self.metas.append(("code", code_id, qualname, filename, firstlineno, module))
        return self

    def thread(self, thread: int, name: str, os_tid: int = 0) -> "Trace":
        self.metas.append(("thread", thread, os_tid or 1000 + thread, name))
        return self

    def ev(self, kind: int, ts: int, code: int, line: int = 0, thread: int = 1) -> "Trace":
        self.events.append(pack(kind, thread, ts, code, line))
        return self

    def drop(self, thread: int, count: int) -> "Trace":
        self.metas.append(("drop", thread, count))
        return self

    def chunks(self, per_chunk: int = 1000):
        """(events_bytes, metas) like LogReader.chunks(); metas arrive with the first chunk."""
        metas = list(self.metas)
        for i in range(0, max(len(self.events), 1), per_chunk):
            yield b"".join(self.events[i:i + per_chunk]), metas
            metas = []

    def process(self, start_ns=None, end_ns=None, per_chunk: int = 1000):
        builder, meta = consume(self.chunks(per_chunk), start_ns=start_ns, end_ns=end_ns)
        proc = build_process(builder, meta, pid=self.pid, path="synthetic.pylog",
                             header={"pid": self.pid, "argv": ["synthetic"],
                                     "start_unix_ns": self.start_unix_ns})
        proc.source = lambda: self.chunks(per_chunk)
        return proc

    def report(self, **kw) -> Report:
        return Report([self.process(**kw)], window=(kw.get("start_ns"), kw.get("end_ns")))


def find(node, *path):
    """The node reached by following function names from `node` (a Node or ThreadProfile)."""
    node = getattr(node, "root", node)
    for name in path:
        matches = [c for c in node.children if c.function == name]
        assert len(matches) == 1, "%s not a unique child of %s: %s" % (
            name, node.function, [c.function for c in node.children])
        node = matches[0]
    return node


# ---- headless Chromium over the DevTools protocol (pipe transport, stdlib only) ----

def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Chromium with --remote-debugging-pipe: JSON messages, NUL-terminated, on fds 3/4."""

    def __init__(self, profile_dir: str, width: int = 1300, height: int = 900):
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4.
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--user-data-dir=" + profile_dir, "--window-size=%d,%d" % (width, height),
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=self._browser_env(), pass_fds=(3, 4), preexec_fn=self._dup_fds(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._next_id = 0
        self.session = None

    @staticmethod
    def _browser_env() -> dict:
        # The sanitizer run preloads libasan into every child; chromium must not inherit it.
        return {k: v for k, v in os.environ.items()
                if k != "LD_PRELOAD" and not k.startswith(("ASAN_", "UBSAN_"))}

    @staticmethod
    def _dup_fds(read_fd: int, write_fd: int):
        def setup():
            # dup to spare fds first so the two moves cannot clobber each other
            r, w = os.dup(read_fd), os.dup(write_fd)
            os.dup2(r, 3)
            os.dup2(w, 4)
        return setup

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            data = os.read(self._from_browser, 1 << 16)
            if not data:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += data
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: bool = True,
             timeout: float = 30.0) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError("%s failed: %s" % (method, reply["error"]))
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + 30
        while self.eval("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError("page did not load")
            time.sleep(0.05)

    def eval(self, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError("JS error: %s" % res["exceptionDetails"])
        return res["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        params = {"type": kind, "x": x, "y": y}
        if kind in ("mousePressed", "mouseReleased"):
            params.update(button="left", clickCount=1)
        self.send("Input.dispatchMouseEvent", params)

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)

    def screenshot_png(self, clip: dict | None = None) -> bytes:
        params = {"format": "png"}
        if clip:
            params["clip"] = dict(clip, scale=1)
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def png_distinct_colors(png: bytes, sample: int = 4000) -> int:
    """Number of distinct pixel colours in a PNG (stdlib decoder for 8-bit RGB/RGBA)."""
    import zlib
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length, ctype = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif ctype == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colors = set()
    rows = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    step = max(1, (width * height) // sample)
    for k in range(0, width * height, step):
        y, x = divmod(k, width)
        colors.add(rows[y][x * bpp:x * bpp + 3])
    return len(colors)


def web_trace():
    """Two threads: views.results calls manager.all twice per hit, 10 hits."""
    t = Trace(pid=4510).thread(1, "MainThread").thread(5, "Thread-5")
    t.code(1, "results", module="polls.views").code(2, "Manager.all", module="django.db.manager")
    t.code(3, "Query.__init__", module="django.db.query").code(4, "Model.__init__",
                                                                module="django.db.base")
    ts = 0
    for _ in range(10):
        t.ev(CALL, ts, 1, thread=5)
        for _ in range(2):
            t.ev(CALL, ts + 1_000_000, 2, thread=5).ev(CALL, ts + 2_000_000, 3, thread=5)
            t.ev(RETURN, ts + 3_000_000, 3, thread=5).ev(RETURN, ts + 14_000_000, 2, thread=5)
            ts += 14_000_000
        t.ev(RETURN, ts + 110_000_000, 1, thread=5)
        ts += 120_000_000
    t.ev(CALL, 0, 4, thread=1).ev(RETURN, 5_000_000, 4, thread=1)
    return t


# ---- a real workload, recorded and profiled by cProfile for reference ----

CLI = [sys.executable, "-m", "pyliveupdate_controller.processlogs"]

WORKLOAD = r'''
import json, sys, time

class Shape:
    def __init__(self, n):
        self.n = n

    def area(self):
        total = 0
        for i in range(self.n):
            total += i * i
        return total

class Square(Shape):
    def __init__(self, n):
        super().__init__(n)

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def fail(i):
    if i % 3 == 0:
        raise ValueError(i)
    return i

def work(rounds):
    total = 0
    for r in range(rounds):
        s = Square(300) if r % 2 else Shape(200)  # LINE-A
        total += s.area()
        total += fib(9)  # LINE-B
        try:
            total += fail(r)
        except ValueError:
            pass
        time.sleep(0.002)
    return total

FUNCS = [work, fib, fail, Shape.__init__, Square.__init__, Shape.area]
ROUNDS = 30

def line_of(marker):
    src = open(__file__).read().splitlines()
    return next(i for i, text in enumerate(src, 1) if text.rstrip().endswith(marker))

if sys.argv[1] == "cprofile":
    import cProfile, pstats
    prof = cProfile.Profile()
    prof.enable()
    work(ROUNDS)
    prof.disable()
    by_line = {f.__code__.co_firstlineno: f.__qualname__ for f in FUNCS}
    counts = {by_line[line]: nc
              for (fname, line, name), (cc, nc, tt, ct, callers) in pstats.Stats(prof).stats.items()
              if fname == __file__ and line in by_line}
    print(json.dumps(counts))
else:
    from pyliveupdate import engine, _engine
    path = _engine.recorder_start(sys.argv[2])
    lines = frozenset({line_of("# LINE-A"), line_of("# LINE-B")})
    for f in FUNCS:
        req = engine.Request(func_timing=True, timing_lines=lines if f is work else frozenset())
        engine.arm(1, f.__code__, req, module="__main__", qualname=f.__qualname__)
    t0_unix = time.time_ns()
    t0 = time.perf_counter_ns()
    work(ROUNDS)
    wall = time.perf_counter_ns() - t0
    t1_unix = time.time_ns()
    engine.disarm(1)
    _engine.recorder_stop()
    print(json.dumps({"path": path, "wall": wall, "lines": sorted(lines),
                      "work_unix": [t0_unix, t1_unix]}))
'''


def profile_workload(tmp) -> dict:
    """Run WORKLOAD recorded and under cProfile in subprocesses, then pylu-processlogs
    --format all on its log: {"info", "cprofile", "out", "cli", "logs", "script"}."""
    script = tmp / "workload.py"
    script.write_text(WORKLOAD)
    logs = tmp / "logs"
    logs.mkdir(mode=0o700)
    env = dict(os.environ, PYLU_LOG_DIR=str(logs))
    run = subprocess.run([sys.executable, str(script), "record", str(logs)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout.splitlines()[-1])
    ref = subprocess.run([sys.executable, str(script), "cprofile"], capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    out = tmp / "out"
    cli = subprocess.run(CLI + ["-i", info["path"], "-o", str(out), "--format", "all"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    return {"info": info, "cprofile": json.loads(ref.stdout), "out": out, "cli": cli,
            "logs": logs, "script": script}


# ---- Chrome trace-event format: what ui.perfetto.dev and chrome://tracing accept ----

PHASE_FIELDS = {"X": ("name", "pid", "tid", "ts", "dur"), "i": ("name", "pid", "ts", "s"),
                "M": ("name", "pid", "args")}
METADATA_NAMES = {"process_name", "process_labels", "thread_name", "process_sort_index",
                  "thread_sort_index"}


def check_trace_events(doc: dict) -> list[dict]:
    """Validate a parsed trace against the trace-event format (JSON object form) and check
    that complete slices nest per thread; returns the slices ("ph": "X")."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    slices = []
    for ev in doc["traceEvents"]:
        ph = ev.get("ph")
        assert ph in PHASE_FIELDS, ev
        for key in PHASE_FIELDS[ph]:
            assert key in ev, (key, ev)
        assert isinstance(ev["name"], str) and isinstance(ev["pid"], int)
        if "tid" in ev:
            assert isinstance(ev["tid"], int), ev
        if ph == "M":
            assert ev["name"] in METADATA_NAMES, ev
        if ph == "i":
            assert ev["s"] in ("g", "p", "t"), ev
        if ph in ("X", "i"):
            assert isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0, ev
        if "args" in ev:
            assert isinstance(ev["args"], dict), ev
        if ph == "X":
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0, ev
            slices.append(ev)
    check_nesting(slices)
    return slices


def _ns(us) -> int:
    """Exact ns of a µs value written with three decimals."""
    return round(us * 1000)


def check_nesting(slices: list[dict]) -> None:
    """Slices of one thread either nest or do not overlap (what a timeline can draw)."""
    by_thread: dict[tuple, list] = {}
    for ev in slices:
        by_thread.setdefault((ev["pid"], ev["tid"]), []).append(
            (_ns(ev["ts"]), -_ns(ev["dur"]), ev))
    for key, items in by_thread.items():
        items.sort(key=lambda item: (item[0], item[1]))
        open_ends: list[int] = []
        for start, neg_dur, ev in items:
            end = start - neg_dur
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1], (
                "slice %s [%d, %d] overlaps its parent ending at %d on %s"
                % (ev["name"], start, end, open_ends[-1], key))
            open_ends.append(end)


# ---- an independent pprof reader: Google's protobuf runtime on profile.proto ----

# The messages of perftools.profiles (github.com/google/pprof, proto/profile.proto) that we
# write, with their field numbers; compiled by grpcio-tools' protoc at test time.
PROFILE_PROTO = """
syntax = "proto3";
package perftools.profiles;
message Profile {
  repeated ValueType sample_type = 1;
  repeated Sample sample = 2;
  repeated Mapping mapping = 3;
  repeated Location location = 4;
  repeated Function function = 5;
  repeated string string_table = 6;
  int64 drop_frames = 7;
  int64 keep_frames = 8;
  int64 time_nanos = 9;
  int64 duration_nanos = 10;
  ValueType period_type = 11;
  int64 period = 12;
  repeated int64 comment = 13;
  int64 default_sample_type = 14;
}
message ValueType { int64 type = 1; int64 unit = 2; }
message Sample { repeated uint64 location_id = 1; repeated int64 value = 2; repeated Label label = 3; }
message Label { int64 key = 1; int64 str = 2; int64 num = 3; int64 num_unit = 4; }
message Mapping {
  uint64 id = 1; uint64 memory_start = 2; uint64 memory_limit = 3; uint64 file_offset = 4;
  int64 filename = 5; int64 build_id = 6; bool has_functions = 7; bool has_filenames = 8;
  bool has_line_numbers = 9; bool has_inline_frames = 10;
}
message Location {
  uint64 id = 1; uint64 mapping_id = 2; uint64 address = 3; repeated Line line = 4; bool is_folded = 5;
}
message Line { uint64 function_id = 1; int64 line = 2; }
message Function {
  uint64 id = 1; int64 name = 2; int64 system_name = 3; int64 filename = 4; int64 start_line = 5;
}
"""

_profile_module = None


def profile_proto_module(tmp_dir):
    """profile_pb2, generated once per test session into `tmp_dir`."""
    global _profile_module
    if _profile_module is None:
        import importlib.util

        from grpc_tools import protoc
        proto = os.path.join(tmp_dir, "profile.proto")
        with open(proto, "w") as f:
            f.write(PROFILE_PROTO)
        assert protoc.main(["protoc", "-I" + str(tmp_dir), "--python_out=" + str(tmp_dir),
                            proto]) == 0
        spec = importlib.util.spec_from_file_location(
            "profile_pb2", os.path.join(tmp_dir, "profile_pb2.py"))
        _profile_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_profile_module)
    return _profile_module


def decode_pprof(data: bytes, tmp_dir) -> dict:
    """A gzipped profile read by the protobuf runtime, resolved into plain Python:
    {"types": [(type, unit)], "samples": [(stack of names leaf first, values, labels)],
     "comments", "default", "functions": {name: (file, start_line)}, "time", "duration"}."""
    import gzip
    pb = profile_proto_module(tmp_dir).Profile()
    pb.ParseFromString(gzip.decompress(data))
    s = pb.string_table
    assert s[0] == ""
    funcs = {f.id: f for f in pb.function}
    locs = {loc.id: loc for loc in pb.location}
    mapping_ids = {m.id for m in pb.mapping}
    samples = []
    for sample in pb.sample:
        stack = []
        for loc_id in sample.location_id:
            loc = locs[loc_id]
            assert loc.mapping_id in mapping_ids
            stack.extend(s[funcs[line.function_id].name] for line in loc.line)
        labels = {s[lb.key]: (s[lb.str] if lb.str else lb.num) for lb in sample.label}
        samples.append((tuple(stack), list(sample.value), labels))
    return {"types": [(s[t.type], s[t.unit]) for t in pb.sample_type], "samples": samples,
            "comments": [s[c] for c in pb.comment], "default": s[pb.default_sample_type],
            "functions": {s[f.name]: (s[f.filename], f.start_line) for f in pb.function},
            "time": pb.time_nanos, "duration": pb.duration_nanos,
            "period_type": (s[pb.period_type.type], s[pb.period_type.unit])}
