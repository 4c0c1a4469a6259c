"""`--format perfetto` on synthetic event streams: the trace-event JSON a timeline viewer gets."""
import json

from pyliveupdate_controller.processlogs import filters
from pyliveupdate_controller.processlogs.model import Report
from pyliveupdate_controller.processlogs.render_perfetto import render_perfetto, write_perfetto
from support_processlogs import (CALL, LINE, LINE_MARK, RESUME, RETURN, UNWIND, YIELD, Trace,
                                 check_trace_events, web_trace)


def timeline(report, **kw):
    doc = json.loads(render_perfetto(report, **kw))
    return doc, check_trace_events(doc)


def names(slices, cat="function"):
    return [s["name"] for s in slices if s["cat"] == cat]


def test_one_slice_per_call_nested_per_thread_with_thread_and_process_names():
    doc, slices = timeline(web_trace().report())
    assert names(slices).count("polls.views.results") == 10
    assert names(slices).count("django.db.manager.Manager.all") == 20
    assert names(slices).count("django.db.base.Model.__init__") == 1
    first = min((s for s in slices if s["name"] == "polls.views.results"), key=lambda s: s["ts"])
    assert (first["ts"], first["dur"]) == (0.0, 138000.0)      # µs: 0 .. 138 ms
    meta = {(e["name"], e.get("tid")): e["args"]["name"] for e in doc["traceEvents"]
            if e["ph"] == "M" and e["name"] != "process_labels"}
    assert meta[("thread_name", 1005)] == "Thread-5" and meta[("thread_name", 1001)] == "MainThread"
    assert meta[("process_name", None)] == "synthetic (pid 4510)"
    assert {s["tid"] for s in slices if s["name"] == "polls.views.results"} == {1005}


def test_generator_resumes_are_separate_slices_and_suspension_is_not_drawn():
    t = Trace().thread(1, "T").code(1, "consumer").code(2, "gen")
    t.ev(CALL, 0, 1)
    t.ev(CALL, 10, 2).ev(YIELD, 20, 2)
    t.ev(RESUME, 100, 2).ev(YIELD, 130, 2)
    t.ev(RESUME, 500, 2).ev(RETURN, 510, 2)
    t.ev(RETURN, 1000, 1)
    _doc, slices = timeline(t.report())
    gen = sorted((s["ts"], s["dur"], s["args"].get("resumed", False))
                 for s in slices if s["name"] == "pkg.mod.gen")
    assert gen == [(0.01, 0.01, False), (0.1, 0.03, True), (0.5, 0.01, True)]
    assert sum(d for _ts, d, _r in gen) * 1000 == 50          # ns running, not 500


