"""The recording path end to end: rings, flusher, log, counted exactly on the reader side."""
import json
import os
import struct

import pytest

from pyliveupdate import _engine, _reader
from support_recorder import EV_CALL, EV_RETURN, Log, logs_in, private_dir, run_child


@pytest.mark.parametrize("clock", ["default", "monotonic"])
def test_events_come_back_in_order_with_their_metadata(tmp_path, clock):
    d = private_dir(tmp_path / "logs")
    env = {"PYLU_CLOCK": clock}
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        e.recorder_describe_code(7, "Cls.meth", "/src/mod.py", 40, "pkg.mod")
        path = e.recorder_start({d!r})
        seq = [(1, 7, 0), (6, 7, 41), (6, 7, 42), (7, 7, 43), (4, 7, 0), (2, 7, 0),
               (5, 7, 0), (1, 300000, 0), (3, 300000, 0), (6, 7, 0x0FFFFFFF)]
        for k, c, l in seq:
            e.recorder_emit(k, c, l)
        e.recorder_describe_code(300000, "late", "/src/late.py", 1, "late")
        e.recorder_text(2, "handler said: héllo")
        e.recorder_stop()
        print(json.dumps([path, e.recorder_stats()]))
    """, env=env)
    assert out.returncode == 0, out.stderr
    path, stats = json.loads(out.stdout)
    if clock == "monotonic":
        assert stats["clock"] == "monotonic"
    assert stats["events"] == 10 and stats["dropped"] == 0 and stats["error"] is None
    log = Log(path)
    assert log.error is None and log.complete
    assert log.header["pid"] > 0 and log.header["version"] == _engine.LOG_FORMAT_VERSION == 3
    assert log.header["clock"] == stats["clock"]
    # the log counts ticks of at most 8 ns (a power of two of the clock's), at least 4 ns
    assert 1e9 / 8 <= log.header["ticks_per_sec"] < 1e9 / 4
    got = [(e[1], e[4], e[5]) for e in log.events]
    assert got == [(1, 7, 0), (6, 7, 41), (6, 7, 42), (7, 7, 43), (4, 7, 0), (2, 7, 0),
                   (5, 7, 0), (1, 300000, 0), (3, 300000, 0), (6, 7, 0x0FFFFFFF)]
    ts = [e[3] for e in log.events]
    assert ts == sorted(ts) and ts[0] >= 0
    assert log.codes()[7] == ("Cls.meth", "/src/mod.py", 40, "pkg.mod")
    # metadata precedes its first use: code 7 was described before any event
    first_event = log.items.index(log.events[0])
    assert any(m[0] == "code" and m[1] == 7 for m in log.items[:first_event])
    (text,) = [m for m in log.metas if m[0] == "text"]
    assert text[3] == 2 and text[4] == "handler said: héllo"
    threads = log.threads()
    assert threads[0][1] == "MainThread" and threads[0][0] > 0


@pytest.mark.parametrize("clock", ["default", "monotonic"])
def test_many_threads_are_counted_exactly(tmp_path, clock):
    """12 threads on 2 cores, produced = read + dropped for every thread."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, threading
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, ring_slots=1024, flush_ms=2)
        N = 20000
        barrier = threading.Barrier(12)
        def work(i):
            barrier.wait()
            for j in range(N):
                e.recorder_emit(1 + (j % 7), 1000 + i, j % 50)
        ts = [threading.Thread(target=work, args=(i,), name="w%d" % i) for i in range(12)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        e.recorder_stop()
        print(json.dumps([path, N, e.recorder_stats()]))
    """, timeout=120, env={"PYLU_CLOCK": clock})
    assert out.returncode == 0, out.stderr
    path, n, stats = json.loads(out.stdout)
    log = Log(path)
    assert log.error is None and log.complete
    per_thread = log.events_per_thread()
    drops = log.drops_per_thread()
    names = log.threads()
    workers = [t for t, (_, name) in names.items() if name.startswith("w")]
    assert len(workers) == 12
    for t in workers:
        assert per_thread.get(t, 0) + drops.get(t, 0) == n, (t, per_thread.get(t), drops.get(t))
        codes = {e[4] for e in log.events if e[2] == t}
        assert len(codes) == 1   # each thread's events carry its own code id
    last = {}
    for e in log.events:                      # each thread's clock only moves forward
        assert e[3] >= last.get(e[2], 0)
        last[e[2]] = e[3]
    assert stats["events"] == len(log.events)
    assert stats["events"] + stats["dropped"] == 12 * n
    assert stats["threads"] == 12


def test_a_tiny_ring_reports_its_drops(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, ring_slots=4, flush_ms=50)
        e.recorder_bench(200000)          # flat out from a C loop: a 3-record ring overflows
        e.recorder_stop()
        print(json.dumps([path, e.recorder_stats()]))
    """)
    assert out.returncode == 0, out.stderr
    path, stats = json.loads(out.stdout)
    log = Log(path)
    assert stats["dropped"] > 0
    assert len(log.events) + sum(log.drops_per_thread().values()) == 200000
    assert stats["events"] == len(log.events)
    assert stats["dropped"] == sum(log.drops_per_thread().values())


