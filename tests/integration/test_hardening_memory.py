"""Long runs leave memory flat: 10,000 apply/revert cycles, and recording at a high event
rate. Each runs in a fresh interpreter that samples its own RSS and live objects after a
warm-up and at the end. `make soak` runs the same tests PYLU_SOAK_SCALE times longer."""
import json
import os
import subprocess
import textwrap

from support_hardening import PYTHON, python_env

SCALE = max(1, int(os.environ.get("PYLU_SOAK_SCALE", "1")))
RSS_BOUND_KB = 3 * 1024         # what the allocator may keep around, not a leak
OBJECTS_BOUND = 300


def _run(source, timeout, **values):
    source = COMMON + textwrap.dedent(source)
    for name, value in values.items():
        source = source.replace("@" + name.upper() + "@", repr(value))
    env = python_env()
    if "ASAN_OPTIONS" in env:  # freed memory must come back, not wait in ASan's quarantine
        env["ASAN_OPTIONS"] += ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    out = subprocess.run([PYTHON, "-c", source], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


COMMON = """
import contextlib, gc, io, json, os, sys, threading, time

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def sample():
    gc.collect()
    return rss_kb(), len(gc.get_objects())
"""


def test_ten_thousand_apply_revert_cycles_leave_memory_flat():
    cycles = 10000 * SCALE
    result = _run("""
        from pyliveupdate import engine
        from pyliveupdate.update import Instrument, Redefine, UpdateManager

        def price(n):
            total = n * 2
            return total

        class Shop:
            def sell(self, n):
                return price(n) + 1

        seen = []
        updates = [
            Instrument('__main__.price', {'func_begin': lambda n: seen.append(n),
                                          ('line_after', price.__code__.co_firstlineno + 1):
                                              lambda total: None}),
            Instrument('__main__.Shop.sell', {'func_end': lambda _returnvalues: None}),
            Redefine('__main__', None, {'__main__.price': lambda n: n * 3}),
            Redefine('__main__', None, {'__main__.Shop.sell': lambda self, n: 0}),
        ]
        shop = Shop()

        def cycles(n):
            with contextlib.redirect_stdout(io.StringIO()):
                for i in range(n):
                    u = updates[i % len(updates)]
                    assert UpdateManager.apply_update(u)
                    shop.sell(i)
                    assert UpdateManager.revert_update(u)
                    del seen[:]
        cycles(1000)                       # warm-up: caches, first arming, code objects
        before = sample()
        cycles(@CYCLES@)
        after = sample()
        assert price(2) == 4 and shop.sell(2) == 5   # every update is reverted
        st = engine.status()
        print(json.dumps({"before": before, "after": after, "armed": st["armed_codes"],
                          "applied": list(UpdateManager._order)}))
    """, timeout=120 * SCALE, cycles=cycles)
    print("apply/revert cycles=%d:" % cycles, result)
    (rss0, objs0), (rss1, objs1) = result["before"], result["after"]
    assert result["armed"] == 0 and result["applied"] == []
    assert rss1 - rss0 < RSS_BOUND_KB, result
    assert objs1 - objs0 < OBJECTS_BOUND, result


def test_high_rate_recording_leaves_memory_flat_and_loses_nothing_silently(tmp_path):
    seconds = 8 * SCALE
    result = _run("""
        from pyliveupdate import engine, recording, _engine

        def leaf(n):
            return n + 1

        def branch(n):
            for i in range(8):
                leaf(i)
            return n

        engine.arm(1, leaf.__code__, engine.Request(func_timing=True))
        engine.arm(1, branch.__code__, engine.Request(func_timing=True,
                   timing_lines=frozenset(range(branch.__code__.co_firstlineno + 1,
                                                branch.__code__.co_firstlineno + 4))))
        path = recording.ensure_started(@LOGS@, ring_slots=65536)
        stop = threading.Event()

        def work():
            n = 0
            while not stop.is_set():
                branch(n)
                n += 1

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        samples = []
        deadline = time.monotonic() + @SECONDS@
        while time.monotonic() < deadline:
            time.sleep(0.5)
            samples.append(sample())
        stop.set()
        for t in threads:
            t.join()
        engine.disarm(1)
        recording.stop()
        stats = recording.stats()
        size = os.path.getsize(path)
        reader = _engine.LogReader(path)
        events = 0
        drops = {}
        for events_bytes, metas in reader.chunks():
            events += len(events_bytes) // 24
            for m in metas:
                if m[0] == "drop":
                    drops[m[1]] = m[2]
        os.unlink(path)
        print(json.dumps({"samples": samples, "events": stats["events"], "dropped": stats["dropped"],
                          "read": events, "drops_in_log": sum(drops.values()),
                          "complete": reader.complete, "error": reader.error, "size": size}))
    """, timeout=60 + 30 * SCALE, logs=str(tmp_path / "logs"), seconds=seconds)
    print("recording %ds:" % seconds, result)
    samples = result["samples"]
    assert len(samples) >= 8
    warm = samples[len(samples) // 4]
    peak_rss = max(s[0] for s in samples[len(samples) // 4:])
    last_objs = samples[-1][1]
    assert peak_rss - warm[0] < RSS_BOUND_KB, samples
    assert last_objs - warm[1] < OBJECTS_BOUND, samples
    # Everything recorded is in the log; what was not recorded is counted there too.
    assert result["complete"] and result["error"] is None, result
    assert result["events"] > 1_000_000, result
    assert result["read"] == result["events"], result
    assert result["drops_in_log"] == result["dropped"], result
