"""Aggregation semantics on synthetic event streams (docs/DESIGN.md §1): the C builder plus
the Python tree, without a recorder."""
import pytest

from pyliveupdate._engine import CallTreeBuilder
from support_processlogs import (CALL, LINE, LINE_MARK, RESUME, RETURN, UNWIND, YIELD, Trace,
                                 find, pack)


def basic_trace():
    t = Trace().thread(1, "MainThread").code(1, "main").code(2, "Foo.__init__").code(3, "helper")
    t.code(4, "Bar.__init__", module="other.mod")
    # main [0, 1000]: Foo.__init__ [100, 300] calling helper [150, 250]; helper [400, 450];
    # Bar.__init__ [500, 600] raises.
    t.ev(CALL, 0, 1).ev(CALL, 100, 2).ev(CALL, 150, 3).ev(RETURN, 250, 3).ev(RETURN, 300, 2)
    t.ev(CALL, 400, 3).ev(RETURN, 450, 3).ev(CALL, 500, 4).ev(UNWIND, 600, 4).ev(RETURN, 1000, 1)
    return t


def test_nesting_hits_total_self_and_qualified_names():
    th = basic_trace().process().threads[0]
    main = find(th, "pkg.mod.main")
    assert (main.hits, main.total, main.self) == (1, 1000, 1000 - 200 - 50 - 100)
    init = find(main, "pkg.mod.Foo.__init__")
    assert (init.hits, init.total, init.self) == (1, 200, 100)
    assert find(init, "pkg.mod.helper").total == 100
    # the same function under another caller is another call path
    assert find(main, "pkg.mod.helper").total == 50
    # two __init__ never merge: qualified by module and class; UNWIND closes like RETURN
    assert find(main, "other.mod.Bar.__init__").total == 100
    assert th.total == 1000 and not th.open_frames
    # children sorted by time
    assert [c.function for c in main.children] == [
        "pkg.mod.Foo.__init__", "other.mod.Bar.__init__", "pkg.mod.helper"]


def test_repeated_calls_give_per_hit_time():
    t = Trace().thread(1, "T").code(1, "f")
    for i in range(10):
        t.ev(CALL, i * 100, 1).ev(RETURN, i * 100 + 30, 1)
    f = find(t.process().threads[0], "pkg.mod.f")
    assert (f.hits, f.total, f.per_hit) == (10, 300, 30.0)


def test_generator_suspension_is_not_charged_and_resumes_are_slices():
    t = Trace().thread(1, "T").code(1, "consumer").code(2, "gen")
    t.ev(CALL, 0, 1)
    t.ev(CALL, 10, 2).ev(YIELD, 20, 2)          # first slice: 10 ns
    t.ev(RESUME, 100, 2).ev(YIELD, 130, 2)      # second: 30 ns (80 ns suspended)
    t.ev(RESUME, 500, 2).ev(RETURN, 510, 2)     # third: 10 ns
    t.ev(RETURN, 1000, 1)
    consumer = find(t.process().threads[0], "pkg.mod.consumer")
    gen = find(consumer, "pkg.mod.gen")
    assert (gen.hits, gen.slices, gen.total) == (1, 3, 50)
    assert consumer.self == 1000 - 50


def test_recursion_nests_as_it_happened():
    t = Trace().thread(1, "T").code(1, "fact")
    for depth in range(4):
        t.ev(CALL, depth * 10, 1)
    for depth in range(4):
        t.ev(RETURN, 100 + depth * 10, 1)
    th = t.process().threads[0]
    node, totals = th.root, []
    while node.children:
        (node,) = node.children
        totals.append((node.function, node.hits, node.total))
    assert totals == [("pkg.mod.fact", 1, 130), ("pkg.mod.fact", 1, 110),
                      ("pkg.mod.fact", 1, 90), ("pkg.mod.fact", 1, 70)]
    assert th.total == 130      # no double counting of the recursive time


def test_open_frames_are_reported_and_charged_up_to_the_end():
    t = Trace().thread(1, "T").code(1, "serve").code(2, "handle")
    t.ev(CALL, 0, 1).ev(CALL, 10, 2).ev(RETURN, 20, 2).ev(CALL, 50, 2).ev(LINE_MARK, 90, 9)
    th = t.process().threads[0]
    assert [(f.stack, f.started_ns, f.running_ns) for f in th.open_frames] == [
        (["pkg.mod.serve"], 0, 90), (["pkg.mod.serve", "pkg.mod.handle"], 50, 40)]
    serve = find(th, "pkg.mod.serve")        # a server's main loop never returns
    assert (serve.hits, serve.running, serve.total, serve.self) == (0, 1, 90, 40)
    handle = find(serve, "pkg.mod.handle")
    assert (handle.hits, handle.running, handle.total) == (1, 1, 50)
    assert th.total == 90


