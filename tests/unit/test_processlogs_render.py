"""Renderers and filters on synthetic profiles: what a reader or another tool gets."""
import json
import json.scanner
import re
import xml.etree.ElementTree as ET

from pyliveupdate_controller.processlogs import filters
from pyliveupdate_controller.processlogs.lines import render_lines
from pyliveupdate_controller.processlogs.render_folded import render_folded
from pyliveupdate_controller.processlogs.render_json import render_json
from pyliveupdate_controller.processlogs.render_speedscope import render_speedscope
from pyliveupdate_controller.processlogs.render_summary import render_summary
from pyliveupdate_controller.processlogs.render_svg import render_svg
from support_processlogs import CALL, LINE, LINE_MARK, RETURN, Trace, find, web_trace

SVG = "{http://www.w3.org/2000/svg}"


def test_summary_shows_per_hit_time_total_self_and_sorted_threads():
    text = render_summary(web_trace().report())
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("polls.views.results"))
    name, hits, per_hit, total, self_ms, share = row.split()
    # per hit is really per hit: total / hits
    assert int(hits) == 10 and abs(float(per_hit) * 10 - float(total)) < 0.01
    assert float(total) == 1380.0 and float(self_ms) == 1380.0 - 260.0
    child = next(line for line in lines if "-django.db.manager.Manager.all" in line)
    assert child.startswith("  -") and child.split()[1] == "20"
    assert "-django.db.query.Query.__init__" in text
    # the busiest thread comes first, each with its process key
    assert text.index("4510-Thread-5") < text.index("4510-MainThread")


def test_summary_reports_drops_and_open_frames():
    text = render_summary(web_trace().drop(5, 12).report())
    assert "DROPPED: 12 records lost on this thread" in text
    t = web_trace()
    t.ev(CALL, 10**10, 1, thread=5).ev(CALL, 10**10 + 10**6, 2, thread=5)
    t.ev(RETURN, 10**10 + 3 * 10**6, 2, thread=5).ev(LINE_MARK, 10**10 + 5 * 10**6, 1, 0, 5)
    text = render_summary(t.report())
    assert ("still running at end of log: polls.views.results (started at 10000.000 ms; its "
            "5.000 ms so far are included above)") in text
    row = next(line for line in text.splitlines() if line.startswith("polls.views.results"))
    assert row.split()[:6] == ["polls.views.results", "10", "(+1", "running)", "138.000",
                               "1385.000"]


def test_folded_values_are_integer_self_times_that_sum_to_the_thread_total():
    report = web_trace().report()
    folded = render_folded(report)
    per_thread = {}
    for line in folded.splitlines():
        stack, value = line.rsplit(" ", 1)
        assert re.fullmatch(r"\d+", value), line
        per_thread[stack.split(";")[0]] = per_thread.get(stack.split(";")[0], 0) + int(value)
    totals = {t.key: t.total for t in report.processes[0].threads}
    assert per_thread == totals
    assert "4510-Thread-5;polls.views.results;django.db.manager.Manager.all 240000000" in folded


def test_json_tree_has_the_documented_fields():
    doc = json.loads(render_json(web_trace().report()))
    (proc,) = doc["processes"]
    thread = next(t for t in proc["threads"] if t["name"] == "Thread-5")
    (results,) = thread["children"]
    assert {k: results[k] for k in ("function", "file", "line", "hits", "total")} == {
        "function": "polls.views.results", "file": "/src/pkg/mod.py", "line": 1,
        "hits": 10, "total": 1_380_000_000}
    (manager,) = results["children"]
    assert manager["hits"] == 20 and manager["self"] == 240_000_000
    assert manager["children"][0]["function"] == "django.db.query.Query.__init__"


def test_speedscope_profile_per_thread_with_self_weights():
    report = web_trace().report()
    doc = json.loads(render_speedscope(report))
    assert doc["$schema"].endswith("file-format-schema.json")
    names = {p["name"]: p for p in doc["profiles"]}
    prof = names["4510-Thread-5"]
    assert prof["type"] == "sampled" and sum(prof["weights"]) == 1_380_000_000
    assert len(prof["samples"]) == len(prof["weights"])
    frames = doc["shared"]["frames"]
    assert all(0 <= i < len(frames) for s in prof["samples"] for i in s)


def test_svg_widths_are_inclusive_and_children_fit_in_their_parent():
    svg = render_svg(web_trace().report())
    root = ET.fromstring(svg)
    frames = root.findall(".//%sg[@class='f']" % SVG)
    by_name = {g.get("data-n"): g for g in frames}
    assert {"all", "4510-Thread-5", "4510-MainThread", "polls.views.results",
            "django.db.manager.Manager.all"} <= set(by_name)
    total = int(root.get("data-total"))
    assert int(by_name["all"].get("data-w")) == total == 1_385_000_000
    results, manager = by_name["polls.views.results"], by_name["django.db.manager.Manager.all"]
    assert int(results.get("data-w")) == 1_380_000_000
    assert int(manager.get("data-x")) >= int(results.get("data-x"))
    assert int(manager.get("data-x")) + int(manager.get("data-w")) <= \
        int(results.get("data-x")) + int(results.get("data-w"))
    tip = results.find(SVG + "title").text
    assert tip.startswith("polls.views.results (1,380.000 ms, 99.64%")


