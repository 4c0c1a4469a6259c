"""Handler dispatch: what handlers receive, when they run, and that they never disturb."""
from support_engine import expected_source, run_script, source_param


@source_param()
def test_begin_end_receive_arguments_return_values_and_exceptions(tmp_path, source):
    result, _ = run_script(tmp_path, '''
        seen = []
        begin = lambda frame: seen.append(["begin", frame.f_code.co_name, dict(frame.f_locals)])
        end = lambda frame, ret, exc: seen.append(
            ["end", frame.f_code.co_name, ret, None if exc is None else repr(exc)])
        req = engine.Request(func_timing=True, on_func_begin=begin, on_func_end=end)
        for f in (workload.leaf, workload.fails, workload.gen, workload.coro):
            engine.arm(3, f.__code__, req, module="workload", source=$SOURCE)
        workload.leaf(21)
        try:
            workload.fails(3)
        except ValueError as e:
            program_saw = repr(e)
        workload.fails(4)
        out = list(workload.gen(3))
        total = workload.drive(workload.coro(3))
        st = engine.status()
        engine.shutdown()
        emit({"seen": seen, "program_saw": program_saw, "out": out, "total": total,
              "sources": st["sources"]})
    '''.replace("$SOURCE", repr(source)))
    seen = result["seen"]
    assert seen[0] == ["begin", "leaf", {"x": 21}]
    assert seen[1] == ["end", "leaf", 42, None]
    assert seen[2] == ["begin", "fails", {"x": 3}]
    assert seen[3] == ["end", "fails", None, "ValueError(3)"]
    assert result["program_saw"] == "ValueError(3)"
    assert seen[4:6] == [["begin", "fails", {"x": 4}], ["end", "fails", 4, None]]
    # a generator: one begin at its first next(), one end at its final exit; the
    # leaf() calls inside are not armed here
    gen_events = [e for e in seen if e[1] == "gen"]
    assert [e[0] for e in gen_events] == ["begin", "end"]
    assert gen_events[0][2] == {"n": 3}
    assert result["out"] == [0, 2, 4]
    coro_events = [e for e in seen if e[1] == "coro"]
    assert [e[0] for e in coro_events] == ["begin", "end"]
    assert coro_events[1][2] == 3 == result["total"]
    assert result["sources"][expected_source(source)] == 4


def test_line_before_and_after(tmp_path):
    result, _ = run_script(tmp_path, '''
        code = workload.mid.__code__
        first = code.co_firstlineno       # def mid(n):
        body, loop, step, ret = first + 1, first + 2, first + 3, first + 4
        seen = []
        snap = lambda tag: (lambda frame, line: seen.append(
            [tag, line - first, frame.f_locals.get("s"), frame.f_locals.get("i")]))
        req = engine.Request(on_line_before={body: snap("before"), step: snap("before"),
                                             ret: snap("before")},
                             on_line_after={body: snap("after"), step: snap("after"),
                                            ret: snap("after")})
        engine.arm(1, code, req, module="workload")
        r = workload.mid(3)
        engine.shutdown()
        emit({"seen": seen, "r": r})
    ''')
    assert result["r"] == 6
    assert result["seen"] == [
        ["before", 1, None, None], ["after", 1, 0, None],
        ["before", 3, 0, 0], ["after", 3, 0, 0],
        ["before", 3, 0, 1], ["after", 3, 2, 1],
        ["before", 3, 2, 2], ["after", 3, 6, 2],
        ["before", 4, 6, 2], ["after", 4, 6, 2],   # "after" of the last line: at exit
    ]


def test_failing_handler_is_counted_never_disturbs_and_is_switched_off(tmp_path):
    result, _ = run_script(tmp_path, '''
        calls = []
        def bad_end(frame, ret, exc):
            calls.append(1)
            raise RuntimeError("handler bug")
        def good_end(frame, ret, exc):
            calls.append(2)
        engine.arm(5, workload.fails.__code__, engine.Request(on_func_end=bad_end))
        engine.arm(6, workload.fails.__code__, engine.Request(on_func_end=good_end))
        outcomes = []
        for i in range(15):
            try:
                outcomes.append(workload.fails(i))
            except ValueError as e:
                outcomes.append("raised %r" % (e,))     # the program's own exception
        emit({"outcomes": outcomes, "calls": calls, "bad": engine.handler_report(5),
              "good": engine.handler_report(6), "status": engine.status()})
        engine.shutdown()
    ''')
    expected = ["raised ValueError(%d)" % i if i % 3 == 0 else i for i in range(15)]
    assert result["outcomes"] == expected
    bad, good = result["bad"], result["good"]
    assert bad["errors"] == 10 and bad["calls"] == 10 and bad["disabled"]
    assert "RuntimeError: handler bug" in bad["last_error"]
    assert "10 consecutive failures" in bad["disabled_reason"]
    assert good["calls"] == 15 and good["errors"] == 0 and not good["disabled"]
    # update-id order: 5 runs before 6 while both are on
    assert result["calls"][:4] == [1, 2, 1, 2]
    assert result["calls"].count(1) == 10 and result["calls"].count(2) == 15
    assert result["status"]["handlers_disabled"] == [5]
    assert any("update 5" in r for r in result["status"]["reports"])


