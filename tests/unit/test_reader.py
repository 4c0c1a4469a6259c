"""LogReader: exact decoding, the chunks() fast path, damaged and foreign files."""
import os
import shutil
import struct

import pytest

from pyliveupdate import _engine, _reader
from support_recorder import Log, private_dir, run_child

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BATCH = 3000


@pytest.fixture
def batched_log(tmp_path):
    """A log whose frame i holds exactly batch i (code id 100 + i), 5 batches."""
    d = private_dir(tmp_path / "logs")
    path = _engine.recorder_start(d, flush_ms=1, frame_ms=60000)
    try:
        for i in range(5):
            for j in range(BATCH):
                _engine.recorder_emit(6, 100 + i, j + 1)
            _engine.recorder_flush()
    finally:
        _engine.recorder_stop()
    data = open(path, "rb").read()
    header_size = 48 + struct.unpack_from("<I", data, 44)[0]
    starts = []
    at = data.find(ZSTD_MAGIC, header_size)
    while at >= 0:
        starts.append(at)
        at = data.find(ZSTD_MAGIC, at + 1)
    return path, data, starts


def batches_in(log):
    codes = sorted({e[4] for e in log.events})
    for c in codes:
        assert [e[5] for e in log.events if e[4] == c] == list(range(1, BATCH + 1))
    return [c - 100 for c in codes]


def test_whole_log(batched_log):
    path, data, starts = batched_log
    log = Log(path)
    assert log.complete and log.error is None
    assert batches_in(log) == [0, 1, 2, 3, 4]
    assert len(starts) >= 6   # five batch frames and the final one


def test_chunks_match_the_tuple_path(batched_log):
    path, _, _ = batched_log
    tuples = [e[1:] for e in Log(path).events]
    r = _reader.LogReader(path)
    from_chunks, metas = [], []
    for events, m in r.chunks():
        assert len(events) % _reader.LOG_EVENT_SIZE == 0 and _reader.LOG_EVENT_SIZE == 24
        for ts, code, line, thread, kind, _pad in struct.iter_unpack("<qIIIHH", events):
            from_chunks.append((kind, thread, ts, code, line))
        metas.extend(m)
    assert from_chunks == tuples
    assert r.complete and r.error is None
    assert any(m[0] == "thread" for m in metas)


