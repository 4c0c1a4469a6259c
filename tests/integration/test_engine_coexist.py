"""coverage.py, cProfile and a sys.settrace debugger keep working while we arm/disarm."""
import textwrap

import pytest

from support_engine import run_script

ARM_AND_DISARM = '''
    def churn():
        codes = workload_codes()
        first = workload.mid.__code__.co_firstlineno
        for name, code in codes.items():
            engine.arm(1, code, engine.Request(func_timing=True), module="workload",
                       source=$SOURCE)
        engine.arm(2, workload.mid.__code__, engine.Request(
            timing_lines={first + 3}, on_line_after={first + 2: lambda f, l: None}))
        workload.main()
        engine.disarm(1)
        workload.main()
        engine.arm(3, workload.catcher.__code__, engine.Request(
            on_func_end=lambda f, r, e: None))
        workload.main()
        engine.shutdown()
        workload.main()
'''


def churn_code(source):
    return textwrap.dedent(ARM_AND_DISARM.replace("$SOURCE", repr(source)))


@pytest.mark.parametrize("core", ["ctrace", "sysmon"])
@pytest.mark.parametrize("source", ["monitoring", "frame"])
def test_coverage_sees_every_line(tmp_path, core, source):
    body = '''
        import coverage
        cov = coverage.Coverage(data_file=None, branch=False)
        cov.start()
        if $WITH_ENGINE:
            churn()
        else:
            for _ in range(4):
                workload.main()
        cov.stop()
        data = cov.get_data()
        files = [f for f in data.measured_files() if f.endswith("workload.py")]
        emit({"lines": sorted(data.lines(files[0])), "core": cov._collector.tracer_name()
              if hasattr(cov._collector, "tracer_name") else None})
    '''
    env = {"COVERAGE_CORE": core}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    alone, _ = run_script(tmp_path / "a", body.replace("$WITH_ENGINE", "False"), env=env)
    ours, _ = run_script(tmp_path / "b", churn_code(source)
                         + textwrap.dedent(body.replace("$WITH_ENGINE", "True")), env=env)
    assert len(alone["lines"]) > 40
    assert ours["lines"] == alone["lines"]


@pytest.mark.parametrize("source", ["monitoring", "frame"])
def test_settrace_debugger_and_cprofile_see_the_same_events(tmp_path, source):
    result, _ = run_script(tmp_path, churn_code(source) + textwrap.dedent('''
        import cProfile, pstats
        def traced(action):
            events = []
            def tracer(frame, event, arg):
                if not frame.f_code.co_filename.endswith("workload.py"):
                    return None
                events.append((event, frame.f_code.co_name, frame.f_lineno))
                return tracer
            prof = cProfile.Profile()
            prof.enable()
            sys.settrace(tracer)
            action()
            sys.settrace(None)
            prof.disable()
            calls = sorted((name, row[1]) for (fn, _, name), row
                           in pstats.Stats(prof).stats.items() if fn.endswith("workload.py"))
            return events, calls
        def plain():
            for _ in range(4):
                workload.main()
        alone = traced(plain)
        ours = traced(churn)
        def collapse(events):
            # Any PEP 523 hook (even a pure forwarder) makes CPython report the
            # StopIteration that ends an `await` twice to tracers: SEND is no longer
            # specialized.  That is the hook's doing, not ours (csrc/evalframe.c).
            return [e for n, e in enumerate(events)
                    if not (e[0] == "exception" and n and events[n - 1] == e)]
        hooked = engine.status()["frame_source_refusal"] is None and $SOURCE == "frame"
        same = alone[0] == ours[0] if not hooked else collapse(alone[0]) == collapse(ours[0])
        emit({"same_trace": same, "n": len(alone[0]),
              "same_profile": alone[1] == ours[1], "profile": ours[1]})
    ''').replace("$SOURCE", repr(source)))
    assert result["n"] > 1000
    assert result["same_trace"]
    assert result["same_profile"], result["profile"]
