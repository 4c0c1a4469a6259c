"""A log cut into segment files, a directory held within its size budget, and reading a
process's segments as one log (issue 18: disk)."""
import json
import os
import re
import subprocess
import sys

import pytest

from pyliveupdate import _engine, _reader
from support_recorder import Log, logs_in, private_dir, run_child

SEGMENT = 64 * 1024           # the smallest segment the recorder makes

# Events that compress poorly (random lines), so segments fill after a few 100k events.
PRODUCE = """
    import json, os, random
    from pyliveupdate import _engine as e
    rnd = random.Random(5)
    e.recorder_describe_code(7, "work", "/src/work.py", 1, "work")
    path = e.recorder_start({d!r}, {options})
    for i in range({n}):
        e.recorder_emit(6, 7, rnd.randrange(1, 1 << 20))
        if i % 20000 == 0:
            e.recorder_flush()
    e.recorder_stop()
    print(json.dumps([path, e.recorder_stats()]))
"""


def produce(d, n, **options):
    opts = ", ".join("%s=%r" % kv for kv in options.items())
    out = run_child(PRODUCE.format(d=d, n=n, options=opts), timeout=180)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def segment_number(path):
    m = re.match(r"pylu-\d+-\d+(?:\.(\d+))?\.pylog$", os.path.basename(path))
    assert m, path
    return int(m.group(1) or 0)


def test_a_log_is_cut_into_segments_each_readable_alone(tmp_path):
    d = private_dir(tmp_path / "logs")
    n = 400_000
    first, stats = produce(d, n, segment_bytes=SEGMENT, budget=1 << 30)
    segments = _reader.log_segments(first)
    assert segments[0] == first and len(segments) >= 4, segments
    assert [segment_number(p) for p in segments] == list(range(len(segments)))
    assert stats["segments"] == len(segments) and stats["deleted_segments"] == 0
    base = os.path.basename(first)[:-len(".pylog")]
    assert [os.path.basename(p) for p in segments[1:]] == [
        "%s.%d.pylog" % (base, i) for i in range(1, len(segments))]
    total = 0
    for i, path in enumerate(segments):
        log = Log(path)
        assert log.error is None, (path, log.error)
        assert log.header["segment"] == i
        assert log.codes()[7][0] == "work"          # every segment describes its codes...
        assert log.threads()                         # ...and names its threads
        assert log.reader.continued == (i < len(segments) - 1)
        assert log.complete == (i == len(segments) - 1)
        total += len(log.events)
        assert os.path.getsize(path) < 4 * SEGMENT
    assert total == n == stats["events"]


def test_a_process_s_segments_read_as_one_log(tmp_path):
    d = private_dir(tmp_path / "logs")
    first, stats = produce(d, 300_000, segment_bytes=SEGMENT, budget=1 << 30)
    r = _reader.LogReader(_reader.log_segments(first))
    events = [item for item in r if item[0] == "event"]
    assert r.complete and r.error is None and not r.continued
    assert len(events) == 300_000
    assert [s for s, _ in r.segments] == list(range(stats["segments"]))
    ts = [e[3] for e in events]
    assert ts == sorted(ts)                          # one time line across the files
    chunks = sum(len(ev) // _reader.LOG_EVENT_SIZE
                 for ev, _ in _reader.LogReader(_reader.log_segments(first)).chunks())
    assert chunks == 300_000


def test_the_budget_deletes_the_oldest_segments_and_says_so(tmp_path):
    d = private_dir(tmp_path / "logs")
    budget = 5 * SEGMENT
    first, stats = produce(d, 900_000, segment_bytes=SEGMENT, budget=budget)
    assert stats["budget_bytes"] == budget
    assert stats["deleted_segments"] > 0 and stats["deleted_bytes"] > 0
    kept = _reader.log_segments(stats["path"])
    assert not os.path.exists(first)                 # the oldest went first
    numbers = [segment_number(p) for p in kept]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)) and numbers[-1] == stats["segments"] - 1
    on_disk = sum(os.path.getsize(p) for p in logs_in(d))
    assert on_disk <= budget + 4 * SEGMENT, (on_disk, budget)
    texts = [m[4] for p in kept for m in Log(p).metas if m[0] == "text"]
    assert any("log budget: deleted" in t and "old log segment" in t for t in texts), texts
    r = _reader.LogReader(kept)                      # what is kept reads as one log
    assert sum(1 for item in r if item[0] == "event") > 0
    assert r.error is None and r.complete and r.header["segment"] == numbers[0]


def test_the_budget_spares_what_a_live_process_writes(tmp_path):
    """Other processes' logs in the directory: a finished process's segments go first,
    but the last segment of a process still alive is never deleted."""
    d = private_dir(tmp_path / "logs")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    alive = os.getpid()
    planted = {
        "pylu-%s-100.pylog" % gone: 3 * SEGMENT,      # finished: its last segment may go
        "pylu-%d-200.pylog" % alive: SEGMENT,          # alive: older segment may go
        "pylu-%d-200.1.pylog" % alive: SEGMENT,        # alive: its last segment stays
        "notes.txt": 10 * SEGMENT,                     # not ours: never counted or deleted
    }
    for name, size in planted.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"\0" * size)
    produce(d, 50_000, segment_bytes=SEGMENT, budget=3 * SEGMENT)
    left = set(os.listdir(d))
    assert "pylu-%s-100.pylog" % gone not in left
    assert "pylu-%d-200.pylog" % alive not in left
    assert "pylu-%d-200.1.pylog" % alive in left and "notes.txt" in left


def test_budget_from_the_environment_and_bad_budgets(tmp_path, monkeypatch):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        stats = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps(stats))
    """, env={"PYLU_LOG_BUDGET": "1.5M"})
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["budget_bytes"] == int(1.5 * 1024 * 1024) and stats["segments"] == 1
    d = private_dir(tmp_path / "empty")
    for bad in ("lots", "-5M", "0", "12Q"):
        monkeypatch.setenv("PYLU_LOG_BUDGET", bad)
        with pytest.raises(ValueError, match="PYLU_LOG_BUDGET must be a size"):
            _engine.recorder_start(d)
    monkeypatch.delenv("PYLU_LOG_BUDGET")
    with pytest.raises(ValueError, match="budget must be"):
        _engine.recorder_start(d, budget=0)
    assert not _engine.recorder_active() and logs_in(d) == []


def test_default_budget_is_at_most_a_gibibyte_and_a_tenth_of_free_space(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, os
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        stats = e.recorder_stats()
        e.recorder_stop()
        vfs = os.statvfs({d!r})
        print(json.dumps([stats["budget_bytes"], vfs.f_bavail * vfs.f_frsize]))
    """, env={"PYLU_LOG_BUDGET": ""})
    assert out.returncode == 0, out.stderr
    budget, free = json.loads(out.stdout)
    assert budget == pytest.approx(min(1 << 30, free / 10), rel=0.05)


def test_log_segments_refuses_foreign_names(tmp_path):
    with pytest.raises(ValueError, match="not named as a log segment"):
        _reader.log_segments(str(tmp_path / "notes.pylog"))


def test_segments_of_another_log_are_refused(tmp_path):
    d = private_dir(tmp_path / "logs")
    first_a, _ = produce(d, 1000)
    first_b, _ = produce(d, 1000)
    r = _reader.LogReader([first_a, first_b])
    events = [item for item in r if item[0] == "event"]
    assert len(events) == 1000
    assert r.error is not None and "not a segment of the same log" in r.error
