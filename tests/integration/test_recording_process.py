"""Process-level behaviour: SIGKILL, fork, a full disk, and where logs may go."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pyliveupdate import recording
from support_recorder import Log, logs_in, private_dir, run_child


def test_sigkill_leaves_a_log_readable_to_its_last_frame(tmp_path):
    d = private_dir(tmp_path / "logs")
    code = textwrap.dedent(f"""
        import sys, time
        from pyliveupdate import _engine as e
        e.recorder_describe_code(4, "loop", "<child>", 1, "__main__")
        e.recorder_start({d!r}, frame_ms=20)
        j = 0
        while True:
            j += 1
            e.recorder_emit(6, 4, j)
            if j % 1000 == 0:
                time.sleep(0.001)   # paced, so a starved flusher never forces drops here
            if j == 20000:
                e.recorder_flush()
                print("FLUSHED", j, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("FLUSHED"), line
        flushed = int(line.split()[1])
        (path,) = logs_in(d)
        # let a few more frames reach the file, then kill without warning
        size = os.path.getsize(path)
        while os.path.getsize(path) < size + 2000 and child.poll() is None:
            os.sched_yield()
        time.sleep(0.15)   # several frame_ms periods: at least one more frame is complete
        assert child.poll() is None, "the child died before it was killed"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        child.kill()
        child.stdout.close()
    log = Log(path)
    assert not log.complete
    assert log.error is None or log.error.startswith("truncated at byte")
    lines = [e[5] for e in log.events]
    assert len(lines) > flushed
    assert not log.drops_per_thread()
    assert lines == list(range(1, len(lines) + 1))   # an exact prefix: nothing lost or doubled
    assert log.codes()[4][0] == "loop"


def test_fork_mid_recording_gives_two_complete_logs(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, os, sys
        from pyliveupdate import _engine as e
        e.recorder_describe_code(1, "before", "f.py", 1, "m")
        e.recorder_describe_code(2, "child", "f.py", 2, "m")
        e.recorder_describe_code(3, "parent", "f.py", 3, "m")
        parent_log = e.recorder_start({d!r}, flush_ms=50)
        for j in range(30000):
            e.recorder_emit(6, 1, j + 1)      # some still in the ring at fork time
        pid = os.fork()
        if pid == 0:
            for j in range(20000):
                e.recorder_emit(6, 2, j + 1)
            child_log = e.recorder_stats()["path"]
            e.recorder_stop()
            print(json.dumps(["child", child_log, e.recorder_stats()]), flush=True)
            os._exit(0)
        for j in range(10000):
            e.recorder_emit(6, 3, j + 1)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        e.recorder_stop()
        print(json.dumps(["parent", parent_log, e.recorder_stats()]), flush=True)
    """)
    assert out.returncode == 0, out.stderr
    reports = {r[0]: r for r in map(json.loads, out.stdout.splitlines())}
    parent_path, child_path = reports["parent"][1], reports["child"][1]
    assert parent_path != child_path
    assert sorted(logs_in(d)) == sorted([parent_path, child_path])
    parent, child = Log(parent_path), Log(child_path)
    assert parent.complete and child.complete
    assert parent.error is None and child.error is None
    assert child.header["pid"] != parent.header["pid"]

    def lines_of(log, code):
        return [e[5] for e in log.events if e[4] == code]
    assert lines_of(parent, 1) == list(range(1, 30001))
    assert lines_of(parent, 3) == list(range(1, 10001))
    assert lines_of(parent, 2) == []
    assert lines_of(child, 2) == list(range(1, 20001))
    assert lines_of(child, 1) == [] and lines_of(child, 3) == []
    assert set(child.codes()) == {1, 2, 3}     # the code table follows into the child's log
    assert not parent.drops_per_thread() and not child.drops_per_thread()


def test_full_disk_stops_recording_not_the_program(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, random, resource
        from pyliveupdate import _engine as e
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        e.recorder_start({d!r}, frame_ms=10)
        rnd = random.Random(1)
        for j in range(300000):
            e.recorder_emit(6, rnd.randrange(1 << 30), rnd.randrange(1 << 27))
        e.recorder_flush()
        stats = e.recorder_stats()
        total = sum(range(1000))                  # the program carries on
        e.recorder_stop()
        print(json.dumps([stats, e.recorder_active(), total]))
    """)
    assert out.returncode == 0, out.stderr
    stats, active, total = json.loads(out.stdout)
    assert total == 499500 and active is False
    assert "write failed" in stats["error"] and "File too large" in stats["error"]
    assert "pyliveupdate: recording stopped:" in out.stderr
    assert stats["bytes_written"] <= 100_000
    (path,) = logs_in(d)
    log = Log(path)
    assert not log.complete
    assert len(log.events) <= stats["events"]


# ---- log directory policy -------------------------------------------------------------

@pytest.fixture
def fallback_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PYLU_LOG_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    os.makedirs(tmp_path / "xdg", mode=0o700)
    return str(tmp_path / "xdg" / "pylu-logs")


def test_a_new_directory_is_created_private(tmp_path, fallback_home):
    wanted = str(tmp_path / "fresh")
    chosen, refusals = recording.choose_directory(wanted)
    assert chosen == wanted and refusals == []
    assert os.stat(wanted).st_mode & 0o777 == 0o700


def test_environment_variable_chooses_the_directory(tmp_path, monkeypatch, fallback_home):
    monkeypatch.setenv("PYLU_LOG_DIR", str(tmp_path / "from_env"))
    assert recording.choose_directory() == (str(tmp_path / "from_env"), [])


def test_symlink_is_refused(tmp_path, fallback_home):
    real = private_dir(tmp_path / "real")
    os.symlink(real, tmp_path / "link")
    chosen, refusals = recording.choose_directory(str(tmp_path / "link"))
    assert chosen == fallback_home
    assert refusals == ["refusing log directory %s: it is a symlink" % (tmp_path / "link")]


def test_directory_of_another_user_is_refused(tmp_path, fallback_home):
    other = private_dir(tmp_path / "other")
    os.chown(other, 12345, 12345)
    chosen, refusals = recording.choose_directory(other)
    assert chosen == fallback_home
    assert "owned by uid 12345" in refusals[0]


def test_group_writable_directory_is_refused(tmp_path, fallback_home):
    shared = private_dir(tmp_path / "shared")
    os.chmod(shared, 0o777)
    chosen, refusals = recording.choose_directory(shared)
    assert chosen == fallback_home
    assert "writable by group or others" in refusals[0]


def test_no_safe_place_at_all_is_a_clear_error(tmp_path, monkeypatch):
    bad = private_dir(tmp_path / "bad")
    os.chmod(bad, 0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg_missing_parent" / "x"))
    home = private_dir(tmp_path / "home")
    os.symlink(tmp_path, os.path.join(home, ".cache"))
    os.symlink(tmp_path, tmp_path / "pylu-logs")
    monkeypatch.setenv("HOME", home)
    with pytest.raises(recording.RecordingError, match="no safe log directory"):
        recording.choose_directory(bad)


def test_ensure_started_falls_back_and_says_so(tmp_path):
    real = private_dir(tmp_path / "real")
    os.symlink(real, tmp_path / "planted")
    xdg = private_dir(tmp_path / "xdg")
    out = run_child("""
        import json
        from pyliveupdate import recording, _engine as e
        p = recording.ensure_started()
        assert recording.ensure_started() == p      # idempotent
        e.recorder_emit(1, 1, 0)
        assert recording.log_path() == p
        recording.stop()
        assert recording.log_path() is None
        print(json.dumps([p, recording.stats()["events"]]))
    """, env={"PYLU_LOG_DIR": str(tmp_path / "planted"), "XDG_RUNTIME_DIR": xdg})
    assert out.returncode == 0, out.stderr
    path, events = json.loads(out.stdout)
    assert os.path.dirname(path) == os.path.join(xdg, "pylu-logs") and events == 1
    assert "refusing log directory %s: it is a symlink" % (tmp_path / "planted") in out.stderr
    assert os.listdir(real) == []


def test_deleted_log_directory_stops_recording_with_a_report(tmp_path):
    d = private_dir(tmp_path / "logs")
    other = private_dir(tmp_path / "other")
    out = run_child(f"""
        import json, shutil
        from pyliveupdate import _engine as e, recording
        first = recording.ensure_started({d!r})
        e.recorder_emit(1, 1, 0)
        e.recorder_flush()
        shutil.rmtree({d!r})
        e.recorder_emit(3, 1, 0)
        e.recorder_flush()
        stats = e.recorder_stats()
        second = recording.ensure_started({other!r})   # a fresh log elsewhere works
        e.recorder_emit(1, 2, 0)
        recording.stop()
        print(json.dumps([stats, e.recorder_stats(), first, second]))
    """)
    assert out.returncode == 0, out.stderr
    stats, stats2, first, second = json.loads(out.stdout)
    assert stats["active"] is False and stats["error"].endswith("the log file was deleted")
    assert "pyliveupdate: recording stopped:" in out.stderr
    assert not os.path.exists(d) and os.path.dirname(second) == other
    assert stats2["error"] is None and stats2["events"] == 1
    assert len(Log(second).events) == 1


def test_short_lived_threads_are_freed_and_counted(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, threading
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r}, ring_slots=256, flush_ms=1)
        def work(i):
            for j in range(100):
                e.recorder_emit(1, i, j)
        for batch in range(20):
            ts = [threading.Thread(target=work, args=(batch * 10 + k,)) for k in range(10)]
            [t.start() for t in ts]
            [t.join() for t in ts]
        e.recorder_stop()
        print(json.dumps([path, e.recorder_stats()]))
    """)
    assert out.returncode == 0, out.stderr
    path, stats = json.loads(out.stdout)
    log = Log(path)
    assert stats["threads"] == 200 and len(log.threads()) == 200
    assert len(log.events) + stats["dropped"] == 200 * 100
    assert len(log.events) == stats["events"]