def test_svg_escapes_names():
    t = Trace().thread(1, "T").code(1, "<lambda>", module="a&b").ev(CALL, 0, 1).ev(RETURN, 9, 1)
    root = ET.fromstring(render_svg(t.report()))
    assert any(g.get("data-n") == "a&b.<lambda>" for g in root.iter(SVG + "g"))


def test_line_report_shows_source_hits_and_percent(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("def bar(a):\n    x = a + 1\n    y = x * 2\n    return y\n\nafter = 1\n")
    t = Trace().thread(1, "T").code(1, "bar", filename=str(src), firstlineno=1)
    for i in range(4):
        base = i * 100
        t.ev(CALL, base, 1).ev(LINE, base + 1, 1, 2).ev(LINE, base + 31, 1, 3)
        t.ev(LINE, base + 91, 1, 4).ev(RETURN, base + 101, 1)
    text = render_lines(t.report())
    rows = {int(r.split()[0]): r for r in text.splitlines() if re.match(r"\s+\d+ ", r)}
    assert sorted(rows) == [1, 2, 3, 4]          # the function's block, not the next statement
    assert rows[2].split()[:2] == ["2", "4"] and rows[2].rstrip().endswith("x = a + 1")
    assert rows[3].split()[4] == "60.0"          # 240 of 400 ns
    assert "Function: pkg.mod.bar" in text and "Total time: 0.000000400 s" not in text


def test_filters_min_percent_top_and_thread():
    report = web_trace().report()
    filters.min_percent(report, 2.0)
    thread5 = next(t for t in report.processes[0].threads if t.name == "Thread-5")
    manager = find(thread5, "polls.views.results", "django.db.manager.Manager.all")
    assert manager.children == []               # Query.__init__ is 20 ms of 1385 ms
    report = web_trace().report()
    filters.top(report, 0)
    filters.select_threads(report, ["Thread-5"])
    assert [t.name for t in report.processes[0].threads] == ["Thread-5"]
    assert "threads: Thread-5" in render_summary(report)


def test_text_output_in_log_order_with_thread_names():
    from pyliveupdate_controller.processlogs.render_text import render_text
    t = web_trace()
    t.metas.append(("text", 5, 2_500_000, 1, "bar(a=2) -> 4"))
    t.metas.append(("text", 1, 3_000_000, 2, "line one\nline two"))
    text = render_text(t.report())
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "bar(a=2)" in line)
    assert lines[first] == "[       2.500] 4510-Thread-5 debug: bar(a=2) -> 4"
    assert lines[first + 1].endswith("4510-MainThread handler: line one")
    assert lines[first + 2].strip() == "line two"


def test_very_deep_recursion_renders_in_every_format():
    import sys
    from pyliveupdate_controller.processlogs.formats import FORMATS, Options
    depth = 1200        # deeper than the default recursion limit; folded output is O(depth**2)
    t = Trace().thread(1, "T").code(1, "rec")
    for d in range(depth):
        t.ev(CALL, d, 1)
    for d in range(depth):
        t.ev(RETURN, depth + d, 1)
    report = t.report()
    outputs = {name: fmt.render(report, Options()) for name, fmt in FORMATS.items()}
    assert outputs["folded"].count("\n") == depth
    assert outputs["perfetto"].count('"ph":"X"') == depth
    assert outputs["summary"].count("pkg.mod.rec") == depth
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(10 * depth)
    # the C scanner has a fixed nesting limit on 3.12; the pure-Python one follows the limit
    decoder = json.JSONDecoder()
    decoder.scan_once = json.scanner.py_make_scanner(decoder)
    try:
        node = decoder.decode(outputs["json"])["processes"][0]["threads"][0]["children"][0]
    finally:
        sys.setrecursionlimit(old)
    levels = 0
    while node["children"]:
        (node,) = node["children"]
        levels += 1
    assert levels == depth - 1 and node["total"] == 1


def test_summary_flat_table_sums_call_paths_without_double_counting_recursion():
    from pyliveupdate_controller.processlogs.render_summary import flat_profile
    t = Trace().thread(1, "T").code(1, "main").code(2, "walk").code(3, "leaf")
    t.ev(CALL, 0, 1)
    t.ev(CALL, 10, 2).ev(CALL, 20, 2).ev(CALL, 30, 3).ev(RETURN, 40, 3)   # walk > walk > leaf
    t.ev(RETURN, 50, 2).ev(RETURN, 60, 2)
    t.ev(CALL, 70, 3).ev(RETURN, 75, 3)                                   # main > leaf
    t.ev(RETURN, 100, 1)
    report = t.report()
    rows = {name: (hits, total, self_ns) for name, hits, total, self_ns
            in flat_profile(report.processes[0].threads[0])}
    assert rows["pkg.mod.walk"] == (2, 50, 40)       # outer call only for the total
    assert rows["pkg.mod.leaf"] == (2, 15, 15)
    assert rows["pkg.mod.main"] == (1, 100, 45)
    text = render_summary(report)
    assert "top 3 functions by self time" in text
    table = text[text.index("top 3 functions"):].splitlines()
    assert table[2].startswith("pkg.mod.main") and table[3].startswith("pkg.mod.walk")


