"""Function and line event counts equal what cProfile and a line tracer count.

cProfile runs in a process of its own: its CALL events keep call sites from
specializing, and the specialized paths are where an event source can miss calls."""
from support_engine import (
    WORKLOAD_FUNCS, cprofile_counts, counts_by_name, expected_source, run_script,
    source_param,
)

INIT_CODES = {"Box.__init__", "Sub.__init__"}


@source_param()
def test_function_counts_equal_cprofile(tmp_path, source):
    theirs = cprofile_counts(tmp_path)
    result, _ = run_script(tmp_path, '''
        _engine.set_counting(True)
        codes = workload_codes()
        for name, code in codes.items():
            engine.arm(1, code, engine.Request(func_timing=True), module="workload",
                       source=$SOURCE)
        workload.main()
        st = engine.status()
        ours = {name: slices(code) for name, code in codes.items()}
        engine.shutdown()
        emit({"ours": ours, "keys": code_keys(codes), "sources": st["sources"],
              "hook": st["frame_hook_installed"], "refusal": st["frame_source_refusal"]})
    '''.replace("$SOURCE", repr(source)))
    calls = counts_by_name(result["keys"], theirs)
    assert calls["Box.__init__"] == 403 and calls["Sub.__init__"] == 200
    for name in WORKLOAD_FUNCS:
        opened, closed = result["ours"][name]
        assert opened == calls[name], (name, result["ours"][name], calls[name])
        assert closed == opened, name
    used = expected_source(source)
    assert result["hook"] == (used == "frame")
    if used == "monitoring":
        assert result["sources"] == {"monitoring": len(result["ours"]), "frame": 0}
        if source == "frame":
            assert "3.12" in result["refusal"]
    else:
        # 3.13 enters __init__ inline past any frame hook (CALL_ALLOC_AND_ENTER_INIT):
        # those codes are recorded by sys.monitoring, the others by the hook
        assert result["sources"] == {"monitoring": len(INIT_CODES),
                                     "frame": len(result["ours"]) - len(INIT_CODES)}


@source_param()
def test_function_counts_whole_workload_by_watch(tmp_path, source):
    """A wide-scope update: the workload module is imported *after* watch()."""
    theirs = cprofile_counts(tmp_path, setup="sys.modules.pop('workload')\n",
                             call="import workload; workload.main()")
    result, _ = run_script(tmp_path, '''
        _engine.set_counting(True)
        sys.modules.pop("workload")
        def matcher(code):
            if code.co_filename.endswith("workload.py"):
                return engine.Request(func_timing=True), "workload", code.co_qualname
            return None
        src = engine.watch(7, matcher, source=$SOURCE)
        import workload
        workload.main()
        codes = workload_codes()
        ours = {name: slices(code) for name, code in codes.items()}
        armed = len(engine.armed_codes(7))
        engine.unwatch(7)
        engine.disarm(7)
        hook_after_disarm = engine.status()["frame_hook_installed"]
        engine.shutdown()
        emit({"ours": ours, "keys": code_keys(codes), "src": src, "armed": armed,
              "hook_after_disarm": hook_after_disarm})
    '''.replace("$SOURCE", repr(source)))
    calls = counts_by_name(result["keys"], theirs)
    assert result["src"] == expected_source(source)
    for name in WORKLOAD_FUNCS:
        assert result["ours"][name] == [calls[name]] * 2, (name, result["ours"][name], calls[name])
    assert result["armed"] >= len(WORKLOAD_FUNCS)
    assert result["hook_after_disarm"] is False


def test_line_counts_equal_a_line_tracer(tmp_path):
    result, _ = run_script(tmp_path, '''
        _engine.set_counting(True)
        codes = workload_codes()
        targets = ["oneliners", "mid", "rec", "gen", "catcher", "coro", "thrower", "fails"]
        for name in targets:
            code = codes[name]
            lines = frozenset(l for _, _, l in code.co_lines() if l is not None)
            engine.arm(1, code, engine.Request(timing_lines=lines), module="workload")
        traced = {}
        wanted = {codes[n]: n for n in targets}
        def tracer(frame, event, arg):
            name = wanted.get(frame.f_code)
            if name is None:
                return None
            def local(frame, event, arg):
                if event == "line":
                    key = "%s:%d" % (name, frame.f_lineno)
                    traced[key] = traced.get(key, 0) + 1
                return local
            return local
        sys.settrace(tracer)
        workload.main()
        sys.settrace(None)
        ours = {}
        for name in targets:
            st = _engine.code_state(codes[name])
            for line, n in st["line_hits"].items():
                ours["%s:%s" % (name, line)] = n
        engine.shutdown()
        emit({"ours": ours, "traced": traced})
    ''')
    assert result["traced"], "the tracer saw nothing"
    assert result["ours"] == result["traced"]


