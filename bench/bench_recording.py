"""Recording path benchmark: producer cost, the flusher's cost per event on real traces,
sustained rate, ring memory, an idle recorder, bytes per event, reader speed.

    python bench/bench_recording.py [--json] [--quick] [--no-callgrind]

Every figure is measured in this run on this machine; costs are differences against a
baseline measured in the same run, in interleaved rounds (median and spread reported).
Where valgrind is installed, instruction counts (callgrind) stand beside the main times:
they do not move with the machine's load.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

from pyliveupdate import _engine, _reader

TARGETS = {"sustained_events_per_s": 10e6, "bytes_per_event": 2.5,
           "reader_events_per_s": 20e6, "added_ns_per_event": 12.0,
           "flusher_ns_per_event": 10.0, "ring_memory_bytes": 32e6, "idle_wakeups_per_s": 0}
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def added_cost(directory, rounds):
    """ns per event of pylu_record over a no-op call through the same pointer (C loop).

    Each round produces fewer records than the ring holds and the ring is drained between
    rounds, so every record takes the enqueue path (no drops)."""
    _engine.recorder_start(directory, ring_slots=65536, flush_ms=5)
    try:
        _engine.recorder_bench(50000)            # warm: ring and TLS slot exist
        _engine.recorder_flush()
        base, rec, diff = [], [], []
        for _ in range(rounds):
            b = _engine.recorder_bench(60000, baseline=True)
            r = _engine.recorder_bench(60000)
            _engine.recorder_flush()
            base.append(b)
            rec.append(r)
            diff.append(r - b)
        stats = _engine.recorder_stats()
    finally:
        _engine.recorder_stop()
    return {"baseline_ns": _spread(base), "record_ns": _spread(rec),
            "added_ns_per_event": statistics.median(diff), "added_spread": _spread(diff),
            "dropped": stats["dropped"]}


def callback_cost(directory, rounds, pin=True):
    """ns per event that our sys.monitoring callback (code-state lookup, dispatch, record)
    adds over a no-op C callback armed on the same events: the issue's definition. Paired
    rounds of fib with each callback mode, order alternating; a third run with the
    recorder stopped separates the record's own share (pylu_record in place).

    pin: the producing thread stays on the CPU it runs on (the flusher is left free).
    Unpinned, on an otherwise idle 2-CPU machine, the scheduler moves the producer when
    the flusher wakes on its CPU, and the refilled caches cost it 20-25 ns per event in
    about half of the runs (measured 2026-11-26: pinned to either CPU, 8-10 ns in 15 of
    15 runs; unpinned, 7-12 or 25-31 ns). Both are reported."""
    from pyliveupdate import engine
    import bench_engine as work
    calls = work.CALLS[work.fib_run]

    def run(mode):
        _engine.set_callback_mode(mode)
        t0 = time.thread_time_ns()
        work.fib_run()
        return (time.thread_time_ns() - t0) / (2 * calls)   # PY_START + PY_RETURN

    affinity = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {min(affinity)})   # this thread only (Linux)
    _engine.recorder_start(directory, ring_slots=65536)
    engine.arm(1, work.fib.__code__, engine.Request(func_timing=True), module="bench",
               source="monitoring")
    over_noop, record_share = [], []
    try:
        for _ in range(3):
            run("normal"), run("noop")
        for i in range(rounds):
            if i % 2:
                noop = run("noop")
                full = run("normal")
            else:
                full = run("normal")
                noop = run("noop")
            _engine.recorder_stop()
            unrecorded = run("normal")
            _engine.recorder_start(directory, ring_slots=65536)
            over_noop.append(full - noop)
            record_share.append(full - unrecorded)
        stats = _engine.recorder_stats()
    finally:
        _engine.set_callback_mode("normal")
        engine.shutdown()
        _engine.recorder_stop()
        os.sched_setaffinity(0, affinity)
    return {"added_ns_per_event": statistics.median(over_noop), "spread": _spread(over_noop),
            "record_share_ns": statistics.median(record_share), "rounds": rounds,
            "dropped": stats["dropped"], "producer_pinned": pin}


def sustained(directory, rate, seconds):
    """One producer at `rate` events/s for `seconds` (paced C loop; the ring grows by need
    from 1024 slots up to the default largest)."""
    n = int(rate * seconds)
    path = _engine.recorder_start(directory)
    try:
        t0 = time.perf_counter()
        _engine.recorder_bench(n, rate=rate)
        elapsed = time.perf_counter() - t0
    finally:
        _engine.recorder_stop()
    stats = _engine.recorder_stats()
    return path, {"target_rate": rate, "achieved_rate": n / elapsed, "events": stats["events"],
                  "dropped": stats["dropped"], "ring_bytes_peak": stats["ring_bytes_peak"],
                  "bytes_per_event": os.path.getsize(path) / max(1, stats["events"])}


def flusher_capacity(directory, batches):
    """Events the flusher drains, packs, aggregates and compresses per second of its own
    CPU time: what it can sustain on a core of its own, whatever else loads the machine."""
    _engine.recorder_start(directory, ring_slots=1 << 20, flush_ms=10000, frame_ms=60000)
    try:
        _engine.recorder_bench(10)
        _engine.recorder_flush()
        cpu0, n = _engine.recorder_stats()["flusher_cpu_ns"], 0
        for _ in range(batches):
            _engine.recorder_bench(1_000_000)   # fits the ring: the flusher sleeps meanwhile
            n += 1_000_000
            _engine.recorder_flush()
        st = _engine.recorder_stats()
    finally:
        _engine.recorder_stop()
    cpu_ns = st["flusher_cpu_ns"] - cpu0
    return {"events": n, "dropped": st["dropped"], "flusher_cpu_ns_per_event": cpu_ns / n,
            "flusher_events_per_cpu_s": n / (cpu_ns / 1e9)}


def real_trace(directory):
    """Bytes per event for a real program's event stream: sys.monitoring PY_START/RETURN
    and LINE events of a small workload, forwarded to the recorder with real code ids."""
    mon = sys.monitoring
    tool = 4 if mon.get_tool(4) is None else 3
    ids = {}
    emit = _engine.recorder_emit

    def code_id(code):
        i = ids.get(code)
        if i is None:
            i = ids[code] = len(ids) + 1
            _engine.recorder_describe_code(i, code.co_qualname, code.co_filename,
                                           code.co_firstlineno, "bench")
        return i

    def on_start(code, offset):
        emit(1, code_id(code), 0)

    def on_return(code, offset, value):
        emit(3, code_id(code), 0)

    def on_line(code, line):
        emit(6, code_id(code), line)

    def workload():
        out = 0
        for i in range(3000):
            data = {"k%d" % j: [j, str(j), j * 0.5] for j in range(i % 20)}
            out += len(json.dumps(data))
            out += fib(i % 12)
        return out

    path = _engine.recorder_start(directory)
    mon.use_tool_id(tool, "pylu-bench")
    try:
        E = mon.events
        mon.register_callback(tool, E.PY_START, on_start)
        mon.register_callback(tool, E.PY_RETURN, on_return)
        mon.register_callback(tool, E.LINE, on_line)
        for c in (workload.__code__, fib.__code__):
            mon.set_local_events(tool, c, E.PY_START | E.PY_RETURN | E.LINE)
        workload()
    finally:
        for c in (workload.__code__, fib.__code__):
            mon.set_local_events(tool, c, 0)
        for ev in (mon.events.PY_START, mon.events.PY_RETURN, mon.events.LINE):
            mon.register_callback(tool, ev, None)
        mon.free_tool_id(tool)
        _engine.recorder_stop()
    stats = _engine.recorder_stats()
    size = os.path.getsize(path)
    os.unlink(path)
    return {"events": stats["events"], "dropped": stats["dropped"],
            "bytes_per_event": size / max(1, stats["events"])}


# --- the flusher on real traces ---------------------------------------------------------

def _traces():
    """(name, run, code, request) of the real traces: bench_engine's fib and loop under
    function timing, the loop under line timing."""
    from pyliveupdate import engine
    import bench_engine as work
    lines = frozenset(line for _, _, line in work.hot.__code__.co_lines() if line)
    return [("fib", work.fib_run, work.fib.__code__, engine.Request(func_timing=True)),
            ("loop", work.loop, work.hot.__code__, engine.Request(func_timing=True)),
            ("loop, line timing", work.loop, work.hot.__code__,
             engine.Request(func_timing=True, timing_lines=lines))]


def _record_trace(directory, run, code, request, units, live=False, warm_units=0, **options):
    """Run `units` of a workload under the engine with the recorder on; its stats and log.
    live: the live aggregates asked for first (as after FP.top()), so they are fed too.
    warm_units: run that many first; the stats then gain `steady_flusher_ns_per_event`, the
    flusher's CPU per event of the `units` after them (the log's start left out)."""
    from pyliveupdate import engine
    path = _engine.recorder_start(directory, **options)
    if live:
        _engine.recorder_live()
    engine.arm(1, code, request, module="bench", source="monitoring")
    try:
        if warm_units:
            for _ in range(warm_units):
                run()
            _engine.recorder_flush()
            warm = _engine.recorder_stats()
        for _ in range(units):
            run()
        _engine.recorder_flush()
        stats = _engine.recorder_stats()
    finally:
        engine.disarm(1)
        _engine.recorder_stop()
    if warm_units:
        stats["steady_flusher_ns_per_event"] = (
            (stats["flusher_cpu_ns"] - warm["flusher_cpu_ns"]) / (stats["events"] - warm["events"]))
    return stats, path


LIVE = ", live aggregates on"


def _with_live(traces):
    """Each trace as recorded (nobody asked for the live aggregates: the flusher does not
    feed them), and the fib and loop traces again once they are asked for (FP.top())."""
    for name, run, code, request in traces:
        yield (name, run, code, request), False
    for name, run, code, request in traces[:2]:
        yield (name + LIVE, run, code, request), True


def flusher_cost(directory, rounds):
    """The flusher's CPU per recorded event of a real profile (issue 18: <= 10 ns on the fib
    and loop traces): recorder_stats()' flusher_cpu_ns over its events, the events coming
    from the engine's real callbacks on bench_engine's workloads.

    Headline: the steady state, a service's case: the CPU of the second half of each round
    over its events (the first half warms the log: rings grown, zstd's tables, the caches).
    Beside it the whole round's figure, the log's start included (on 2026-12-02 fib's first
    0.2 s cost 14-20 ns per event against 9-10 after: 0.7 ms once per log)."""
    out = {}
    for (name, run, code, request), live in _with_live(_traces()):
        steady, whole, per_byte, dropped = [], [], [], 0
        units = 10 if name.startswith("fib") else 2
        for _ in range(rounds):
            stats, path = _record_trace(directory, run, code, request, units, live=live,
                                        warm_units=units)
            steady.append(stats["steady_flusher_ns_per_event"])
            whole.append(stats["flusher_cpu_ns"] / stats["events"])
            per_byte.append(os.path.getsize(path) / stats["events"])
            dropped += stats["dropped"]
            os.unlink(path)
        out[name] = {"flusher_ns_per_event": statistics.median(steady),
                     "spread": _spread(steady),
                     "with_start_ns_per_event": statistics.median(whole),
                     "with_start_spread": _spread(whole),
                     "bytes_per_event": statistics.median(per_byte),
                     "events_per_round": stats["events"], "dropped": dropped}
    return out


# 200 live threads each making 20,000 profiled calls (issue 18). argv: mode ("plain" or
# "profile"), log directory. Prints the resident memory it added once the threads wait (a
# thread pool between requests; measured after the flusher dozed: every ring was idle long
# enough to be trimmed) and at its peak, and the recorder's counters.
RING_MEMORY_SCRIPT = textwrap.dedent('''
    import json, sys, threading, time
    from pyliveupdate import _engine, engine
    profile = sys.argv[1] == "profile"

    def rss(key="VmRSS"):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    def work(x):
        return x + 1

    N, CALLS = 200, 20_000
    start, done = threading.Barrier(N + 1), threading.Barrier(N + 1)
    release = threading.Event()

    def body():
        start.wait()
        f = work
        for i in range(CALLS):
            f(i)
        done.wait()
        release.wait()

    threads = [threading.Thread(target=body) for _ in range(N)]
    for t in threads:
        t.start()
    if profile:
        _engine.recorder_start(sys.argv[2])
        engine.arm(1, work.__code__, engine.Request(func_timing=True), module="m",
                   source="monitoring")
    before = rss()
    start.wait()
    done.wait()
    stats = {}
    if profile:
        _engine.recorder_flush()
        dozes, deadline = _engine.recorder_stats()["dozes"], time.monotonic() + 30
        while _engine.recorder_stats()["dozes"] == dozes and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = _engine.recorder_stats()
    settled, peak = rss() - before, rss("VmHWM") - before
    release.set()
    for t in threads:
        t.join()
    if profile:
        engine.disarm(1)
        _engine.recorder_stop()
    print(json.dumps({"settled": settled, "peak": peak, "stats": stats}))
''')


def ring_memory(directory):
    """Issue 18: 200 live threads each making 20,000 profiled calls; the process's resident
    memory once they wait and at its peak, against the same run with nothing recorded
    (target <= 32 MB)."""
    runs = {}
    for mode in ("plain", "profile"):
        out = subprocess.run([sys.executable, "-c", RING_MEMORY_SCRIPT, mode, directory],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:]}
        runs[mode] = json.loads(out.stdout)
    stats = runs["profile"]["stats"]
    return {"threads": 200, "calls_per_thread": 20000,
            "settled_bytes": runs["profile"]["settled"] - runs["plain"]["settled"],
            "peak_bytes": runs["profile"]["peak"] - runs["plain"]["peak"],
            "ring_bytes_peak": stats.get("ring_bytes_peak"), "events": stats.get("events"),
            "dropped": stats.get("dropped")}


def idle(directory):
    """An idle recorder: after the last record, how many times the flusher wakes in a
    second and how much the log grows (issue 18: none)."""
    path = _engine.recorder_start(directory, flush_ms=5)
    try:
        for i in range(1000):
            _engine.recorder_emit(6, 3, i + 1)
        deadline = time.monotonic() + 10
        while _engine.recorder_stats()["dozes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        before, size = _engine.recorder_stats(), os.path.getsize(path)
        time.sleep(1.0)
        after = _engine.recorder_stats()
        grew = os.path.getsize(path) - size
    finally:
        _engine.recorder_stop()
    os.unlink(path)
    return {"wakeups_per_s": after["cycles"] - before["cycles"], "bytes_written": grew,
            "dozing": before["dozes"] > 0}


# --- instruction counts (callgrind) ---------------------------------------------------------

def _callgrind_threads(cmd, out_prefix, timeout=600):
    """Run cmd under callgrind, one profile per thread: {thread number: instructions}."""
    subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                    "--callgrind-out-file=%s" % out_prefix] + cmd, capture_output=True,
                   text=True, timeout=timeout, check=True)
    counts = {}
    for name in os.listdir(os.path.dirname(out_prefix)):
        path = os.path.join(os.path.dirname(out_prefix), name)
        if not name.startswith(os.path.basename(out_prefix)):
            continue
        text = open(path).read()
        thread = re.search(r"^thread: (\d+)", text, re.M)
        total = re.search(r"^totals: (\d+)", text, re.M)
        if thread and total:
            counts[int(thread.group(1))] = int(total.group(1))
        os.unlink(path)
    return counts


def _capture(directory, run, code, request, units):
    """A real trace as raw ring records (16 bytes each) for tests/c/flusher_bench."""
    stats, path = _record_trace(directory, run, code, request, units)
    r = _reader.LogReader(path)
    tps = stats["clock_ticks_per_sec"]   # the clock's ticks, as the ring holds them
    raw = bytearray()
    for events, _ in r.chunks():
        for ts, c, line, _thread, kind, _ in struct.iter_unpack("<qIIIHH", events):
            raw += struct.pack("<QII", 1_000_000 + int(ts * tps / 1e9), c, (line << 4) | kind)
    os.unlink(path)
    out = os.path.join(directory, "trace.rec")
    with open(out, "wb") as f:
        f.write(raw)
    return out, len(raw) // 16


def instructions(directory):
    """Instruction counts that do not move with the load: the flusher thread's per event on
    the fib and loop traces (tests/c/flusher_bench replaying them through the real flusher),
    and the instructions per event our callback and record add over a no-op C callback on
    fib (the producer, difference of two fib lengths to cancel the interpreter's start)."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind not installed"}
    build = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "tests", "c"), "bench"],
                           capture_output=True, text=True)
    if build.returncode != 0:
        return {"skipped": "cannot build tests/c/flusher_bench: %s" % build.stderr.strip()[-200:]}
    bench = os.path.join(ROOT, "build", "c-tests", "flusher_bench")
    out = {"flusher_instructions_per_event": {}}
    for name, run, code, request in _traces()[:2]:
        trace, n = _capture(directory, run, code, request, 2 if name == "fib" else 1)
        for label, extra in ((name, []), (name + LIVE, ["live"])):
            counts = _callgrind_threads([bench, trace, "1e6", "1", "1"] + extra,
                                        os.path.join(directory, "cg.out"))
            # threads: 1 main, 2 the flusher (started first), 3 the replaying producer
            out["flusher_instructions_per_event"][label] = counts.get(2, 0) / n
        os.unlink(trace)
    # One process; callgrind starts a new profile part at each recorder_flush(), so the
    # interpreter's start and the clock's calibration stay out of the parts compared.
    script = textwrap.dedent('''
        import sys
        sys.path.insert(0, %r)
        from pyliveupdate import _engine, engine
        import bench_engine as work
        _engine.recorder_start(sys.argv[1])
        engine.arm(1, work.fib.__code__, engine.Request(func_timing=True), module="bench",
                   source="monitoring")
        work.fib(12)
        _engine.recorder_flush()
        work.fib(20)                      # part 2: our callback and record
        _engine.recorder_flush()
        _engine.set_callback_mode("noop")
        work.fib(20)                      # part 3: a no-op C callback on the same events
        _engine.recorder_flush()
        _engine.set_callback_mode("normal")
        engine.disarm(1)
        _engine.recorder_stop()
    ''' % HERE)
    prefix = os.path.join(directory, "cgpy.out")
    subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes",
                    "--dump-before=recorder_flush", "--callgrind-out-file=%s" % prefix,
                    sys.executable, "-c", script, directory], capture_output=True, text=True,
                   timeout=600, check=True)
    parts = {}
    for name in os.listdir(directory):
        m = re.match(r"cgpy\.out\.(\d+)-01$", name)   # main thread, part n
        if m:
            total = re.search(r"^totals: (\d+)", open(os.path.join(directory, name)).read(), re.M)
            parts[int(m.group(1))] = int(total.group(1)) if total else 0
        if name.startswith("cgpy.out"):
            os.unlink(os.path.join(directory, name))
    import bench_engine as work
    events = 2 * work._fib_calls(20)
    added = parts.get(2, 0) - parts.get(3, 0)
    out["callback_added_instructions_per_event"] = added / events
    return out


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def reader_speed(path, rounds):
    """Events per second decoded by LogReader.chunks() (and by the tuple iterator)."""
    chunk_rates, cpu_rates, total = [], [], 0
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.thread_time()
        total = 0
        for events, _metas in _reader.LogReader(path).chunks():
            total += len(events) // _reader.LOG_EVENT_SIZE
        chunk_rates.append(total / (time.perf_counter() - t0))
        cpu_rates.append(total / (time.thread_time() - c0))
    t0 = time.perf_counter()
    n = 0
    for _item in _reader.LogReader(path):
        n += 1
        if n >= 2_000_000:
            break
    tuple_rate = n / (time.perf_counter() - t0)
    return {"events": total, "reader_events_per_s": statistics.median(chunk_rates),
            "chunks_spread": _spread(chunk_rates), "tuple_events_per_s": tuple_rate,
            "reader_events_per_cpu_s": statistics.median(cpu_rates)}