def request_threads_trace():
    t = Trace(pid=7).thread(1, "MainThread").code(1, "do_GET").code(2, "quote").code(3, "serve")
    t.ev(CALL, 0, 3, thread=1).ev(RETURN, 1000, 3, thread=1)
    for n in range(2, 6):           # one thread per request, as ThreadingHTTPServer does
        t.thread(n, "Thread-%d (process_request_thread)" % (100 + n))
        base = n * 100
        t.ev(CALL, base, 1, thread=n).ev(CALL, base + 10, 2, thread=n)
        t.ev(RETURN, base + 10 + n, 2, thread=n).ev(RETURN, base + 50, 1, thread=n)
    return t


def test_thread_families_merge_by_name_each_and_all():
    report = request_threads_trace().report()
    filters.merge_threads(report, "name")
    threads = {t.name: t for t in report.processes[0].threads}
    assert sorted(threads) == ["MainThread", "Thread-* (process_request_thread) [4 threads]"]
    merged = threads["Thread-* (process_request_thread) [4 threads]"]
    do_get = find(merged, "pkg.mod.do_GET")
    assert (do_get.hits, do_get.total) == (4, 200)
    assert (find(do_get, "pkg.mod.quote").hits, find(do_get, "pkg.mod.quote").total) == (4, 14)
    assert "7-Thread-* (process_request_thread) [4 threads]  total 0.000 ms" in \
        render_summary(report)

    report = request_threads_trace().report()
    filters.merge_threads(report, "each")
    assert len(report.processes[0].threads) == 5

    report = request_threads_trace().report()
    filters.merge_threads(report, "all")
    (only,) = report.processes[0].threads
    assert only.total == 1200 and [c.function for c in only.root.children] == [
        "pkg.mod.serve", "pkg.mod.do_GET"]


def test_summary_tells_apart_two_codes_with_one_name():
    t = Trace().thread(1, "T").code(1, "main").code(2, "quote", firstlineno=77)
    t.code(3, "quote", filename="/tmp/patch.py", firstlineno=3)      # after a hot patch
    t.ev(CALL, 0, 1).ev(CALL, 1, 2).ev(RETURN, 5, 2).ev(CALL, 6, 3).ev(RETURN, 8, 3)
    t.ev(RETURN, 10, 1)
    text = render_summary(t.report())
    assert "-pkg.mod.quote (/src/pkg/mod.py:77)" in text
    assert "-pkg.mod.quote (/tmp/patch.py:3)" in text
    assert "pkg.mod.main " in text


def test_a_log_without_events_renders_everywhere():
    from pyliveupdate_controller.processlogs.formats import FORMATS, Options
    report = Trace().report()
    outputs = {name: fmt.render(report, Options()) for name, fmt in FORMATS.items()}
    assert "no recorded calls" in outputs["svg"] and outputs["folded"] == ""
    ET.fromstring(outputs["svg"])
    assert json.loads(outputs["json"])["processes"][0]["threads"] == []
    assert not [e for e in json.loads(outputs["perfetto"])["traceEvents"] if e["ph"] == "X"]


def test_flamegraph_labels_cut_the_module_path_and_keep_the_functions_own_name():
    from pyliveupdate_controller.processlogs.render_svg import fit_label
    name = "django.core.handlers.exception.convert_exception_to_response.<locals>.inner"
    assert fit_label(name, 200) == name
    assert fit_label(name, 55) == "\u2026exception.convert_exception_to_response.<locals>.inner"
    assert fit_label(name, 30) == "\u2026<locals>.inner"
    assert fit_label(name, 6) == "\u2026inner"
    assert fit_label(name, 4) == "inn\u2026"          # only then the own name is cut
    assert fit_label(name, 2) == ""
    assert fit_label("plain_function_name", 10) == "plain_fun\u2026"


def test_a_program_is_named_as_its_command_line_gave_it():
    from pyliveupdate_controller.processlogs.model import program_name
    assert program_name(["/srv/app/webservice.py", "--port", "80"]) == "webservice.py"
    assert program_name(["/venv/bin/gunicorn", "app:app"]) == "gunicorn"
    # python -m gunicorn: the package, as procs() shows it, not __main__.py
    assert program_name(["/venv/lib/python3.12/site-packages/gunicorn/__main__.py", "-w", "3"]) == "gunicorn"
    assert program_name(["-c"]) == "python -c" and program_name([]) == "python"
    assert filters.program_matches(program_name(["/x/gunicorn/__main__.py"]), "gunicorn")
