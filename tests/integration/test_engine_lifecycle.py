"""Engine life cycle: free import, tool ids, shutdown, the frame hook's refusal rules."""


from support_engine import ON_312, run_script


def test_import_takes_nothing(tmp_path):
    result, _ = run_script(tmp_path, '''
        mon = sys.monitoring
        emit({"tools": [mon.get_tool(i) for i in range(6)],
              "counters": _engine.engine_counters(),
              "callback": mon.register_callback(4, mon.events.PY_START, None)})
    ''')
    assert result["tools"] == [None] * 6
    c = result["counters"]
    assert c["tool_id"] == -1 and not c["frame_hook"] and not c["function_watcher"]
    assert c["armed"] == 0 and result["callback"] is None


def test_tool_id_4_then_3_then_a_clear_error(tmp_path):
    result, _ = run_script(tmp_path, '''
        mon = sys.monitoring
        mon.use_tool_id(4, "someprofiler")
        engine.arm(1, workload.leaf.__code__, engine.Request(func_timing=True))
        first = engine.status()["tool_id"]
        engine.shutdown()
        mon.use_tool_id(3, "otherprofiler")
        try:
            engine.arm(1, workload.leaf.__code__, engine.Request(func_timing=True))
            error = None
        except RuntimeError as e:
            error = str(e)
        emit({"first": first, "error": error, "armed": engine.armed_codes(),
              "tools": [mon.get_tool(3), mon.get_tool(4)], "leaf": workload.leaf(2)})
    ''')
    assert result["first"] == 3
    assert "'someprofiler'" in result["error"] and "'otherprofiler'" in result["error"]
    assert result["armed"] == []
    assert result["tools"] == ["otherprofiler", "someprofiler"]
    assert result["leaf"] == 4


def test_shutdown_releases_everything_and_arming_again_works(tmp_path):
    result, _ = run_script(tmp_path, '''
        mon = sys.monitoring
        _engine.set_counting(True)
        seen = []
        engine.arm(1, workload.leaf.__code__, engine.Request(
            func_timing=True, on_func_begin=lambda f: seen.append(1)))
        engine.watch(2, lambda code: None, source="monitoring")
        workload.leaf(1)
        engine.shutdown()
        after = {"tool": mon.get_tool(4), "counters": _engine.engine_counters(),
                 "callbacks": [mon.register_callback(4, getattr(mon.events, e), None)
                               for e in ("PY_START", "PY_RETURN", "LINE", "PY_UNWIND")]}
        workload.leaf(1)
        engine.arm(1, workload.leaf.__code__, engine.Request(
            func_timing=True, on_func_begin=lambda f: seen.append(2)))
        workload.leaf(1)
        st = _engine.code_state(workload.leaf.__code__)
        engine.shutdown()
        emit({"after": after, "seen": seen, "calls": st["hits"][str(_engine.EV_CALL)]
              if str(_engine.EV_CALL) in st["hits"] else st["hits"][_engine.EV_CALL]})
    ''')
    after = result["after"]
    assert after["tool"] is None and after["callbacks"] == [None] * 4
    c = after["counters"]
    assert c["armed"] == 0 and not c["frame_hook"] and not c["function_watcher"]
    assert result["seen"] == [1, 2]
    assert result["calls"] == 2


def test_in_flight_exception_survives_a_failing_handler(tmp_path):
    result, _ = run_script(tmp_path, '''
        import textwrap
        src = textwrap.dedent(\'\'\'
            import sys
            def f():
                try:
                    1 / 0
                except ZeroDivisionError:
                    kind = sys.exc_info()[0].__name__
                    return kind, sys.exc_info()[0].__name__
        \'\'\')
        ns = {}
        exec(compile(src, "inflight.py", "exec"), ns)
        def bad(frame, line):
            raise KeyError("handler")
        engine.arm(1, ns["f"].__code__, engine.Request(on_line_before={7: bad, 8: bad}))
        emit({"result": ns["f"](), "report": engine.handler_report(1)})
        engine.shutdown()
    ''')
    assert result["result"] == ["ZeroDivisionError", "ZeroDivisionError"]
    assert result["report"]["errors"] == 2


def test_failing_matcher_is_counted_and_harmless(tmp_path):
    result, _ = run_script(tmp_path, '''
        def matcher(code):
            raise RuntimeError("matcher bug")
        engine.watch(1, matcher, source="monitoring")
        def made_later(x):
            return x + 1
        out = made_later(1)
        st = engine.status()
        engine.shutdown()
        emit({"out": out, "errors": st["matcher_errors"]})
    ''')
    assert result["out"] == 2
    assert result["errors"]["count"] >= 1 and "matcher bug" in result["errors"]["last"]


