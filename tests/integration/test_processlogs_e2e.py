"""End to end: a deterministic workload profiled in a real subprocess with the real engine and
recorder, then pylu-processlogs on the log it wrote. Hit counts must equal cProfile's call
counts; the top-level total must match the program's own wall clock within 5%."""
import json
import os
import re
import subprocess
import sys

import pytest

from support_processlogs import CLI, profile_workload


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    return profile_workload(tmp_path_factory.mktemp("e2e"))


def report_json(profiled):
    (path,) = [p for p in profiled["out"].glob("*.json")
               if not p.name.endswith((".speedscope.json", ".perfetto.json"))]
    return json.loads(path.read_text())


def hits_by_function(nodes, acc=None):
    acc = {} if acc is None else acc
    for n in nodes:
        acc[n["function"]] = acc.get(n["function"], 0) + n["hits"]
        hits_by_function(n["children"], acc)
    return acc


def test_hit_counts_equal_cprofile_call_counts(profiled):
    doc = report_json(profiled)
    (proc,) = doc["processes"]
    hits = {}
    for thread in proc["threads"]:
        for fn, h in hits_by_function(thread["children"]).items():
            hits[fn] = hits.get(fn, 0) + h
    expected = {"__main__." + name: n for name, n in profiled["cprofile"].items()}
    assert hits == expected
    assert expected["__main__.fib"] == 30 * 109 and expected["__main__.fail"] == 30


def test_top_level_total_matches_the_programs_wall_clock(profiled):
    doc = report_json(profiled)
    (proc,) = doc["processes"]
    (main,) = [t for t in proc["threads"] if t["children"]]
    (work,) = main["children"]
    assert work["function"] == "__main__.work" and work["hits"] == 1
    wall = profiled["info"]["wall"]
    assert abs(work["total"] - wall) <= 0.05 * wall, (work["total"], wall)
    # inclusive time really includes the callees, self time excludes them
    assert work["self"] == work["total"] - sum(c["total"] for c in work["children"])
    assert not main["open"] and proc["dropped"] == 0 and proc["complete"]


def test_line_report_counts_each_profiled_line(profiled):
    doc = report_json(profiled)
    (fl,) = [f for f in doc["processes"][0]["line_profiles"] if f["function"] == "__main__.work"]
    lines = {entry["line"]: entry for entry in fl["lines"]}
    assert sorted(lines) == profiled["info"]["lines"]
    assert all(entry["hits"] == 30 for entry in lines.values())
    text = next(profiled["out"].glob("*.lines")).read_text()
    assert "Function: __main__.work" in text and "# LINE-B" in text


def test_summary_and_machine_formats_are_written(profiled):
    out = profiled["out"]
    names = sorted(p.name.split(".", 1)[1] for p in out.iterdir())
    assert names == ["folded", "json", "lines", "pb.gz", "perfetto.json", "speedscope.json",
                     "summary", "svg", "text"]
    summary = next(out.glob("*.summary")).read_text()
    row = next(line for line in summary.splitlines() if line.startswith("__main__.work"))
    assert row.split()[1] == "1"
    assert re.search(r"^\s+-__main__\.Square\.__init__\s+15\s", summary, re.M)
    folded = next(out.glob("*.folded")).read_text()
    assert all(re.fullmatch(r"\S.* \d+", line) for line in folded.splitlines())