def test_time_budget_switches_a_slow_handler_off(tmp_path):
    result, _ = run_script(tmp_path, '''
        import time
        def slow(frame):
            time.sleep(0.02)
        engine.set_time_budget(2, 0.05)
        engine.arm(2, workload.leaf.__code__, engine.Request(on_func_begin=slow))
        for i in range(50):
            workload.leaf(i)
        rep = engine.handler_report(2)
        engine.shutdown()
        emit(rep)
    ''')
    assert result["disabled"] and "time budget" in result["disabled_reason"]
    # every call sleeps at least 20 ms, so a 50 ms budget is spent after 3 calls at most
    assert 1 <= result["calls"] <= 3


def test_updates_stack_and_rearm_restores_disabled_lines(tmp_path):
    result, _ = run_script(tmp_path, '''
        code = workload.mid.__code__
        first = code.co_firstlineno
        hits = []
        rec = lambda tag: (lambda frame, line: hits.append([tag, line - first]))
        engine.arm(1, code, engine.Request(on_line_before={first + 1: rec("u1")}))
        workload.mid(2)        # line first+3 fires once, returns DISABLE
        engine.arm(2, code, engine.Request(on_line_before={first + 3: rec("u2")}))
        workload.mid(2)
        engine.disarm(1)
        workload.mid(2)
        left = len(engine.armed_codes())
        engine.disarm(2)
        workload.mid(2)
        st = _engine.code_state(code)
        emit({"hits": hits, "left": left, "armed": engine.armed_codes(),
              "flags": st["flags"], "tool": engine.status()["tool_id"]})
        engine.shutdown()
    ''')
    assert result["hits"] == [["u1", 1],
                              ["u1", 1], ["u2", 3], ["u2", 3],
                              ["u2", 3], ["u2", 3]]
    assert result["left"] == 1 and result["armed"] == []
    assert result["flags"] & 0x40 == 0  # not armed any more


def test_bad_input_changes_nothing(tmp_path):
    result, _ = run_script(tmp_path, '''
        errors = []
        code = workload.leaf.__code__
        attempts = [
            lambda: engine.arm(1, code, engine.Request(timing_lines={9999})),
            lambda: engine.arm(1, workload.leaf, engine.Request(func_timing=True)),
            lambda: engine.arm(1, code, {"func_timing": True}),
            lambda: engine.arm(1, code, engine.Request(func_timing=True), source="fast"),
            lambda: engine.Request(on_func_begin=42),
            lambda: engine.Request(on_line_before={"3": print}),
            lambda: engine.watch(1, "not callable"),
        ]
        for attempt in attempts:
            try:
                attempt()
                errors.append(None)
            except (TypeError, ValueError) as e:
                errors.append("%s: %s" % (type(e).__name__, e))
        emit({"errors": errors, "armed": engine.armed_codes(),
              "state": _engine.code_state(code), "status": engine.status()})
    ''')
    errors = result["errors"]
    assert None not in errors, errors
    assert "9999" in errors[0] and "lines with code" in errors[0]
    assert "code object" in errors[1]
    assert "Request" in errors[2]
    assert "source must be one of" in errors[3]
    assert result["armed"] == [] and result["state"] is None
    assert result["status"]["tool_id"] is None   # nothing was taken either


def test_handlers_run_on_every_thread(tmp_path):
    result, _ = run_script(tmp_path, '''
        import threading
        counts = {}
        lock = threading.Lock()
        def begin(frame):
            with lock:
                name = threading.current_thread().name
                counts[name] = counts.get(name, 0) + 1
        engine.arm(1, workload.leaf.__code__, engine.Request(on_func_begin=begin))
        def work():
            for i in range(200):
                workload.leaf(i)
        threads = [threading.Thread(target=work, name="t%d" % i) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        engine.shutdown()
        emit(counts)
    ''')
    assert result == {"t0": 200, "t1": 200, "t2": 200, "t3": 200}


def test_dispatcher_refuses_malformed_handler_lists_and_events():
    import pytest
    from pyliveupdate import _engine, engine
    stats = engine.handler_stats("dispatcher-test")
    with pytest.raises(TypeError, match="HandlerStats, callable"):
        _engine.Dispatcher([(object(), print)], [], {}, {})
    with pytest.raises(TypeError, match="HandlerStats, callable"):
        _engine.Dispatcher([], [], {3: [(stats, "not callable")]}, {})
    seen = []
    d = _engine.Dispatcher([(stats, lambda frame: seen.append(frame))], [], {}, {})
    with pytest.raises(TypeError, match="line number"):
        d(_engine.DISPATCH_LINE, None, None, None)
    d(_engine.DISPATCH_START, "frame", None, None)
    assert seen == ["frame"] and stats.calls == 1
    stats.gate_until_ns = 1 << 62          # closed: the handler is skipped and counted
    d(_engine.DISPATCH_START, "frame", None, None)
    assert seen == ["frame"] and stats.skipped == 1