def test_bad_arguments_are_refused_and_change_nothing(tmp_path):
    d = private_dir(tmp_path / "logs")
    with pytest.raises(ValueError, match="power of two"):
        _engine.recorder_start(d, ring_slots=1000)
    with pytest.raises(ValueError, match="level"):
        _engine.recorder_start(d, level=99)
    with pytest.raises(ValueError, match="cannot create"):
        _engine.recorder_start(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="kind"):
        _engine.recorder_emit(9, 1, 1)
    with pytest.raises(ValueError, match="text kind"):
        _engine.recorder_text(7, "x")
    assert not _engine.recorder_active()
    assert os.listdir(d) == []
    path = _engine.recorder_start(d)
    try:
        with pytest.raises(ValueError, match="already running"):
            _engine.recorder_start(d)
        assert _engine.recorder_active()
    finally:
        _engine.recorder_stop()
    assert logs_in(d) == [path]
    assert Log(path).complete


def test_exit_flushes_everything(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        from pyliveupdate import _engine as e
        e.recorder_start({d!r}, flush_ms=1000, frame_ms=60000)
        for i in range(50000):
            e.recorder_emit(6, 5, i % 1000 + 1)
        e.recorder_text(3, "bye")
        # no recorder_stop(): interpreter exit must drain and close the log
    """)
    assert out.returncode == 0, out.stderr
    (path,) = logs_in(d)
    log = Log(path)
    assert log.complete and log.error is None
    assert len(log.events) == 50000
    assert [m[4] for m in log.metas if m[0] == "text"] == ["bye"]


def test_live_aggregates(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        for _ in range(10):
            e.recorder_emit(1, 1, 0)          # outer
            e.recorder_emit(6, 1, 10)
            e.recorder_emit(1, 2, 0)          # inner, twice
            e.recorder_emit(3, 2, 0)
            e.recorder_emit(1, 2, 0)
            e.recorder_emit(5, 2, 0)
            e.recorder_emit(6, 1, 11)
            e.recorder_emit(7, 1, 12)
            e.recorder_emit(3, 1, 0)
        e.recorder_emit(1, 3, 0)              # a generator: two slices
        e.recorder_emit(4, 3, 0)
        e.recorder_emit(2, 3, 0)
        e.recorder_emit(3, 3, 0)
        e.recorder_flush()
        funcs, lines = e.recorder_live()
        e.recorder_live_reset([2])
        funcs2, lines2 = e.recorder_live()
        e.recorder_stop()
        print(json.dumps([list(funcs.items()), [[k, v] for k, v in lines.items()],
                          sorted(funcs2)]))
    """)
    assert out.returncode == 0, out.stderr
    funcs, lines, after_reset = json.loads(out.stdout)
    funcs = {k: v for k, v in funcs}
    lines = {tuple(k): v for k, v in lines}
    assert funcs[1][0] == 10 and funcs[2][0] == 20 and funcs[3][0] == 2
    assert 0 <= funcs[1][2] <= funcs[1][1]
    assert funcs[1][1] >= funcs[2][1] / 2 - 1e-6   # inner time is inside outer time
    assert funcs[1][2] == pytest.approx(funcs[1][1] - funcs[2][1], rel=1e-6, abs=1.0)
    assert lines[(1, 10)][0] == 10 and lines[(1, 11)][0] == 10
    assert (1, 12) not in lines                    # LINE_MARK only closes
    assert after_reset == [1, 3]


def test_text_is_not_recorded_when_stopped(tmp_path):
    assert not _engine.recorder_active()
    assert _engine.recorder_text(1, "nobody listens") is False


