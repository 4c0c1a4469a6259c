"""The bench's own machinery (bench/): a measured run in a fresh process, the pairing
arithmetic, and the hand-added print peer, so `./dev bench` does not rot unseen."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)

import harness  # noqa: E402


def test_child_times_units_in_a_fresh_process(tmp_path):
    result = tmp_path / "result.json"
    spec = {"workload": "loop", "variant": "control", "repeat": 3, "warmup": 1}
    done = subprocess.run([sys.executable, os.path.join(BENCH, "child.py"), json.dumps(spec),
                           str(result)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(result.read_text())
    assert len(data["units_cpu"]) == 3 and len(data["units_wall"]) == 3
    assert all(t > 0 for t in data["units_cpu"] + data["units_wall"])


def test_child_reports_an_unknown_variant_as_an_error(tmp_path):
    result = tmp_path / "result.json"
    spec = {"workload": "loop", "variant": "no_such_tool", "repeat": 1}
    done = subprocess.run([sys.executable, os.path.join(BENCH, "child.py"), json.dumps(spec),
                           str(result)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "unknown variant 'no_such_tool'" in json.loads(result.read_text())["error"]


def test_paired_rounds_alternate_and_summarise():
    calls = []

    def base():
        calls.append("b")
        return 1.0

    def tool():
        calls.append("t")
        return 2.0 + 0.5 * len(calls)

    out = harness.paired_rounds(base, tool, 3)
    assert calls == ["b", "t", "t", "b", "b", "t"]  # odd rounds run the tool first
    assert [r["ratio"] for r in out["rounds"]] == [3.0, 3.5, 5.0]
    assert (out["median"], out["min"], out["max"], out["n"]) == (3.5, 3.0, 5.0, 3)


def test_cells_compare_each_tool_run_with_its_neighbouring_baselines():
    class FakeRunner:
        def __init__(self):
            self.order, self.last_info, self.base = [], {}, 1.0

        def run(self, workload, variant, repeat, warmup=None):
            self.order.append(variant)
            if variant == "control":
                self.base += 1.0  # a drifting machine: 2, 3, ...
                return {"cpu": self.base, "wall": self.base}
            return {"cpu": 10.0, "wall": 10.0}

    runner = FakeRunner()
    cells = harness.Cells(runner, "loop", ["a", "b", "c", "d"], repeat=3)
    cells.run_round(0)
    assert runner.order == ["control", "a", "b", "c", "control", "d", "control"]
    result = cells.results()
    assert result["a"]["median"] == pytest.approx(10.0 / 2.5)   # mean of 2 and 3
    assert result["d"]["median"] == pytest.approx(10.0 / 3.5)   # mean of 3 and 4


def test_hand_print_keeps_behaviour_and_prints_at_the_rate_limit(capsys):
    import workloads
    from peers.hand_print import HandPrint
    workload = workloads.load("fib")
    before = workload.hot(15)
    peer = HandPrint(workload)
    peer.start()
    assert workload.hot(15) == before  # same results after the edit
    lines = peer.stop()["lines"]
    out = capsys.readouterr().out
    assert out.startswith("fib called 15")
    # 1973 calls and 1973 returns, 100 lines a second at most: the gate drops nearly all.
    assert 1 <= lines < 100 and out.count("\n") == lines


def test_other_benches_table_says_missed_failed_and_incomplete():
    import report_others
    targets = {"sustained_events_per_s": 10e6, "bytes_per_event": 2.5,
               "reader_events_per_s": 20e6, "added_ns_per_event": 12.0}
    others = {
        "bench_recording": {"seconds": 9.0, "json": {
            "summary": {"sustained_events_per_s": 5e6, "bytes_per_event": 1.0,
                        "reader_events_per_s": 40e6, "flusher_events_per_cpu_s": 5e7,
                        "targets": targets},
            "callback": {"added_ns_per_event": 8.0, "spread": {"min": 6.0, "max": 9.0},
                         "producer_pinned": True}}},
        "bench_update": {"error": "exit 1: boom | bang"},
        "bench_processlogs": {"seconds": 1.0, "json": {"unexpected": 1}},
        "bench_engine": {"missing": True},
    }
    md = "\n".join(report_others.render(others))
    assert "| recording: sustained events/s with zero drops, one producer | " \
           "5.0 M/s | ≥ 10.0 M/s | **missed** |" in md
    assert "(producer pinned) | 8.0 ns (6.0–9.0) | ≤ 12 ns | met |" in md
    assert "| `bench/bench_update.py` | failed: exit 1: boom / bang |" in md
    assert "`bench/bench_processlogs.py` | its JSON lacks 'summary_events_per_s_median'" in md
    assert "| `bench/bench_engine.py` | missing |" in md