def test_a_drop_closes_the_threads_open_slices_instead_of_nesting_under_them():
    t = Trace().thread(1, "T").code(1, "f")
    t.ev(CALL, 0, 1)                 # its RETURN is lost in the gap
    t.drop(1, 5)
    t2 = list(t.chunks())            # first chunk: the CALL and the drop
    t.events.clear()
    t.metas.clear()
    t.ev(CALL, 100, 1).ev(RETURN, 110, 1)
    from pyliveupdate_controller.processlogs.aggregate import build_process, consume
    builder, meta = consume(t2 + list(t.chunks()))
    th = build_process(builder, meta, pid=1, path="x", header={}).threads[0]
    f = find(th, "pkg.mod.f")        # not f > f
    assert f.children == [] and f.hits == 1 and th.gap_closes == 1 and th.dropped == 5


def test_returns_of_calls_begun_before_recording_are_counted_and_ignored():
    t = Trace().thread(1, "T").code(1, "loop").code(2, "step")
    t.ev(CALL, 0, 2).ev(RETURN, 5, 2).ev(RETURN, 10, 1).ev(CALL, 20, 2).ev(RETURN, 30, 2)
    th = t.process().threads[0]
    assert th.unmatched_closes == 1
    assert find(th, "pkg.mod.step").hits == 2


def test_lost_inner_return_is_closed_with_its_caller():
    t = Trace().thread(1, "T").code(1, "outer").code(2, "inner")
    t.ev(CALL, 0, 1).ev(CALL, 10, 2).ev(RETURN, 100, 1)      # inner's RETURN was dropped
    th = t.process().threads[0]
    assert th.forced_closes == 1
    assert find(th, "pkg.mod.outer", "pkg.mod.inner").total == 90


def test_threads_are_kept_apart():
    t = Trace().thread(1, "MainThread").thread(2, "worker").code(1, "a").code(2, "b")
    t.ev(CALL, 0, 1, thread=1).ev(CALL, 5, 2, thread=2).ev(RETURN, 50, 1, thread=1)
    t.ev(RETURN, 200, 2, thread=2)
    proc = t.process()
    by_name = {th.name: th for th in proc.threads}
    assert find(by_name["MainThread"], "pkg.mod.a").total == 50
    assert find(by_name["worker"], "pkg.mod.b").total == 195
    assert [c.function for c in by_name["worker"].root.children] == ["pkg.mod.b"]


def test_line_slices_include_callees_and_close_on_mark_and_return():
    t = Trace().thread(1, "T").code(1, "bar", firstlineno=10).code(2, "foo")
    t.ev(CALL, 0, 1)
    t.ev(LINE, 5, 1, 11).ev(CALL, 10, 2).ev(RETURN, 40, 2)     # line 11 calls foo
    t.ev(LINE, 50, 1, 12).ev(LINE_MARK, 60, 1, 13)            # 12 ends at an unprofiled line
    t.ev(LINE, 70, 1, 11).ev(LINE, 75, 1, 12).ev(RETURN, 95, 1)   # return closes line 12
    lines = t.process().lines[1][1]
    assert (lines[11].hits, lines[11].total) == (2, 45 + 5)
    assert (lines[12].hits, lines[12].total) == (2, 10 + 20)
    assert 13 not in lines


def test_lines_of_a_frame_that_began_before_recording_still_count():
    t = Trace().thread(1, "T").code(1, "mainloop")
    t.ev(LINE, 0, 1, 5).ev(LINE, 10, 1, 6).ev(LINE, 30, 1, 5).ev(LINE_MARK, 35, 1, 7)
    lines = t.process().lines[1][1]
    assert (lines[5].hits, lines[5].total, lines[6].total) == (2, 15, 20)


