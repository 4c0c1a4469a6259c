"""Where logs live and which ones a report covers: the default directory never shadows the
package, reports name their programs, a process's segments read as one log."""
import json
import os
import subprocess
import sys
import textwrap

import pyliveupdate
from pyliveupdate import logdir
from support_processlogs import CLI

RECORD = textwrap.dedent("""
    import json, sys
    from pyliveupdate import engine, recording, _engine

    def handle(n):
        return n * 2

    paths = []
    for calls in [int(c) for c in sys.argv[1:]] or [3]:
        paths.append(recording.ensure_started())
        engine.arm(1, handle.__code__, engine.Request(func_timing=True), module="__main__",
                   qualname="handle")
        for i in range(calls):
            handle(i)
        _engine.recorder_text(1, "after %d calls" % calls)
        engine.disarm(1)
        recording.stop()
    print(json.dumps(paths))
""")


def record(script_dir, name, env, *calls):
    script = script_dir / name
    script.write_text(RECORD)
    out = subprocess.run([sys.executable, str(script), *map(str, calls)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "PYLU_LOG_DIR"}
    env.update(extra)
    return env


def processlogs(*args, env=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=120, env=env)


IMPORTER = "from pyliveupdate import UpdateStub\nprint('imported', UpdateStub.__name__)\n"


def test_a_script_in_the_log_directorys_parent_still_imports_the_package(tmp_path):
    log_dir = tmp_path / os.path.basename(logdir.default_dir())
    (path,) = record(tmp_path, "rec.py", child_env(PYLU_LOG_DIR=str(log_dir)))
    assert os.path.dirname(path) == str(log_dir)
    (tmp_path / "app.py").write_text(IMPORTER)
    ok = subprocess.run([sys.executable, str(tmp_path / "app.py")], capture_output=True,
                        text=True, timeout=60, cwd="/")
    assert ok.returncode == 0 and "imported UpdateStub" in ok.stdout, ok.stderr
    # The old default's name: in an editable install (what ./dev makes) the directory is a
    # namespace portion that shadows the package. This is the failure the new name avoids.
    old = tmp_path / "old"
    old.mkdir()
    record(old, "rec.py", child_env(PYLU_LOG_DIR=str(old / "pyliveupdate")))
    (old / "app.py").write_text(IMPORTER)
    shadowed = subprocess.run([sys.executable, str(old / "app.py")], capture_output=True,
                              text=True, timeout=60, cwd="/")
    editable = not os.path.dirname(pyliveupdate.__file__).startswith(sys.prefix)
    if editable:
        assert shadowed.returncode != 0 and "ImportError" in shadowed.stderr


def test_the_real_default_directory_is_written_and_read_by_default(tmp_path):
    # (A script in /tmp itself is not tried: an old /tmp/pyliveupdate left on the machine
    # by earlier releases would shadow the package whatever this release does.)
    env = child_env(HOME=str(tmp_path), XDG_RUNTIME_DIR="")
    (path,) = record(tmp_path, "rec.py", env)
    try:
        assert os.path.dirname(path) == logdir.default_dir()
        assert os.stat(logdir.default_dir()).st_mode & 0o777 == 0o700
        out = processlogs("-o", "-", "--format", "json", env=env)
        assert out.returncode == 0, out.stderr
        assert path in [p["path"] for p in json.loads(out.stdout)["processes"]]
    finally:
        os.unlink(path)


def test_the_original_tools_log_path_says_where_logs_are_now(tmp_path):
    env = child_env(PYLU_LOG_DIR=str(tmp_path / "logs"))
    for legacy in ("/tmp/pyliveupdate.log", str(tmp_path / "pyliveupdate.log")):
        out = processlogs("-i", legacy, "-o", str(tmp_path / "out"), env=env)
        assert out.returncode == 2
        assert "original PyLiveUpdate" in out.stderr and str(tmp_path / "logs") in out.stderr
    (tmp_path / "pyliveupdate.log").write_text("2021-01-01 bar 0.1\n")   # its text format
    out = processlogs("-i", str(tmp_path / "pyliveupdate.log"), env=env)
    assert out.returncode == 2 and "not a pyliveupdate log" in out.stderr
    assert "original PyLiveUpdate" in out.stderr


def test_reports_name_their_programs_and_program_filters(tmp_path):
    logs = tmp_path / "logs"
    env = child_env(PYLU_LOG_DIR=str(logs))
    (alpha,) = record(tmp_path, "alpha.py", env)
    (beta,) = record(tmp_path, "beta.py", env)
    out = processlogs("-i", str(logs), "-o", "-", "--format", "summary")
    assert out.returncode == 0, out.stderr
    pid = {name: int(os.path.basename(p).split("-")[1]) for name, p in
           (("alpha", alpha), ("beta", beta))}
    programs = sorted(["alpha.py (pid %d)" % pid["alpha"], "beta.py (pid %d)" % pid["beta"]])
    assert "2 logs of " in out.stderr
    assert all(p in out.stderr and p in out.stdout for p in programs)
    for wanted in ("beta", "beta.py", "b*"):
        out = processlogs("-i", str(logs), "-o", "-", "--format", "json", "--program", wanted)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert [p["pid"] for p in doc["processes"]] == [pid["beta"]]
        assert doc["programs"] == {"beta.py": [pid["beta"]]}
    out = processlogs("-i", str(logs), "--program", "gamma", "-o", str(tmp_path / "out"))
    assert out.returncode == 2 and "no process of program gamma" in out.stderr
    assert all(p in out.stderr for p in programs) and not (tmp_path / "out").exists()


SEGMENTED = textwrap.dedent("""
    import json, random, sys
    from pyliveupdate import engine, _engine, _reader

    def handle(n):
        return n * 2

    path = _engine.recorder_start(sys.argv[1], segment_bytes=64 * 1024, budget=1 << 30)
    engine.arm(1, handle.__code__, engine.Request(func_timing=True), module="__main__",
               qualname="handle")
    for i in range(3):
        handle(i)
    _engine.recorder_text(1, "after 3 calls")
    # Records that compress poorly, in a frame of their own code, so that the log is cut
    # into several segments between the two batches of calls.
    _engine.recorder_describe_code(7, "noise", "/src/noise.py", 1, "noise")
    rnd = random.Random(5)
    _engine.recorder_emit(1, 7, 0)
    for i in range(300_000):
        _engine.recorder_emit(6, 7, rnd.randrange(1, 1 << 20))
        if i % 20000 == 0:
            _engine.recorder_flush()
    _engine.recorder_emit(3, 7, 0)
    for i in range(4):
        handle(i)
    _engine.recorder_text(1, "after 4 calls")
    engine.disarm(1)
    _engine.recorder_stop()
    print(json.dumps(_reader.log_segments(path)))
""")


def _hits(proc, function):
    (thread,) = proc["threads"]
    return sum(c["hits"] for c in thread["children"] if c["function"] == function)


def test_a_processs_segments_are_read_as_one_log(tmp_path):
    logs = tmp_path / "logs"
    os.mkdir(logs, 0o700)
    script = tmp_path / "seg.py"
    script.write_text(SEGMENTED)
    run = subprocess.run([sys.executable, str(script), str(logs)], capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    segments = json.loads(run.stdout.splitlines()[-1])
    assert len(segments) >= 3, segments          # rotation really happened
    out = processlogs("-i", str(logs), "-o", "-", "--format", "json")
    assert out.returncode == 0, out.stderr
    (proc,) = json.loads(out.stdout)["processes"]
    assert proc["segments"] == segments and proc["complete"]
    assert _hits(proc, "__main__.handle") == 7
    text = processlogs("-i", str(logs), "-o", "-", "--format", "text")
    stamps = [float(line.split("]")[0].strip("[ ")) for line in text.stdout.splitlines()
              if "after" in line]
    assert len(stamps) == 2 and stamps[0] < stamps[1]     # one clock across segments
    # the disk budget deleted the oldest segment: the rest is still read, and it is said
    os.unlink(segments[0])
    out = processlogs("-i", str(logs), "-o", "-", "--format", "json")
    assert out.returncode == 0, out.stderr
    (proc,) = json.loads(out.stdout)["processes"]
    assert _hits(proc, "__main__.handle") == 4
    assert "segment(s) 0 of this log were deleted" in out.stderr