def test_idle_flusher_sleeps_between_cycles(tmp_path):
    """An idle flusher wakes about every flush_ms; it must not spin."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, time
        from pyliveupdate import _engine as e
        e.recorder_start({d!r}, flush_ms=100)
        time.sleep(0.6)
        print(json.dumps(e.recorder_stats()))
        e.recorder_stop()
    """)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert 1 <= stats["cycles"] <= 20, stats


def test_emit_without_recording_is_a_no_op_on_any_thread(tmp_path):
    """A thread that never attached to a session, with the recorder stopped, has no ring."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import threading
        from pyliveupdate import _engine as e
        e.recorder_emit(1, 1, 0)                   # never recorded in this process
        t = threading.Thread(target=e.recorder_emit, args=(1, 1, 0))
        t.start(); t.join()
        e.recorder_start({d!r}); e.recorder_emit(1, 1, 0); e.recorder_stop()
        e.recorder_emit(3, 1, 0)                   # attached before, stopped now
        t = threading.Thread(target=e.recorder_emit, args=(3, 1, 0))
        t.start(); t.join()
        print(e.recorder_stats()["events"])
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]


@pytest.mark.parametrize("clock", ["default", "monotonic"])
def test_timestamps_follow_real_time(tmp_path, clock):
    """ns since log start track time.monotonic across frames (calibrated TSC or not).
    Each emission is bracketed by two readings, so scheduling delays cannot fail it."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, time
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r})
        marks = []
        for i in range(4):
            before = time.monotonic_ns()
            e.recorder_emit(1, 1, i + 1)
            marks.append((before, time.monotonic_ns()))
            e.recorder_flush()
            time.sleep(0.15)
        e.recorder_stop()
        print(json.dumps([path, marks]))
    """, env={"PYLU_CLOCK": clock})
    assert out.returncode == 0, out.stderr
    path, marks = json.loads(out.stdout)
    ts = [e[3] for e in Log(path).events]
    for i in range(1, 4):
        shortest = marks[i][0] - marks[0][1]
        longest = marks[i][1] - marks[0][0]
        recorded = ts[i] - ts[0]
        assert shortest * 0.98 - 1000 <= recorded <= longest * 1.02 + 1000, (i, marks, ts)


def test_a_ring_past_half_full_wakes_the_flusher(tmp_path):
    """With the flusher's timer at 10 s, only the producers' own wake-ups can drain the
    ring: 64 rings' worth of events get through instead of one ring's worth."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, ring_slots=4096, flush_ms=10000, frame_ms=60000)
        N = 64 * 4096
        for j in range(N):
            e.recorder_emit(1 + (j & 1) * 2, 5, 0)
        stats = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps([path, N, stats["cycles"], e.recorder_stats()]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    path, n, cycles_while_producing, stats = json.loads(out.stdout)
    assert stats["events"] + stats["dropped"] == n
    # Without the wake-ups: no cycle while producing, ~4096 events through, ~98% dropped.
    # (How many cycles it took depends on the machine's load; that it drained does not.)
    assert cycles_while_producing >= 2, cycles_while_producing
    assert stats["dropped"] < n // 2, stats
    assert Log(path).error is None


def test_a_slow_producer_costs_few_wake_ups(tmp_path):
    """About 2,000 events a second for a second: the flusher sleeps until its ring would be
    3/8 full or the frame is due (100 ms), not every flush period (it woke every 5 ms
    before: ~200 wake-ups, 20-80 us of CPU each on a VM)."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, time
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, flush_ms=5)
        n, end = 0, time.monotonic() + 1.0
        while time.monotonic() < end:
            e.recorder_emit(1, 5, 0); e.recorder_emit(3, 5, 0)
            n += 2
            time.sleep(0.001)
        stats = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps([path, n, stats["cycles"], e.recorder_stats()]))
    """)
    assert out.returncode == 0, out.stderr
    path, n, cycles, stats = json.loads(out.stdout)
    assert stats["events"] == n and stats["dropped"] == 0, stats
    assert n > 200, n
    assert cycles <= 40, cycles
    log = Log(path)
    assert log.error is None and len(log.events) == n


