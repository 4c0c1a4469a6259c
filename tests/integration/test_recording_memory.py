"""Rings sized by need, memory given back, and an idle recorder that costs nothing."""
import json
import os
import subprocess
import sys

from support_recorder import Log, private_dir, run_child

FIRST_SEGMENT_BYTES = 1024 * 16
BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "bench")


def test_a_burst_grows_the_ring_and_loses_nothing(tmp_path):
    """A C loop flat out, with the flusher's timer at 10 s: the ring grows in the producer
    itself (1K, 4K, ... slots), so even a flusher that never ran during the burst loses
    nothing of 800,000 records; all are in the log and the rings are unmapped when the
    session ends."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, flush_ms=10000, frame_ms=60000)
        e.recorder_bench(800_000)
        during = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps([path, during, e.recorder_stats()]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    path, during, after = json.loads(out.stdout)
    assert after["dropped"] == 0 and after["events"] == 800_000, after
    assert after["ring_bytes_peak"] > 64 * FIRST_SEGMENT_BYTES, after
    assert during["ring_bytes"] > 0 and after["ring_bytes"] == 0
    assert len(Log(path).events) == 800_000


def test_the_largest_ring_is_respected_and_its_overflow_counted(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, ring_slots=4096, flush_ms=10000, frame_ms=60000)
        e.recorder_bench(500_000)
        e.recorder_stop()
        print(json.dumps([path, e.recorder_stats()]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    path, stats = json.loads(out.stdout)
    assert stats["ring_bytes_peak"] <= 4096 * 16 + FIRST_SEGMENT_BYTES
    log = Log(path)
    assert stats["events"] == len(log.events)
    assert stats["events"] + stats["dropped"] == 500_000
    assert sum(log.drops_per_thread().values()) == stats["dropped"]


def test_two_hundred_profiled_threads_stay_within_32_mb(tmp_path):
    """Issue 18: 200 live threads, each making 20,000 profiled calls, cost at most 32 MB of
    resident memory once they wait (a thread pool between requests), and lose nothing.
    The bench's own scenario (bench_recording.RING_MEMORY_SCRIPT)."""
    sys.path.insert(0, BENCH)
    import bench_recording
    d = private_dir(tmp_path / "logs")
    out = subprocess.run([sys.executable, "-c", bench_recording.RING_MEMORY_SCRIPT, "profile", d],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    stats = run["stats"]
    assert stats["events"] == 200 * 20_000 * 2 and stats["dropped"] == 0, stats
    assert stats["ring_trims"] > 0
    assert run["settled"] <= 32e6, run


def test_an_idle_recorder_dozes_and_wakes_for_the_next_record(tmp_path):
    """Nothing recorded: the flusher stops waking (no CPU) and the log stops growing;
    the next record, text or flush wakes it, and nothing is lost."""
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, os, threading, time

        from pyliveupdate import _engine as e

        def flusher_cpu_ticks():
            for tid in os.listdir("/proc/self/task"):
                base = "/proc/self/task/%s/" % tid
                if open(base + "comm").read().strip() == "pylu-flusher":
                    fields = open(base + "stat").read().rsplit(")", 1)[1].split()
                    return int(fields[11]) + int(fields[12])   # utime + stime
            return None

        path = e.recorder_start({d!r}, flush_ms=1)
        for i in range(1000):
            e.recorder_emit(6, 3, i + 1)
        deadline = time.monotonic() + 30
        # Dozing after the records were drained: a doze counted before (or cut short by
        # them) is not the idle state, and under load the flusher is still cycling then.
        # With a 1 ms period, 50 ms without a cycle means it sleeps.
        while time.monotonic() < deadline:
            before = e.recorder_stats()
            time.sleep(0.05)
            dozing = e.recorder_stats()
            if (dozing["events"] >= 1000 and dozing["dozes"] >= 1
                    and dozing["cycles"] == before["cycles"]):
                break
        size, ticks = os.path.getsize(path), flusher_cpu_ticks()
        time.sleep(1.0)                          # a thousand flush periods
        idle = e.recorder_stats()
        grew, spent = os.path.getsize(path) - size, flusher_cpu_ticks() - ticks
        e.recorder_emit(6, 3, 1001)              # wakes it
        t = threading.Thread(target=e.recorder_emit, args=(6, 3, 1002))
        t.start(); t.join()                      # a new thread while dozing
        while e.recorder_stats()["events"] < 1002 and time.monotonic() < deadline:
            time.sleep(0.01)
        woke = e.recorder_stats()
        e.recorder_text(3, "after the doze")
        e.recorder_stop()
        print(json.dumps([path, dozing, idle, woke, grew, spent]))
    """, timeout=120)
    assert out.returncode == 0, out.stderr
    path, dozing, idle, woke, grew, spent = json.loads(out.stdout)
    assert dozing["dozes"] >= 1
    assert idle["cycles"] == dozing["cycles"], (dozing, idle)   # no wake-up in a second
    assert grew == 0 and spent == 0, (grew, spent)
    assert woke["events"] == 1002 and woke["cycles"] > idle["cycles"]
    log = Log(path)
    assert log.complete and log.error is None
    assert sorted(ev[5] for ev in log.events) == list(range(1, 1003))
    assert [m[4] for m in log.metas if m[0] == "text"] == ["after the doze"]


def test_a_flush_reaches_a_dozing_flusher(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, time
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, flush_ms=1, frame_ms=60000)
        deadline = time.monotonic() + 30
        while e.recorder_stats()["dozes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        e.recorder_flush()                       # returns: the flusher woke and answered
        e.recorder_stop()
        print(json.dumps(e.recorder_stats()))
    """, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["error"] is None