@pytest.mark.parametrize("cut_frame", [1, 3])
def test_truncated_log_gives_complete_frames_then_says_where(batched_log, tmp_path, cut_frame):
    path, data, starts = batched_log
    cut = tmp_path / "cut.pylog"
    cut.write_bytes(data[:starts[cut_frame] + (starts[cut_frame + 1] - starts[cut_frame]) // 2])
    log = Log(str(cut))
    assert not log.complete
    assert log.error == "truncated at byte %d: incomplete zstd frame" % starts[cut_frame]
    assert batches_in(log) == list(range(cut_frame))


def test_corrupt_frame_gives_earlier_frames_then_says_where(batched_log, tmp_path):
    path, data, starts = batched_log
    bad = bytearray(data)
    mid = starts[2] + (starts[3] - starts[2]) // 2
    bad[mid] ^= 0xFF
    p = tmp_path / "bad.pylog"
    p.write_bytes(bytes(bad))
    log = Log(str(p))
    assert not log.complete
    assert log.error.startswith("corrupt frame at byte %d: " % starts[2]), log.error
    assert batches_in(log) == [0, 1]


def test_cut_at_a_frame_boundary_is_clean_but_incomplete(batched_log, tmp_path):
    path, data, starts = batched_log
    p = tmp_path / "boundary.pylog"
    p.write_bytes(data[:starts[4]])
    log = Log(str(p))
    assert log.error is None and not log.complete
    assert batches_in(log) == [0, 1, 2, 3]


def test_empty_and_foreign_files_are_refused(tmp_path, batched_log):
    path, data, _ = batched_log
    empty = tmp_path / "empty.pylog"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file, not a pyliveupdate log"):
        _reader.LogReader(str(empty))
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a log\n" * 10)
    with pytest.raises(ValueError, match="not a pyliveupdate log"):
        _reader.LogReader(str(text))
    with pytest.raises(ValueError, match="not a pyliveupdate log"):
        _reader.LogReader(shutil.which("sh"))
    future = tmp_path / "future.pylog"
    future.write_bytes(data[:8] + struct.pack("<H", 99) + data[10:])
    with pytest.raises(ValueError, match="version 99"):
        _reader.LogReader(str(future))
    short = tmp_path / "short.pylog"
    short.write_bytes(data[:20])
    with pytest.raises(ValueError, match="truncated header"):
        _reader.LogReader(str(short))
    with pytest.raises(FileNotFoundError):
        _reader.LogReader(str(tmp_path / "nope.pylog"))
    with pytest.raises(ValueError, match="not a regular file"):
        _reader.LogReader(str(tmp_path))


def test_reading_a_log_that_is_still_being_written(tmp_path):
    d = private_dir(tmp_path / "logs")
    path = _engine.recorder_start(d, frame_ms=60000)
    try:
        for _ in range(1000):
            _engine.recorder_emit(1, 9, 0)
        _engine.recorder_flush()
        for _ in range(1000):   # still in the open frame
            _engine.recorder_emit(3, 9, 0)
        log = Log(path)
        assert log.error is None and not log.complete
        assert [e[1] for e in log.events] == [1] * 1000
    finally:
        _engine.recorder_stop()
    assert len(Log(path).events) == 2000


def test_header_fields(tmp_path):
    d = private_dir(tmp_path / "logs")
    path = _engine.recorder_start(d)
    _engine.recorder_stop()
    h = _reader.LogReader(path).header
    assert h["pid"] == os.getpid()
    assert h["clock"] == _engine.RECORDER_CLOCK
    assert h["ticks_per_sec"] > 1e6
    assert isinstance(h["argv"], list)
    assert os.path.basename(path).startswith("pylu-%d-" % os.getpid())
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_random_damage_never_crashes_and_is_always_reported(batched_log, tmp_path):
    """Flipped bits and cuts anywhere: the reader returns an exact prefix of the events
    (frames are checksummed), and says why whenever it returns fewer."""
    import random
    path, data, starts = batched_log
    orig = [(e[1], e[4], e[5]) for e in Log(path).events]
    rnd = random.Random(7)
    p = tmp_path / "damaged.pylog"
    reported = 0
    for _ in range(150):
        bad = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            bad[rnd.randrange(len(bad))] ^= 1 << rnd.randrange(8)
        if rnd.random() < 0.3:
            bad = bad[:rnd.randrange(len(bad))]
        p.write_bytes(bytes(bad))
        try:
            r = _reader.LogReader(str(p))
        except ValueError as e:
            assert "pyliveupdate log" in str(e)
            continue
        got = [(e[1], e[4], e[5]) for e in r if e[0] == "event"]
        assert got == orig[:len(got)]
        if len(got) < len(orig) or not r.complete:
            assert r.error is not None or (not r.complete and len(bad) < len(data))
            reported += r.error is not None
    assert reported > 50


def test_targets_do_not_load_the_reader_and_old_names_still_resolve():
    out = run_child("""
        import sys
        from pyliveupdate import _engine
        assert "pyliveupdate._reader" not in sys.modules, "the runtime loaded the reader"
        from pyliveupdate import _reader
        assert _engine.LogReader is _reader.LogReader
        assert _engine.CallTreeBuilder is _reader.CallTreeBuilder
        assert _engine.LOG_EVENT_SIZE == _reader.LOG_EVENT_SIZE == 24
        assert getattr(_engine, "no_such_name", "absent") == "absent"
        print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_kinds_are_one_definition_exported_by_both_modules():
    names = ["EV_CALL", "EV_RESUME", "EV_RETURN", "EV_YIELD", "EV_UNWIND", "EV_LINE",
             "EV_LINE_MARK", "TEXT_DEBUG", "TEXT_HANDLER", "TEXT_ENGINE", "LOG_FORMAT_VERSION"]
    assert [getattr(_engine, n) for n in names] == [getattr(_reader, n) for n in names]
    assert [getattr(_reader, n) for n in names[:7]] == list(range(1, 8))   # the log format
    for kind in (_reader.TEXT_DEBUG, _reader.TEXT_HANDLER, _reader.TEXT_ENGINE):
        assert _engine.recorder_text(kind, "not recording") is False   # accepted, not queued
    with pytest.raises(ValueError, match="text kind"):
        _engine.recorder_text(_reader.TEXT_ENGINE + 1, "x")


@pytest.mark.parametrize("version", [1, 2])
def test_logs_of_older_format_versions_are_still_read(version):
    """Logs written by the version-1 and version-2 writers (kept in tests/unit/data) read
    back exactly as they did then: event tuples, code, thread, text and drop records, the
    header (version 2's ticks were clock ticks, version 3's are log ticks)."""
    import json
    data = os.path.join(os.path.dirname(__file__), "data")
    want = json.load(open(os.path.join(data, "format_v%d.json" % version)))
    r = _reader.LogReader(os.path.join(data, "format_v%d.pylog" % version))
    assert r.header["version"] == version and r.header["pid"] == want["header"]["pid"]
    assert r.header["ticks_per_sec"] == want["header"]["ticks_per_sec"]
    assert [list(item) for item in r] == want["items"]
    assert r.complete and r.error is None
    assert any(item[0] == "event" and item[5] == 0x0FFFFFFF for item in want["items"])
