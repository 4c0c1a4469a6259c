"""The frame hook never crashes the host and never miscounts at the recursion limit.

Under a PEP 523 hook every Python call recurses on the C stack.  The hook checks, once a
thread is deep, how much C stack the thread has left and whether the program raised its
recursion limit; when either makes it unsafe it gives way: every code it recorded moves
to sys.monitoring and the hook removes itself (csrc/evalframe.c).  Counts stay exact
across the handover, and the program runs as it would without us."""
import textwrap

from support_engine import (
    ON_312, cprofile_counts, expected_source, run_script, source_param,
)

DOWN = '''
def down(n):
    return 0 if n == 0 else 1 + down(n - 1)
'''

# On 3.12 the frame source is refused (engine.py), so the hook is driven directly there:
# the guard is C and works on both.
ARM_DOWN = '''
exec(compile(DOWN, os.path.join(os.getcwd(), "down.py"), "exec"), globals())
_engine.set_counting(True)
if sys.version_info >= (3, 13):
    engine.arm(1, down.__code__, engine.Request(func_timing=True), source="frame")
else:
    _engine.code_arm(down.__code__, _engine.CS_HOOK_RECORDS, None, None, None, None, -1)
    _engine.frame_hook(True, max_recursion=engine.FRAME_HOOK_MAX_RECURSION,
                       report=reports.append)
'''


def script(body):
    return ("import os, threading\nreports = []\nDOWN = %r\n" % DOWN + ARM_DOWN
            + textwrap.dedent(body))


def test_small_stack_thread_recursing_deeply_under_the_hook(tmp_path):
    """A 256 KiB thread segfaulted at depth ~433 under the hook; now the hook gives way
    before the stack runs out and the recursion finishes as it would without a hook."""
    result, proc = run_script(tmp_path, script('''
        hooked_before = _engine.engine_counters()["frame_hook"]
        threading.stack_size(256 * 1024)
        out = {}
        def worker():
            try:
                out["depth"] = down(900)
            except RecursionError as exc:
                out["error"] = repr(exc)
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        threading.stack_size(0)
        later = down(50)  # after the handover: recorded by sys.monitoring
        c = _engine.engine_counters()
        st = _engine.code_state(down.__code__)
        status = engine.status() if sys.version_info >= (3, 13) else None
        emit({"out": out, "later": later, "hooked_before": hooked_before,
              "hooked_after": c["frame_hook"], "retired": c["frame_hook_retired"],
              "flags": st["flags"], "calls": st["hits"][_engine.EV_CALL],
              "exits": st["hits"][_engine.EV_RETURN] + st["hits"][_engine.EV_UNWIND],
              "reports": reports + (status["reports"] if status else []),
              "refusal": status["frame_source_refusal"] if status else None,
              "sources": status["sources"] if status else None})
    '''), timeout=120)
    assert proc.returncode == 0
    assert result["out"] == {"depth": 900}
    assert result["later"] == 50
    assert result["hooked_before"] and not result["hooked_after"]
    assert "256 KiB C stack" in result["retired"]
    assert any("frame hook removed" in r and "256 KiB" in r for r in result["reports"])
    # every call of down() recorded once, entered by the hook or by sys.monitoring, and
    # every frame the hook entered got its exit from sys.monitoring after the handover
    assert result["calls"] == 901 + 51
    assert result["exits"] == result["calls"]
    assert not result["flags"] & 2 and result["flags"] & 1   # HOOK_RECORDS off, FUNC on
    if not ON_312:
        assert result["refusal"].startswith("the frame hook was removed in this process")
        assert result["sources"] == {"monitoring": 1, "frame": 0}


def test_tiny_stack_thread_makes_the_hook_give_way_at_once(tmp_path):
    result, proc = run_script(tmp_path, script('''
        threading.stack_size(128 * 1024)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("depth", down(300)))
        t.start()
        t.join()
        c = _engine.engine_counters()
        st = _engine.code_state(down.__code__)
        emit({"out": out, "retired": c["frame_hook_retired"],
              "calls": st["hits"][_engine.EV_CALL], "exits": st["hits"][_engine.EV_RETURN]})
    '''), timeout=120)
    assert proc.returncode == 0
    assert result["out"] == {"depth": 300}
    assert "128 KiB C stack" in result["retired"]
    assert result["calls"] == result["exits"] == 301