def test_partial_line_timing_marks_only_following_lines(tmp_path):
    """Unprofiled lines that can follow a profiled one close its slice (LINE_MARK);
    the others are disabled and cost nothing."""
    result, _ = run_script(tmp_path, '''
        _engine.set_counting(True)
        code = workload.catcher.__code__
        first = code.co_firstlineno
        # profile only the "fails(i)" line (first + 4)
        engine.arm(1, code, engine.Request(timing_lines={first + 4}), module="workload")
        workload.catcher(7)
        st = _engine.code_state(code)
        engine.shutdown()
        emit({"first": first, "hits": st["hits"], "lines": st["line_hits"]})
    ''')
    first = result["first"]
    lines = {int(k) - first: v for k, v in result["lines"].items()}
    assert lines[4] == 7                       # fails(i): profiled, 7 times
    assert result["hits"]["6"] == 7            # LINE records
    # after fails(i): either the loop head (normal) or the except line (raise)
    assert lines.get(5) == 3                   # "except ValueError" for 0, 3, 6
    assert lines.get(2) == 8                   # the loop head: 7 iterations + the exit
    assert lines.get(1) is None                # "caught = 0" never follows it: disabled
    assert lines.get(6) is None                # "caught += 1" only follows "except"
    assert result["hits"]["7"] == sum(v for k, v in lines.items() if k != 4)


@source_param()
def test_log_records_balance_and_match_cprofile(tmp_path, source):
    """The same counts, read back from the recorder's log (the real recording path)."""
    theirs = cprofile_counts(tmp_path)
    result, _ = run_script(tmp_path, '''
        import os
        from pyliveupdate import recording
        path = recording.ensure_started(os.path.join(os.getcwd(), "logs"))
        codes = workload_codes()
        for name, code in codes.items():
            lines = frozenset(l for _, _, l in code.co_lines() if l is not None)
            req = engine.Request(func_timing=True,
                                 timing_lines=lines if name == "mid" else frozenset())
            engine.arm(1, code, req, module="workload", source=$SOURCE)
        workload.main()
        engine.shutdown()
        recording.stop()
        names, opened, closed, lines, depth_ok = {}, {}, {}, {}, True
        by_code = {(c.co_firstlineno, c.co_qualname): n for n, c in codes.items()}
        stacks = {}
        for item in _engine.LogReader(path):
            if item[0] == "code":
                names[item[1]] = by_code[(item[4], item[2])]
            elif item[0] == "event":
                _, kind, thread, ts, cid, line = item
                name = names[cid]
                stack = stacks.setdefault(thread, [])
                if kind in (_engine.EV_CALL, _engine.EV_RESUME):
                    opened[name] = opened.get(name, 0) + 1
                    stack.append(cid)
                elif kind in (_engine.EV_RETURN, _engine.EV_YIELD, _engine.EV_UNWIND):
                    closed[name] = closed.get(name, 0) + 1
                    depth_ok = depth_ok and bool(stack) and stack.pop() == cid
                elif kind == _engine.EV_LINE:
                    lines[line] = lines.get(line, 0) + 1
        emit({"opened": opened, "closed": closed, "keys": code_keys(codes), "lines": lines,
              "nested": depth_ok, "mid_first": workload.mid.__code__.co_firstlineno})
    '''.replace("$SOURCE", repr(source)))
    calls = counts_by_name(result["keys"], theirs)
    for name in WORKLOAD_FUNCS:
        assert result["opened"].get(name, 0) == calls[name], name
        assert result["closed"].get(name, 0) == calls[name], name
    assert result["nested"], "slices do not nest per thread"
    first = result["mid_first"]
    # mid(20): "s = 0" once, the loop head 21 times, the body 20 times, the return once
    assert {int(k) - first: v for k, v in result["lines"].items()} == {1: 1, 2: 21, 3: 20, 4: 1}