def test_a_fast_ring_grows_instead_of_waking_the_flusher(tmp_path):
    """Millions of events a second from one thread: the flusher asks the ring to grow until
    it holds a flush period (10 ms) at 3/8 full, and then wakes about once a period. (With
    growth only at 3/4 full, which its pacing prevents, it drained a 4 K-slot ring every
    0.45 ms.)"""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        e.recorder_bench(2_000_000, rate=4e6)
        stats = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps([stats, e.recorder_stats()]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    during, stats = json.loads(out.stdout)
    assert stats["events"] == 2_000_000 and stats["dropped"] == 0, stats
    assert during["ring_bytes"] >= 256 * 1024, during   # 16 K slots or more (first: 1 K)
    assert during["cycles"] <= 80, during                # 0.5 s: ~50 at 10 ms (was ~130)


def test_a_frame_holds_at_most_frame_ms_of_records_at_any_pace(tmp_path):
    """A killed process loses at most frame_ms of records: a frame's clock starts at the
    drain before its first records, not when the flusher got to them. With rings grown for
    a fast producer the flusher sleeps up to 3/8 of a large ring, and frames
    counted from their opening spanned 150-165 ms of events (flush_ms=40: rings sized for
    40 ms, so the flusher sleeps about that long)."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, frame_ms=100, flush_ms=40)
        e.recorder_bench(8_000_000, rate=8e6)
        e.recorder_stop()
        print(json.dumps([path, e.recorder_stats()]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    path, stats = json.loads(out.stdout)
    assert stats["dropped"] == 0, stats
    spans = []
    for events, _metas in _reader.LogReader(path).chunks():
        if events:
            first = struct.unpack_from("<q", events, 0)[0]
            last = struct.unpack_from("<q", events, len(events) - _reader.LOG_EVENT_SIZE)[0]
            spans.append((last - first) / 1e6)
    assert len(spans) >= 5, spans
    assert max(spans) <= 125, spans   # 100 here; the wake-up may come late under load


def _outermost_totals_and_self(log):
    """The live aggregates' definitions computed from the log itself: per code, hits,
    total over outermost activations, self = the time with that code on top."""
    stack, out, last = [], {}, None
    for _, kind, _thread, ts, code, _line in log.events:
        if stack and last is not None:
            out.setdefault(stack[-1][0], [0, 0, 0])[2] += ts - last
        last = ts
        if kind == EV_CALL:
            stack.append((code, ts, all(entry[0] != code for entry in stack)))
        elif kind == EV_RETURN:
            popped, start, outer = stack.pop()
            assert popped == code
            agg = out.setdefault(code, [0, 0, 0])
            agg[0] += 1
            agg[1] += ts - start if outer else 0
    return out


def test_live_aggregates_charge_a_recursion_once(tmp_path):
    """FP.top()'s figures: a function's total counts its outermost activations only (as
    pylu-processlogs does), its self time every activation's own; direct and indirect
    recursion, and two codes that share a bucket of the recursion check (1 and 65).
    Checked against the same definitions computed from the log's own timestamps."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, time
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r})
        def pause():
            t = time.perf_counter_ns() + 200_000
            while time.perf_counter_ns() < t:
                pass
        for kind, code in [(1, 1), (1, 1), (1, 2), (1, 1), (3, 1), (3, 2), (3, 1), (3, 1),
                           (1, 65), (1, 1), (3, 1), (3, 65)]:
            e.recorder_emit(kind, code, 0)             # f f g f, then h (f's bucket) f
            pause()
        e.recorder_flush()
        funcs, _ = e.recorder_live()
        e.recorder_stop()
        print(json.dumps([path, sorted(funcs.items())]))
    """)
    assert out.returncode == 0, out.stderr
    path, funcs = json.loads(out.stdout)
    funcs = {code: v for code, v in funcs}
    want = _outermost_totals_and_self(Log(path))
    assert sorted(funcs) == sorted(want) == [1, 2, 65]
    for code, (hits, total, self_ns) in funcs.items():
        w_hits, w_total, w_self = want[code]
        assert hits == w_hits, (code, funcs, want)
        assert total == pytest.approx(w_total, rel=0.01, abs=2000), (code, funcs, want)
        assert self_ns == pytest.approx(w_self, rel=0.01, abs=2000), (code, funcs, want)
    # f's recursion is charged once: its total is less than the sum of its activations
    assert funcs[1][0] == 4 and funcs[1][1] < funcs[1][2] + funcs[2][1]