@source_param()
def test_recursion_limit_raised_while_the_hook_is_installed(tmp_path, source):
    """With the hook in place, 3.13 stops at ~4,996 frames whatever the limit; a program
    that raises its limit later must not die there in code we never matched."""
    result, proc = run_script(tmp_path, '''
        def down(n):
            return 0 if n == 0 else 1 + down(n - 1)
        _engine.set_counting(True)
        engine.arm(1, down.__code__, engine.Request(func_timing=True), source=$SOURCE)
        before = engine.status()
        sys.setrecursionlimit(20000)
        try:
            depth = down(12000)
        except RecursionError as exc:
            depth = repr(exc)
        after = engine.status()
        st = _engine.code_state(down.__code__)
        emit({"depth": depth, "before": before["sources"], "after": after["sources"],
              "hooked": after["frame_hook_installed"], "refusal": after["frame_source_refusal"],
              "reports": after["reports"], "calls": st["hits"][_engine.EV_CALL],
              "exits": st["hits"][_engine.EV_RETURN]})
    '''.replace("$SOURCE", repr(source)), timeout=120)
    assert proc.returncode == 0
    assert result["depth"] == 12000
    assert result["calls"] == result["exits"] == 12001
    assert not result["hooked"]
    if expected_source(source) == "frame":
        assert result["before"] == {"monitoring": 0, "frame": 1}
        assert result["after"] == {"monitoring": 1, "frame": 0}
        assert "recursion limit was raised to 20000" in result["refusal"]
        assert any("recursion limit was raised to 20000" in r for r in result["reports"])


@source_param()
def test_counts_equal_cprofile_at_recursion_error(tmp_path, source):
    """The frame that fails CPython's recursion check at entry never ran: cProfile does
    not count it, and neither do we (the hook's entry record is withheld)."""
    body = '''
        def runaway(n):
            return runaway(n + 1)
        def catch():
            try:
                runaway(0)
            except RecursionError:
                return "caught"
    '''
    theirs = cprofile_counts(tmp_path, setup=body, call="catch(); catch()", file="script.py")
    result, _ = run_script(tmp_path, body + '''
        _engine.set_counting(True)
        for f in (runaway, catch):
            engine.arm(1, f.__code__, engine.Request(func_timing=True), source=$SOURCE)
        out = [catch(), catch()]
        c = _engine.engine_counters()
        emit({"out": out, "runaway": slices(runaway.__code__), "catch": slices(catch.__code__),
              "lines": [runaway.__code__.co_firstlineno, catch.__code__.co_firstlineno],
              "withheld": c["withheld_entries"]})
    '''.replace("$SOURCE", repr(source)))
    assert result["out"] == ["caught", "caught"]
    runaway_line, catch_line = result["lines"]
    calls = theirs[(runaway_line, "runaway")]
    assert calls > 500
    assert result["runaway"] == [calls, calls]
    assert result["catch"] == [2, 2] == [theirs[(catch_line, "catch")]] * 2
    assert result["withheld"] == (2 if expected_source(source) == "frame" else 0)


@source_param()
def test_fork_inside_a_recorded_frame(tmp_path, source):
    """The frame hook writes a frame's entry late; a child forked meanwhile writes it into
    its own new log, stamped within that log, never before the log began."""
    result, _ = run_script(tmp_path, '''
        import glob, os
        from pyliveupdate import recording
        logs = os.path.join(os.getcwd(), "logs")
        recording.ensure_started(logs)
        def forker():
            return os.fork()
        engine.arm(1, forker.__code__, engine.Request(func_timing=True), source=$SOURCE)
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)   # fork with the flusher thread
        pid = forker()
        if pid == 0:
            recording.stop()
            os._exit(0)
        os.waitpid(pid, 0)
        engine.shutdown()
        recording.stop()
        out = {}
        for path in glob.glob(os.path.join(logs, "*.pylog")):
            who = "parent" if "-%d-" % os.getpid() in path else "child"
            out[who] = [[e[1], e[3]] for e in _engine.LogReader(path) if e[0] == "event"]
        emit(out)
    '''.replace("$SOURCE", repr(source)))
    assert [k for k, _ in result["parent"]] == [1, 3]
    assert result["child"] and result["child"][-1][0] == 3
    assert all(ts >= 0 for _, ts in result["parent"] + result["child"])
