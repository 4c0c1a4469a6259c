"""Perfetto timelines and pprof profiles of a real recorded workload: counts equal cProfile's,
the timeline is valid trace-event JSON whose slices nest, and pprof decodes with an
independent reader."""
import gzip
import json
import subprocess

import pytest

from pyliveupdate_controller.processlogs import cli, formats
from support_processlogs import CLI, check_trace_events, decode_pprof, profile_workload


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    return profile_workload(tmp_path_factory.mktemp("formats"))


def expected_calls(profiled):
    return {"__main__." + name: n for name, n in profiled["cprofile"].items()}


def test_timeline_has_one_slice_per_call_as_cprofile_counts_them(profiled):
    (path,) = profiled["out"].glob("*.perfetto.json")
    doc = json.loads(path.read_text())
    slices = check_trace_events(doc)
    calls = {}
    for s in slices:
        if s["cat"] == "function" and not s["args"].get("resumed"):
            calls[s["name"]] = calls.get(s["name"], 0) + 1
    assert calls == expected_calls(profiled)
    # the two timed lines of work(): one slice per execution, inside work's slice
    lines = [s for s in slices if s["cat"] == "line"]
    assert sorted({s["args"]["line"] for s in lines}) == profiled["info"]["lines"]
    assert len(lines) == 2 * 30
    assert any("# LINE-B" in s["args"].get("source", "") for s in lines)
    (work,) = [s for s in slices if s["name"] == "__main__.work"]
    wall_us = profiled["info"]["wall"] / 1000
    assert abs(work["dur"] - wall_us) <= 0.05 * wall_us
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert "MainThread" in names
    assert doc["otherData"]["programs"].startswith("workload.py (pid ")


def test_pprof_decodes_and_its_calls_equal_cprofile(profiled, tmp_path):
    (path,) = profiled["out"].glob("*.pb.gz")
    prof = decode_pprof(path.read_bytes(), tmp_path)
    calls = {}
    for stack, (count, _wall), _labels in prof["samples"]:
        calls[stack[0]] = calls.get(stack[0], 0) + count
    assert {k: v for k, v in calls.items() if v} == expected_calls(profiled)
    work_wall = sum(w for stack, (_c, w), _l in prof["samples"] if "__main__.work" in stack)
    wall = profiled["info"]["wall"]
    assert abs(work_wall - wall) <= 0.05 * wall
    assert prof["functions"]["__main__.fib"][0].endswith("workload.py")


def test_large_timelines_are_gzipped(profiled, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(formats, "GZIP_ABOVE_BYTES", 10_000)
    rc = cli.main(["-i", profiled["info"]["path"], "-o", str(tmp_path), "--format", "perfetto"])
    assert rc == 0
    (path,) = tmp_path.iterdir()
    assert path.name.endswith(".perfetto.json.gz")
    assert capsys.readouterr().out.strip() == str(path)
    check_trace_events(json.loads(gzip.decompress(path.read_bytes())))


def test_max_slices_note_reaches_the_operator(profiled):
    out = subprocess.run(CLI + ["-i", profiled["info"]["path"], "-o", "-", "--format",
                                "perfetto", "--max-slices", "100"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "note: --max-slices 100: process" in out.stderr
    doc = json.loads(out.stdout)
    slices = check_trace_events(doc)
    assert 100 <= len(slices) < 100 + 10       # plus the calls open where it stopped
    assert doc["otherData"]["notes"]


def test_pprof_to_stdout_and_bad_max_slices(profiled, tmp_path):
    out = subprocess.run(CLI + ["-i", profiled["info"]["path"], "-o", "-", "--format", "pprof"],
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert decode_pprof(out.stdout, tmp_path)["types"][0] == ("calls", "count")
    bad = subprocess.run(CLI + ["-i", profiled["info"]["path"], "--max-slices", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--max-slices must be at least 1" in bad.stderr
