"""Processing speed of pylu-processlogs: events per second into the summary, and peak
memory against the number of events (it should stay flat: aggregation is streaming);
events per second into the Perfetto timeline (Python: every call becomes a slice) and the
time to encode the pprof profile.

    python bench/bench_processlogs.py [--events N] [--rounds R] [--quick] [--json]

Events are a synthetic but realistic stream (4 threads, nested calls, recursion, generator
resumes, line events) packed in the LogReader.chunks() layout and fed chunk by chunk, as the
reader does. With a recorder that can write logs (`_engine.recorder_start`), a real log is
also written and read back end to end (decompression included).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from pyliveupdate import _engine  # noqa: E402
from pyliveupdate_controller.processlogs.aggregate import build_process, consume  # noqa: E402
from pyliveupdate_controller.processlogs.model import Report  # noqa: E402
from pyliveupdate_controller.processlogs.render_perfetto import write_perfetto  # noqa: E402
from pyliveupdate_controller.processlogs.render_pprof import render_pprof  # noqa: E402
from pyliveupdate_controller.processlogs.render_summary import render_summary  # noqa: E402

WIRE = struct.Struct("<qIIIHH")
from pyliveupdate._reader import (EV_CALL as CALL, EV_LINE as LINE, EV_LINE_MARK as LINE_MARK,  # noqa: E402
                                  EV_RESUME as RESUME, EV_RETURN as RETURN, EV_UNWIND as UNWIND,
                                  EV_YIELD as YIELD)
CHUNK_EVENTS = 50_000      # about what one 100 ms zstd frame holds on a busy process


def request_events(thread: int, ts: int, req: int) -> tuple[list[bytes], int]:
    """One 'request' on one thread: ~60 events."""
    out = []

    def ev(kind, code, line=0):
        nonlocal ts
        ts += 250 + (req * 7919 + len(out) * 104729) % 500
        out.append(WIRE.pack(ts, code, line, thread, kind, 0))

    ev(CALL, 1)                                  # handler
    for line in (10, 11, 12):                    # line-profiled handler
        ev(LINE, 1, line)
    for i in range(3):
        ev(CALL, 2 + i % 2)                      # two helpers
        ev(CALL, 4)
        ev(RETURN, 4)
        ev(RETURN, 2 + i % 2)
    ev(LINE_MARK, 1, 13)
    for _depth in range(5):                       # recursion
        ev(CALL, 5)
    for _depth in range(5):
        ev(RETURN, 5)
    ev(CALL, 6)                                  # generator, resumed 4 times
    ev(YIELD, 6)
    for _ in range(4):
        ev(RESUME, 6)
        ev(CALL, 7 + req % 8)                    # some variety in call paths
        ev(RETURN, 7 + req % 8)
        ev(YIELD, 6)
    ev(RESUME, 6)
    ev(RETURN, 6)
    ev(LINE, 1, 14)
    ev(CALL, 20)
    ev(UNWIND, 20)
    ev(RETURN, 1)
    return out, ts


def make_chunk() -> bytes:
    """About CHUNK_EVENTS events, 4 threads interleaved in runs (as per-thread rings drain)."""
    events, ts, req = [], 0, 0
    while len(events) < CHUNK_EVENTS:
        for thread in range(1, 5):
            evs, ts = request_events(thread, ts, req)
            events.extend(evs)
            req += 1
    return b"".join(events)      # whole requests: every slice closes within the chunk


def metas():
    out = [("thread", t, 1000 + t, "worker-%d" % t) for t in range(1, 5)]
    out += [("code", c, "func%d" % c, "/app/mod%d.py" % (c % 3), c * 10, "app.mod%d" % (c % 3))
            for c in range(1, 21)]
    return out


def repeated(chunk: bytes, n_events: int):
    """(a function yielding about n_events as chunks, the exact number of events)."""
    per = len(chunk) // WIRE.size
    reps = max(1, n_events // per)

    def chunks():
        yield chunk, metas()
        for _ in range(reps - 1):
            yield chunk, []

    return chunks, reps * per


def run_summary(chunk: bytes, n_events: int) -> tuple[float, int]:
    """Seconds to aggregate n_events and render the summary; returns (seconds, events)."""
    chunks, n = repeated(chunk, n_events)
    t0 = time.perf_counter()
    builder, meta = consume(chunks())
    proc = build_process(builder, meta, pid=1, path="bench", header={"pid": 1})
    text = render_summary(Report([proc]))
    elapsed = time.perf_counter() - t0
    assert proc.events == n and "app.mod1.func1" in text
    return elapsed, n


class _CountingSink:
    """A text stream that only counts what is written."""

    def __init__(self):
        self.chars = 0

    def write(self, text: str) -> None:
        self.chars += len(text)


def run_timeline(chunk: bytes, n_events: int) -> dict:
    """Seconds to turn n_events into the Perfetto timeline (no cap), and to encode pprof."""
    chunks, n = repeated(chunk, n_events)
    builder, meta = consume(chunks())
    proc = build_process(builder, meta, pid=1, path="bench",
                         header={"pid": 1, "start_unix_ns": 0})
    proc.source = chunks
    report = Report([proc])
    sink = _CountingSink()
    t0 = time.perf_counter()
    write_perfetto(report, sink, max_slices=1 << 40)
    timeline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pprof = render_pprof(report)[""]
    pprof_s = time.perf_counter() - t0
    return {"events": n, "timeline_seconds": timeline_s,
            "timeline_events_per_s": n / timeline_s, "timeline_chars": sink.chars,
            "pprof_seconds": pprof_s, "pprof_bytes": len(pprof)}


def peak_rss_child(n_events: int) -> int:
    """Peak RSS (KiB) of a fresh process that summarises n_events."""
    out = subprocess.run([sys.executable, __file__, "--child", str(n_events)],
                         capture_output=True, text=True, check=True, timeout=600)
    return int(out.stdout.split()[-1])


def real_log_rate(n_events: int) -> dict | None:
    """Write a real log with the recorder and read it back end to end, if both exist."""
    if not all(hasattr(_engine, n) for n in ("recorder_start", "recorder_stop", "LogReader",
                                              "recorder_bench")):
        return None
    from pyliveupdate_controller.processlogs.reading import read_log
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import sys; from pyliveupdate import _engine as e; "
                "p = e.recorder_start(sys.argv[1], ring_slots=1 << 20); "
                "e.recorder_bench(int(sys.argv[2])); e.recorder_stop(); print(p)")
        out = subprocess.run([sys.executable, "-c", code, tmp, str(n_events)],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        path = out.stdout.split()[-1]
        t0 = time.perf_counter()
        proc = read_log(path)
        render_summary(Report([proc]))
        elapsed = time.perf_counter() - t0
        return {"events": proc.events, "dropped_by_recorder": proc.dropped, "seconds": elapsed,
                "events_per_s": proc.events / elapsed if elapsed else 0.0,
                "log_bytes": os.path.getsize(path)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 M events, 3 rounds")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.events, args.rounds = min(args.events, 2_000_000), min(args.rounds, 3)
    chunk = make_chunk()
    if args.child:
        run_summary(chunk, args.child)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return 0

    run_summary(chunk, CHUNK_EVENTS * 4)                  # warm-up
    rates = []
    for _ in range(args.rounds):
        seconds, n = run_summary(chunk, args.events)
        rates.append(n / seconds)
    sizes = [args.events // 10, args.events, args.events * 4]
    memory = {n: peak_rss_child(n) for n in sizes}
    real = real_log_rate(min(args.events, 5_000_000))
    timelines = [run_timeline(chunk, min(args.events, 1_000_000)) for _ in range(args.rounds)]
    result = {
        "events_per_round": args.events,
        "summary_events_per_s_median": statistics.median(rates),
        "summary_events_per_s_min": min(rates),
        "summary_events_per_s_max": max(rates),
        "peak_rss_kib_by_events": memory,
        "peak_rss_growth_ratio": memory[sizes[-1]] / memory[sizes[0]],
        "real_log": real,
        "target_events_per_s": 5_000_000,
        "timeline_events_per_s_median": statistics.median(
            t["timeline_events_per_s"] for t in timelines),
        "timeline_chars_per_event": timelines[0]["timeline_chars"] / timelines[0]["events"],
        "pprof_seconds_median": statistics.median(t["pprof_seconds"] for t in timelines),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("pylu-processlogs: events into the summary (%d rounds of %d events)"
          % (args.rounds, args.events))
    print("  median %8.2f M events/s   (min %.2f, max %.2f; target >= 5)"
          % (result["summary_events_per_s_median"] / 1e6, min(rates) / 1e6, max(rates) / 1e6))
    print("peak RSS against number of events (fresh process each)")
    print("  %12s  %10s" % ("events", "peak KiB"))
    for n, kib in memory.items():
        print("  %12d  %10d" % (n, kib))
    print("  growth x%.3f for x%d events" % (result["peak_rss_growth_ratio"], sizes[-1] // sizes[0]))
    print("perfetto timeline: median %.2f M events/s (%.0f chars of JSON per event); pprof "
          "encode %.1f ms" % (result["timeline_events_per_s_median"] / 1e6,
                              result["timeline_chars_per_event"],
                              result["pprof_seconds_median"] * 1e3))
    if real is None:
        print("real log round trip: skipped (this build has no recorder/LogReader)")
    else:
        print("real log round trip (read + decompress + aggregate + summary): %s" % real)
    return 0


if __name__ == "__main__":
    sys.exit(main())