def test_frame_source_refusal_rules(tmp_path):
    result, _ = run_script(tmp_path, '''
        req = engine.Request(func_timing=True)
        engine.arm(1, workload.leaf.__code__, req, source="frame")
        default = engine.status()
        engine.shutdown()
        sys.setrecursionlimit(engine.FRAME_HOOK_MAX_RECURSION + 1000)
        engine.arm(1, workload.leaf.__code__, req, source="frame")
        deep = engine.status()
        engine.shutdown()
        emit({"default": [default["sources"], default["frame_hook_installed"],
                          default["frame_source_refusal"]],
              "deep": [deep["sources"], deep["frame_hook_installed"],
                       deep["frame_source_refusal"]]})
    ''')
    sources, hooked, refusal = result["default"]
    if ON_312:
        assert sources == {"monitoring": 1, "frame": 0} and not hooked and "3.12" in refusal
    else:
        assert sources == {"monitoring": 0, "frame": 1} and hooked and refusal is None
    sources, hooked, refusal = result["deep"]
    assert sources == {"monitoring": 1, "frame": 0} and not hooked
    assert refusal is not None


def test_recursion_depth_under_the_frame_hook(tmp_path):
    """Measure how deep Python can recurse while a hook is installed: on 3.12 it is
    below the default limit (why the hook is refused there); on 3.13 it is above
    FRAME_HOOK_MAX_RECURSION (so the refusal threshold is safe)."""
    result, _ = run_script(tmp_path, '''
        sys.setrecursionlimit(100000)
        def down(n):
            return n if n == 0 else down(n - 1)
        def deepest():
            lo, hi = 1, 60000
            while lo < hi:
                mid = (lo + hi + 1) // 2
                try:
                    down(mid)
                    lo = mid
                except RecursionError:
                    hi = mid - 1
            return lo
        plain = deepest()
        _engine.set_counting(True)
        _engine.code_arm(down.__code__, _engine.CS_HOOK_RECORDS, None, None, None, None, -1)
        _engine.frame_hook(True)
        hooked = deepest()
        _engine.frame_hook(False)
        emit({"plain": plain, "hooked": hooked, "limit": engine.FRAME_HOOK_MAX_RECURSION,
              "calls": _engine.code_state(down.__code__)["hits"]})
    ''', timeout=120)
    assert result["plain"] > 20000
    if ON_312:
        assert result["hooked"] < 1000
    else:
        assert result["hooked"] > result["limit"]
    hits = result["calls"]
    assert hits["1"] > 0 and hits["1"] == hits["3"] + hits["5"]   # balanced under RecursionError


def test_frame_hook_chains_to_the_hook_it_found(tmp_path):
    """CPython's perf trampoline is a frame-evaluation hook; ours runs on top of it,
    calls it, and puts it back when removed."""
    result, _ = run_script(tmp_path, '''
        import os
        sys.activate_stack_trampoline("perf")
        try:
            _engine.set_counting(True)
            code = workload.leaf.__code__
            _engine.code_arm(code, _engine.CS_HOOK_RECORDS, None, None, None, None, -1)
            _engine.frame_hook(True)
            values = [workload.leaf(i) for i in range(5)]
            during = sys.is_stack_trampoline_active()
            perf_map = "/tmp/perf-%d.map" % os.getpid()
            with open(perf_map) as f:
                mapped = [l.split(" ", 2)[-1].strip() for l in f if "workload.py" in l]
            _engine.frame_hook(False)
            after = sys.is_stack_trampoline_active()
            values.append(workload.leaf(10))
            hits = _engine.code_state(code)["hits"]
        finally:
            sys.deactivate_stack_trampoline()
            try:
                os.unlink("/tmp/perf-%d.map" % os.getpid())
            except OSError:
                pass
        emit({"values": values, "during": during, "after": after, "mapped": mapped,
              "calls": hits[_engine.EV_CALL], "returns": hits[_engine.EV_RETURN],
              "hook": _engine.engine_counters()["frame_hook"]})
    ''')
    assert result["values"] == [0, 2, 4, 6, 8, 20]
    # while ours is on top the trampoline is not the interpreter's hook, yet it ran:
    # it made its perf-map entry for leaf(), read before our hook was removed
    assert result["during"] is False and result["after"] is True
    assert any(m.startswith("py::leaf:") for m in result["mapped"]), result["mapped"]
    assert result["calls"] == 5 and result["returns"] == 5
    assert result["hook"] is False