def test_time_window_clips_slices():
    t = Trace().thread(1, "T").code(1, "f").code(2, "g")
    t.ev(CALL, 0, 1).ev(CALL, 40, 2).ev(RETURN, 80, 2).ev(RETURN, 100, 1)
    t.ev(CALL, 200, 2).ev(RETURN, 300, 2)
    th = t.process(start_ns=50, end_ns=250).threads[0]
    f = find(th, "pkg.mod.f")
    assert (f.total, f.hits) == (50, 0)          # call began before the window
    assert find(f, "pkg.mod.g").total == 30
    g = find(th, "pkg.mod.g")
    assert (g.total, g.hits) == (50, 1)


def test_chunking_does_not_change_the_result():
    t = basic_trace()
    whole = t.process(per_chunk=10_000).threads[0]
    one_by_one = t.process(per_chunk=1).threads[0]
    assert [(d, n.function, n.hits, n.total, n.self) for d, n in whole.root.walk()] == \
        [(d, n.function, n.hits, n.total, n.self) for d, n in one_by_one.root.walk()]


def test_drops_are_reported_cumulatively():
    t = basic_trace().drop(1, 3).drop(1, 7)
    assert t.process().threads[0].dropped == 7


def test_memory_depends_on_call_paths_not_events():
    b = CallTreeBuilder()
    pattern = b"".join([pack(CALL, 1, 0, 1), pack(CALL, 1, 1, 2), pack(RETURN, 1, 2, 2),
                        pack(LINE, 1, 3, 1, 7), pack(RETURN, 1, 4, 1)])
    b.feed(pattern)
    paths = b.node_count
    b.feed(pattern * 20_000)
    assert b.events == 5 * 20_001 and b.node_count == paths
    assert b.result()["nodes"][1][2] == 20_001


def test_bad_input_is_refused_clearly():
    b = CallTreeBuilder()
    with pytest.raises(ValueError, match="24-byte records"):
        b.feed(b"x" * 25)
    with pytest.raises(ValueError, match="start_ns must not be after end_ns"):
        CallTreeBuilder(10, 5)
    b.feed(pack(99, 1, 0, 1))           # unknown kind: counted, nothing else changes
    assert b.result()["bad_kinds"] == 1


def test_many_interleaved_threads():
    t = Trace().code(1, "handle")
    for thread in range(1, 301):
        t.thread(thread, "worker-%d" % thread)
    for thread in range(1, 301):
        t.ev(CALL, thread, 1, thread=thread)
    for thread in range(1, 301):
        t.ev(RETURN, 1000 + thread * 2, 1, thread=thread)
    proc = t.process()
    assert len(proc.threads) == 300
    for th in proc.threads:
        assert th.name == "worker-%d" % th.thread
        assert find(th, "pkg.mod.handle").total == 1000 + th.thread


def test_timestamps_going_backwards_never_give_negative_times():
    t = Trace().thread(1, "T").code(1, "f").code(2, "g")
    t.ev(CALL, 100, 1).ev(CALL, 200, 2).ev(RETURN, 300, 2).ev(RETURN, 150, 1)
    f = find(t.process().threads[0], "pkg.mod.f")
    assert f.total == 50 and f.self == 0 and find(f, "pkg.mod.g").total == 100


def test_a_body_compiled_twice_is_one_row_after_revert_and_reapply():
    # a hot patch applied, reverted and applied again: the same body under a new code id
    t = Trace().thread(1, "T").code(1, "main").code(2, "quote", filename="/tmp/patch.py")
    t.code(3, "quote", filename="/tmp/patch.py").code(4, "helper")
    t.ev(CALL, 0, 1)
    t.ev(CALL, 10, 2).ev(CALL, 12, 4).ev(RETURN, 14, 4).ev(RETURN, 20, 2)
    t.ev(CALL, 30, 3).ev(CALL, 31, 4).ev(RETURN, 35, 4).ev(RETURN, 40, 3)
    t.ev(LINE, 41, 3, 5).ev(LINE_MARK, 44, 3, 6)
    t.ev(LINE, 45, 2, 5).ev(LINE_MARK, 46, 2, 6)
    t.ev(RETURN, 100, 1)
    proc = t.process()
    main = find(proc.threads[0], "pkg.mod.main")
    quote = find(main, "pkg.mod.quote")          # one child, not two identical ones
    assert (quote.hits, quote.total, quote.self) == (2, 20, 14)
    helper = find(quote, "pkg.mod.helper")
    assert (helper.hits, helper.total) == (2, 6)
    (body,) = proc.lines                         # and one line profile for the body
    assert (proc.lines[body][1][5].hits, proc.lines[body][1][5].total) == (2, 4)