def test_profiled_lines_are_slices_inside_their_call_with_the_source(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("def bar(a):\n    x = foo(a)\n    return x\n")
    t = Trace().thread(1, "T").code(1, "bar", filename=str(src)).code(2, "foo")
    t.ev(CALL, 0, 1).ev(LINE, 5, 1, 2).ev(CALL, 10, 2).ev(RETURN, 40, 2)
    t.ev(LINE, 50, 1, 3).ev(LINE_MARK, 60, 1, 0).ev(RETURN, 70, 1)
    _doc, slices = timeline(t.report())
    lines = sorted((s for s in slices if s["cat"] == "line"), key=lambda s: s["ts"])
    assert [(s["name"], round(s["ts"] * 1000), round(s["dur"] * 1000)) for s in lines] == [
        ("line 2", 5, 45), ("line 3", 50, 10)]
    assert lines[0]["args"]["source"] == "x = foo(a)"
    assert lines[0]["args"]["function"] == "pkg.mod.bar"
    assert names(slices) == ["pkg.mod.foo", "pkg.mod.bar"]   # foo drawn inside line 2


def test_lines_of_a_frame_that_began_before_recording_are_drawn_alone():
    t = Trace().thread(1, "T").code(1, "mainloop")
    t.ev(LINE, 0, 1, 5).ev(LINE, 10, 1, 6).ev(LINE_MARK, 30, 1, 7)
    _doc, slices = timeline(t.report())
    assert [(s["name"], round(s["dur"] * 1000)) for s in slices] == [("line 5", 10), ("line 6", 20)]


def test_debug_output_is_an_instant_event_with_its_text_and_drops_are_marked():
    t = web_trace()
    t.metas.append(("text", 5, 2_500_000, 1, "bar(a=2) -> 4\nsecond line"))
    t.drop(5, 7)
    doc, _slices = timeline(t.report())
    (text,) = [e for e in doc["traceEvents"] if e["ph"] == "i" and e["cat"] == "debug"]
    assert text["name"] == "bar(a=2) -> 4" and text["args"]["text"].endswith("second line")
    assert (text["ts"], text["tid"], text["s"]) == (2500.0, 1005, "t")
    (drop,) = [e for e in doc["traceEvents"] if e["ph"] == "i" and e["cat"] == "drop"]
    assert drop["name"] == "DROPPED 7 records" and drop["tid"] == 1005


def test_slices_open_at_a_drop_are_cut_there_not_nested_under_later_calls():
    t = Trace().thread(1, "T").code(1, "f")
    t.ev(CALL, 0, 1).drop(1, 5)           # f's RETURN was lost
    first = list(t.chunks())
    t.events.clear()
    t.metas.clear()
    t.ev(CALL, 100, 1).ev(RETURN, 110, 1)
    proc = Trace().thread(1, "T").process()
    proc.source = lambda: first + list(t.chunks())
    _doc, slices = timeline(Report([proc]))
    assert [(round(s["ts"] * 1000), round(s["dur"] * 1000), s["args"].get("note")) for s in
            sorted(slices, key=lambda s: s["ts"])] == [
        (0, 0, "cut where records were dropped"), (100, 10, None)]


def test_max_slices_stops_the_timeline_with_a_note():
    report = web_trace().report()
    doc, slices = timeline(report, max_slices=8)
    # eight drawn, plus the calls still open where the cap stopped, cut there
    assert 8 <= len(slices) <= 8 + 3
    assert sum(1 for s in slices if s["args"].get("note") == "cut: --max-slices reached") == \
        len(slices) - 8
    (note,) = doc["otherData"]["notes"]
    assert note.startswith("--max-slices 8: process 4510 drawn up to ")
    assert any(e["ph"] == "i" and e["name"].startswith("--max-slices reached")
               for e in doc["traceEvents"])


def test_time_window_clips_and_thread_filter_selects():
    t = Trace().thread(1, "T").thread(2, "other").code(1, "f").code(2, "g")
    t.ev(CALL, 0, 1).ev(CALL, 40, 2).ev(RETURN, 80, 2).ev(RETURN, 100, 1)
    t.ev(CALL, 200, 2).ev(RETURN, 300, 2).ev(CALL, 10, 1, thread=2).ev(RETURN, 90, 1, thread=2)
    report = t.report(start_ns=50, end_ns=250)
    filters.select_threads(report, ["T"])
    doc, slices = timeline(report)
    got = sorted((s["name"], round(s["ts"] * 1000), round(s["dur"] * 1000)) for s in slices)
    assert got == [("pkg.mod.f", 50, 50), ("pkg.mod.g", 50, 30), ("pkg.mod.g", 200, 50)]
    assert {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"} == {"T"}


def test_processes_line_up_on_one_clock_and_exceptions_close_slices():
    a = Trace(pid=1, start_unix_ns=10**18).thread(1, "A").code(1, "f")
    a.ev(CALL, 0, 1).ev(UNWIND, 1000, 1)
    b = Trace(pid=2, start_unix_ns=10**18 + 5000).thread(1, "B").code(1, "f")
    b.ev(CALL, 0, 1).ev(RETURN, 1000, 1)
    doc, slices = timeline(Report([a.process(), b.process()]))
    assert sorted((s["pid"], s["ts"]) for s in slices) == [(1, 0.0), (2, 5.0)]
    assert doc["otherData"]["start_unix_ns"] == 10**18


def test_the_stream_is_written_incrementally_and_is_one_json_document(monkeypatch):
    from pyliveupdate_controller.processlogs import render_perfetto as module
    monkeypatch.setattr(module._Writer, "FLUSH_EVERY", 5)
    class Sink:
        def __init__(self):
            self.writes = []

        def write(self, text):
            self.writes.append(text)

    sink = Sink()
    notes = write_perfetto(web_trace().report(), sink)
    assert notes == [] and len(sink.writes) > 6
    check_trace_events(json.loads("".join(sink.writes)))