def run(quick=False, callgrind=True):
    with tempfile.TemporaryDirectory(prefix="pylu-bench-") as d:
        os.chmod(d, 0o700)
        result = {"clock": _engine.RECORDER_CLOCK}
        result["flusher_traces"] = flusher_cost(d, 2 if quick else 5)
        result["ring_memory"] = ring_memory(d)
        result["idle"] = idle(d)
        if callgrind:
            try:
                result["instructions"] = instructions(d)
            except (subprocess.SubprocessError, OSError) as e:
                result["instructions"] = {"skipped": "callgrind failed: %s" % e}
        result["cost"] = added_cost(d, 40 if quick else 200)
        result["callback"] = callback_cost(d, 9 if quick else 31)
        result["callback_unpinned"] = callback_cost(d, 9 if quick else 31, pin=False)
        rates = [5e6, 10e6] if quick else [2.5e6, 5e6, 10e6, 15e6, 20e6]
        runs = []
        keep = None
        for rate in rates:
            path, r = sustained(d, rate, 0.5 if quick else 1.0)
            runs.append(r)
            if keep is None and rate == 10e6:
                keep = path
            else:
                os.unlink(path)
        result["sustained"] = runs
        zero_drop = [r["achieved_rate"] for r in runs if r["dropped"] == 0]
        result["sustained_events_per_s"] = max(zero_drop) if zero_drop else 0.0
        result["bytes_per_event_c_loop"] = [r for r in runs if r["target_rate"] == 10e6][0]["bytes_per_event"]
        result["reader"] = reader_speed(keep, 3)
        result["flusher"] = flusher_capacity(d, 3 if quick else 10)
        result["real_trace"] = real_trace(d)
    result["summary"] = {
        "sustained_events_per_s": result["sustained_events_per_s"],
        "bytes_per_event": result["real_trace"]["bytes_per_event"],
        "bytes_per_event_c_loop": result["bytes_per_event_c_loop"],
        "reader_events_per_s": result["reader"]["reader_events_per_s"],
        "added_ns_per_event": result["callback"]["added_ns_per_event"],
        "added_ns_per_event_c_loop": result["cost"]["added_ns_per_event"],
        "flusher_events_per_cpu_s": result["flusher"]["flusher_events_per_cpu_s"],
        "flusher_ns_per_event": {name: r["flusher_ns_per_event"]
                                 for name, r in result["flusher_traces"].items()},
        "ring_memory_bytes": result["ring_memory"].get("settled_bytes"),
        "idle_wakeups_per_s": result["idle"]["wakeups_per_s"],
        "load_average": os.getloadavg(),
        "targets": TARGETS,
    }
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    args = p.parse_args(argv)
    result = run(args.quick, callgrind=not args.no_callgrind)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        s = result["summary"]
        print("clock: %s" % result["clock"])
        ins = result.get("instructions", {})
        for name, r in result["flusher_traces"].items():
            per = ins.get("flusher_instructions_per_event", {}).get(name)
            print("flusher CPU per event, %s trace: %.1f ns (spread %.1f..%.1f)%s, %.2f B/event, "
                  "%d dropped (target <= 10 ns on fib and loop); %.1f ns with the log's start" % (
                      name, r["flusher_ns_per_event"], r["spread"]["min"], r["spread"]["max"],
                      ", %.0f instructions" % per if per else "", r["bytes_per_event"],
                      r["dropped"], r["with_start_ns_per_event"]))
        if "skipped" in ins:
            print("   instruction counts skipped: %s" % ins["skipped"])
        m = result["ring_memory"]
        if "error" in m:
            print("ring memory, 200 threads: failed: %s" % m["error"])
        else:
            print("ring memory, 200 threads x 20,000 profiled calls: +%.1f MB resident once "
                  "idle, +%.1f MB at peak, rings %.1f MB at most, %s dropped (target <= 32 MB)"
                  % (m["settled_bytes"] / 1e6, m["peak_bytes"] / 1e6,
                     (m["ring_bytes_peak"] or 0) / 1e6, m["dropped"]))
        i = result["idle"]
        print("idle recorder: %d wake-ups in a second, %d bytes written (target 0)"
              % (i["wakeups_per_s"], i["bytes_written"]))
        print("sustained, zero drops, one producer, rings grown by need: %.1f M events/s "
              "(target >= 10)" % (s["sustained_events_per_s"] / 1e6))
        for r in result["sustained"]:
            print("   paced at %.0f M/s: achieved %.2f M/s, dropped %d, ring %.1f MiB at most"
                  % (r["target_rate"] / 1e6, r["achieved_rate"] / 1e6, r["dropped"],
                     r["ring_bytes_peak"] / 2**20))
        print("   flusher capacity: %.1f M events per CPU-second (%.1f ns/event); load average %.1f"
              % (s["flusher_events_per_cpu_s"] / 1e6,
                 result["flusher"]["flusher_cpu_ns_per_event"], s["load_average"][0]))
        print("bytes per event on disk: %.2f real trace, %.2f C loop (target <= 2.5)"
              % (s["bytes_per_event"], s["bytes_per_event_c_loop"]))
        print("reader (chunks): %.1f M events/s wall, %.1f M per CPU-second (target >= 20); "
              "tuples: %.2f M/s" % (s["reader_events_per_s"] / 1e6,
                                   result["reader"]["reader_events_per_cpu_s"] / 1e6,
                                   result["reader"]["tuple_events_per_s"] / 1e6))
        cb = result["callback"]
        print("added cost per event over a no-op C monitoring callback: %.1f ns median "
              "(spread %.1f..%.1f, %d rounds; the record's own share %.1f ns; producer "
              "thread pinned; target <= 12)"
              % (cb["added_ns_per_event"], cb["spread"]["min"], cb["spread"]["max"],
                 cb["rounds"], cb["record_share_ns"]))
        un = result["callback_unpinned"]
        print("   not pinned: %.1f ns median (spread %.1f..%.1f; the scheduler may move the "
              "producer when the flusher wakes)" % (
                  un["added_ns_per_event"], un["spread"]["min"], un["spread"]["max"]))
        if "callback_added_instructions_per_event" in ins:
            print("   instructions our callback and record add per event on fib: %.0f"
                  % ins["callback_added_instructions_per_event"])
        c = result["cost"]
        print("   pylu_record in a tight C loop: +%.2f ns median (spread %.2f..%.2f; baseline "
              "%.2f ns, record %.2f ns; nothing to overlap the clock read with)" % (
                  c["added_ns_per_event"], c["added_spread"]["min"], c["added_spread"]["max"],
                  c["baseline_ns"]["median"], c["record_ns"]["median"]))
    return result


if __name__ == "__main__":
    main()
