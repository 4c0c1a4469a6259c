"""The bench's own machinery (bench/): a measured run in a fresh process, the pairing
arithmetic, and the hand-added print peer, so `./dev bench` does not rot unseen."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
