"""`mod.**` reaches every function compiled from the module's files wherever the program
keeps it (issue 16.3), on both event sources; what has no Python code is named."""
import sys

import pytest

from support_updates import run_json

PRELUDE = """
import json, sys
import reach_mod
from pyliveupdate import _engine, engine, output
from pyliveupdate.update import UpdateManager
from pyliveupdate.modifications import FP, FD
output.send_to_stderr(False)

def exercise():
    s = reach_mod.Stats(4)
    return [reach_mod.add(1, 2), reach_mod.scale(3), reach_mod.HANDLERS['inc'](1),
            reach_mod.HANDLERS['dec'](1), s.mean, s == reach_mod.Stats(4),
            reach_mod.make_adder(2)(1)]

def hits_by_name(u):
    _engine.recorder_flush()
    funcs = _engine.recorder_live()[0]
    out = []                   # one [qualname, hits] per code: two lambdas of a line too
    for code in engine.armed_codes(u.id):
        module, qualname = u.located(code)
        out.append([qualname, funcs.get(_engine.code_state(code)['id'], (0,))[0]])
    return out
"""

EXPECTED_CALLED = {"add", "scale", "<lambda>", "Stats._calc_mean", "Stats.__eq__",
                   "Stats.__init__", "make_adder", "make_adder.<locals>.adder",
                   "curry.__call__", "cachedproperty.__get__"}


@pytest.mark.parametrize("source", ["monitoring", "frame"])
def test_func_profiler_reaches_functions_kept_anywhere(source, tmp_path):
    result, out = run_json(prelude=PRELUDE, source="""
        FP.profile('reach_mod.**', source=%r)
        u = UpdateManager.applied()[-1]
        values = exercise()
        print(json.dumps([values, hits_by_name(u), u.describe()]))
    """ % source, env={"PYLU_LOG_DIR": str(tmp_path / "logs")})
    values, hits, desc = result
    assert values == [3, 6, 2, 0, 2.0, True, 3]
    called = {k for k, v in hits if v}
    assert called >= EXPECTED_CALLED, EXPECTED_CALLED - called
    lambdas = [k for k, v in hits if k == "<lambda>" and v]
    assert len(lambdas) == 3          # the default argument's and both in HANDLERS
    assert desc["unreached"] == ["reach_mod.Stats.getter (attrgetter)",
                                 "reach_mod.Stats.half (partial)"]
    assert "not reached (no Python code): reach_mod.Stats.getter (attrgetter)" in out
    frame_ok = source == "frame" and sys.version_info >= (3, 13)
    assert desc["source"] == source
    assert desc["source_used"] == ("frame" if frame_ok else "monitoring")
    if source == "frame" and not frame_ok:
        assert "events come from sys.monitoring: the frame hook is refused on Python 3.12" in out


def test_class_star_and_exact_names_reach_a_function_held_by_a_descriptor():
    result, _ = run_json(prelude=PRELUDE, source="""
        from pyliveupdate import targets
        print(json.dumps([[t.name for t in targets.resolve('reach_mod.Stats.*')],
                          [t.name for t in targets.resolve('reach_mod.Stats._calc_mean')],
                          [t.name for t in targets.resolve('reach_mod.add')]]))
    """)
    star, exact, curried = result
    assert star == ["reach_mod.Stats.__init__", "reach_mod.Stats.__eq__",
                    "reach_mod.Stats._calc_mean"]
    assert exact == ["reach_mod.Stats._calc_mean"] and curried == ["reach_mod.add"]


def test_handlers_run_on_reached_functions_and_resolving_runs_no_program_code():
    result, _ = run_json(prelude=PRELUDE, source="""
        import collections
        from pyliveupdate.update import Instrument
        seen = collections.Counter()
        calls = []
        reach_mod.cachedproperty.__get__ = (lambda get: lambda *a: calls.append('get') or get(*a))(
            reach_mod.cachedproperty.__get__)
        u = Instrument('reach_mod.**', {'func_begin': lambda _parameters: seen.update(
            [','.join(sorted(_parameters))])})
        UpdateManager.apply_update(u)
        resolved_calls = list(calls)
        reach_mod.HANDLERS['inc'](5)
        reach_mod.add(1, 2)
        reach_mod.Stats(1).mean
        print(json.dumps([resolved_calls, seen]))
    """)
    resolved_calls, seen = result
    assert resolved_calls == []
    assert seen["v"] == 1                 # the lambda in the dict
    assert seen["a,b"] == 1               # add, behind curry
    assert seen["self"] >= 1              # _calc_mean, behind cachedproperty


def test_a_bad_source_is_refused_when_the_update_is_built():
    result, _ = run_json(prelude=PRELUDE, source="""
        from pyliveupdate.update import UpdateError
        errors = []
        for build in (lambda: FP.profile('reach_mod.add', source='hook'),
                      lambda: FD.debug('reach_mod.add', source=None)):
            try:
                build()
            except UpdateError as e:
                errors.append(str(e))
        print(json.dumps([errors, len(UpdateManager.all()), len(engine.armed_codes())]))
    """)
    errors, listed, armed = result
    assert errors == ["source must be one of auto, monitoring, frame, got 'hook'",
                      "source must be one of auto, monitoring, frame, got None"]
    assert listed == 0 and armed == 0


def test_auto_is_sys_monitoring_and_installs_no_frame_hook(tmp_path):
    result, _ = run_json(prelude=PRELUDE, source="""
        FP.profile('reach_mod.**')
        u = UpdateManager.applied()[-1]
        st = engine.status()
        print(json.dumps([u.describe()['source_used'], st['frame_hook_installed'],
                          st['sources']['frame'], repr(u)]))
    """, env={"PYLU_LOG_DIR": str(tmp_path / "logs")})
    used, hook, frame_codes, text = result
    assert used == "monitoring" and hook is False and frame_codes == 0
    assert "source" not in text