def test_default_input_is_the_log_directory(profiled, tmp_path):
    env = dict(os.environ, PYLU_LOG_DIR=str(profiled["logs"]))
    cli = subprocess.run(CLI + ["-o", "-", "--format", "json"], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["processes"][0]["path"] == profiled["info"]["path"]


def test_truncated_log_reports_the_complete_part_with_a_warning(profiled, tmp_path):
    data = open(profiled["info"]["path"], "rb").read()
    cut = tmp_path / "cut.pylog"
    cut.write_bytes(data[:len(data) * 2 // 3])
    cli = subprocess.run(CLI + ["-i", str(cut), "-o", "-", "--format", "summary"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "warning" in cli.stderr and str(cut) in cli.stderr
    assert "INCOMPLETE" in cli.stdout and "WARNING" in cli.stdout


def test_corrupted_log_reports_the_complete_part_with_a_warning(profiled, tmp_path):
    data = bytearray(open(profiled["info"]["path"], "rb").read())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    bad = tmp_path / "bad.pylog"
    bad.write_bytes(bytes(data))
    cli = subprocess.run(CLI + ["-i", str(bad), "-o", "-", "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "warning" in cli.stderr
    proc = json.loads(cli.stdout)["processes"][0]
    assert proc["warnings"] and not proc["complete"]


@pytest.mark.parametrize("content", [b"", b"hello, this is not a log\n" * 10,
                                     b"\x89PNG\r\n\x1a\n" + bytes(200)])
def test_empty_or_foreign_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "x.pylog"
    path.write_bytes(content)
    cli = subprocess.run(CLI + ["-i", str(path), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2
    assert str(path) in cli.stderr and "not a pyliveupdate log" in cli.stderr
    assert not (tmp_path / "out").exists()


def test_default_formats_are_summary_svg_and_lines(profiled, tmp_path):
    cli = subprocess.run(CLI + ["-i", profiled["info"]["path"], "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    names = {p.name.split(".", 1)[1] for p in tmp_path.iterdir()}
    assert {"summary", "svg", "lines"} <= names and "json" not in names


def test_a_directory_of_processes_and_the_pid_filter(profiled, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    first = profiled["info"]["path"]
    (logs / os.path.basename(first)).write_bytes(open(first, "rb").read())
    run = subprocess.run([sys.executable, str(profiled["script"]), "record", str(logs)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    cli = subprocess.run(CLI + ["-i", str(logs), "-o", "-", "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    pids = [p["pid"] for p in json.loads(cli.stdout)["processes"]]
    assert len(set(pids)) == 2
    cli = subprocess.run(CLI + ["-i", str(logs), "-o", "-", "--format", "summary",
                                "--pid", str(pids[1])], capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "== process %d" % pids[1] in cli.stdout
    assert "== process %d" % pids[0] not in cli.stdout


def test_time_window_and_thread_filter_on_a_real_log(profiled):
    doc = report_json(profiled)
    t0_unix, t1_unix = profiled["info"]["work_unix"]
    start = (t0_unix - doc["processes"][0]["start_unix_ns"]) / 1e9
    length = (t1_unix - t0_unix) / 1e9
    # the middle of work(): far from its ends compared with any clock difference
    lo, hi = start + 0.25 * length, start + 0.65 * length
    cli = subprocess.run(CLI + ["-i", profiled["info"]["path"], "-o", "-", "--format", "json",
                                "--start", repr(lo), "--end", repr(hi), "--thread", "MainThread"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    doc = json.loads(cli.stdout)
    (thread,) = doc["processes"][0]["threads"]
    assert thread["name"] == "MainThread"
    (work,) = thread["children"]
    # work() runs across the whole window: its slice is clipped to exactly the window, and
    # its call began before the window, so it has no hit inside it
    assert work["total"] == int(hi * 1e9) - int(lo * 1e9) and work["hits"] == 0
    assert any("time window" in note for note in doc["filters"])
    fib_hits = hits_by_function(work["children"]).get("__main__.fib", 0)
    assert 0 < fib_hits < 30 * 109


GENERATORS = r'''
import asyncio, json, sys, time
from pyliveupdate import engine, _engine

def ticker(n):
    for i in range(n):
        yield i

def consume():
    total = 0
    for v in ticker(5):
        time.sleep(0.01)          # the consumer's time, not the generator's
        total += v
    return total

async def waiter():
    await asyncio.sleep(0.02)     # suspended: not charged to waiter
    return 1

async def gather():
    return sum(await asyncio.gather(waiter(), waiter()))

path = _engine.recorder_start(sys.argv[1])
for f in (ticker, consume, waiter):
    engine.arm(1, f.__code__, engine.Request(func_timing=True), module="__main__",
               qualname=f.__qualname__)
consume()
asyncio.run(gather())
engine.disarm(1)
_engine.recorder_stop()
print(json.dumps({"path": path}))
'''


def test_generators_and_coroutines_are_not_charged_while_suspended(tmp_path):
    script = tmp_path / "gens.py"
    script.write_text(GENERATORS)
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    run = subprocess.run([sys.executable, str(script), str(logs)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    path = json.loads(run.stdout.splitlines()[-1])["path"]
    cli = subprocess.run(CLI + ["-i", path, "-o", "-", "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    (thread,) = json.loads(cli.stdout)["processes"][0]["threads"]
    top = {n["function"]: n for n in thread["children"]}
    consume = top["__main__.consume"]
    (ticker,) = consume["children"]
    assert consume["total"] >= 50_000_000                   # five 10 ms sleeps
    assert (ticker["function"], ticker["hits"], ticker["slices"]) == ("__main__.ticker", 1, 6)
    assert ticker["total"] < 25_000_000      # charging its suspensions would give >= 40 ms
    waiter = top["__main__.waiter"]
    assert waiter["hits"] == 2 and waiter["slices"] == 4    # start + resume, twice
    assert waiter["total"] < 20_000_000      # charging the two 20 ms awaits would give >= 40
