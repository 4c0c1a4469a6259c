"""`--format pprof` decoded by an independent reader (Google's protobuf runtime)."""
import pytest

from pyliveupdate_controller.processlogs.model import Report
from pyliveupdate_controller.processlogs.protowire import Message, varint
from pyliveupdate_controller.processlogs.render_pprof import render_pprof
from support_processlogs import CALL, RETURN, Trace, decode_pprof, web_trace


@pytest.fixture(scope="module")
def proto_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("proto")


def test_sample_types_call_stacks_counts_and_self_times(proto_dir):
    (data,) = render_pprof(web_trace().report()).values()
    prof = decode_pprof(data, proto_dir)
    assert prof["types"] == [("calls", "count"), ("wall", "nanoseconds")]
    assert prof["default"] == "wall" and prof["period_type"] == ("wall", "nanoseconds")
    by_stack = {stack: (values, labels) for stack, values, labels in prof["samples"]}
    results = ("polls.views.results",)
    manager = ("django.db.manager.Manager.all",) + results
    query = ("django.db.query.Query.__init__",) + manager
    assert by_stack[results][0] == [10, 1_380_000_000 - 260_000_000]
    assert by_stack[manager][0] == [20, 240_000_000]
    assert by_stack[query] == ([20, 20_000_000], {"pid": 4510, "thread": "Thread-5"})
    # wall summed over every sample is the recorded time of all threads: nothing twice
    assert sum(v[1] for _s, v, _l in prof["samples"]) == 1_385_000_000
    assert prof["functions"]["polls.views.results"] == ("/src/pkg/mod.py", 1)
    assert prof["time"] == 1_700_000_000_000_000_000
    assert any("every recorded call" in c for c in prof["comments"])


def test_one_profile_per_process_or_merged(proto_dir):
    a = Trace(pid=11).thread(1, "A").code(1, "f").ev(CALL, 0, 1).ev(RETURN, 10, 1)
    b = Trace(pid=12).thread(1, "B").code(1, "f").ev(CALL, 0, 1).ev(RETURN, 30, 1)
    b.drop(1, 4)
    report = Report([a.process(), b.process()])
    files = render_pprof(report, merge=False)
    assert sorted(files) == [".11", ".12"]
    second = decode_pprof(files[".12"], proto_dir)
    assert [(s, v) for s, v, _l in second["samples"]] == [(("pkg.mod.f",), [1, 30])]
    assert any(c.startswith("DROPPED: 4 records lost in process 12") for c in second["comments"])
    merged = decode_pprof(render_pprof(report, merge=True)[""], proto_dir)
    assert sorted((lb["pid"], v) for _s, v, lb in merged["samples"]) == [(11, [1, 10]),
                                                                         (12, [1, 30])]


def test_wire_format_basics():
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    msg = Message().integer(1, 150).integer(2, 0).text(3, "hi").packed(4, [3, 270])
    assert msg.encode() == b"\x08\x96\x01" + b"\x1a\x02hi" + b"\x22\x03\x03\x8e\x02"
