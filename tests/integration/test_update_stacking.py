"""Instrumentation and redefinitions stack in any order (issue 16.2).

Every predefined modification and a plain Instrument on stack_mod.f keep firing after f is
redefined — with a new body, with new defaults only (equal code), with its very same
source — and after that Redefine is reverted; applied in either order, reverted in either
order. "Firing" is measured on the code that runs: handler calls for the handler-based
updates, the flusher's live aggregates of the running code's id for the profilers.
"""
import itertools

import pytest

from support_updates import run_json

PRELUDE = """
import json, sys
import stack_mod
from pyliveupdate import _engine, engine, output
from pyliveupdate.update import Instrument, Redefine, UpdateManager
from pyliveupdate.modifications import FP, LP, FD, LD, VD
output.send_to_stderr(False)
lines_out = []
output.add_stream(lambda uid, kind, text: lines_out.append(uid))
SRC = open(stack_mod.__file__).read()

def redefinition(kind):
    ns = {}
    if kind == 'new body':
        exec("def f(x, k=2):\\n    y = x - k\\n    z = y * 2\\n    return z\\n", ns)
    elif kind == 'defaults only':
        exec(compile(SRC.replace('k=2', 'k=3'), stack_mod.__file__, 'exec'), ns)
        assert ns['f'].__code__ == stack_mod.f.__code__
    else:
        exec(compile(SRC, stack_mod.__file__, 'exec'), ns)
    return Redefine('stack_mod', None, {'stack_mod.f': ns['f']})

def make(kind):
    before = {u.id for u in UpdateManager.all()}
    if kind == 'Instrument':
        u = Instrument('stack_mod.f', {'func_begin': lambda x: None})
        assert UpdateManager.apply_update(u)
    elif kind == 'FP':
        FP.profile('stack_mod.f')
    elif kind == 'FP frame':                 # the PEP 523 source (3.13+; 3.12 falls back)
        FP.profile('stack_mod.f', source='frame')
    elif kind == 'LP':
        LP.profile('stack_mod.f', [])
    elif kind == 'FD':
        FD.debug('stack_mod.f')
    elif kind == 'LD':
        LD.debug('stack_mod.f')
    elif kind == 'VD':
        VD.debug('stack_mod.f', 'x')
    new = [u for u in UpdateManager.all() if u.id not in before]
    assert len(new) == 1 and new[0].status == 'applied', new
    return new[0]

def score(u):
    # How much u has recorded so far (on whichever code of f it is armed).
    if u.kind in ('FuncProfiler', 'LineProfiler'):
        _engine.recorder_flush()
        funcs, lines = _engine.recorder_live()
        ids = {(_engine.code_state(c) or {}).get('id') for c in engine.armed_codes(u.id)}
        if u.kind == 'FuncProfiler':
            return sum(v[0] for k, v in funcs.items() if k in ids)
        return sum(v[0] for k, v in lines.items() if k[0] in ids)
    if u.kind == 'instrument':
        return engine.handler_report(u.id)['calls']
    return lines_out.count(u.id)

def fires(u):
    before = score(u)
    stack_mod.f(5)
    return score(u) > before
"""

SCRIPT = """
results = []
mod_kind = %(mod)r
for redef_kind, apply_order, revert_order in %(cases)r:
    red = redefinition(redef_kind)
    if apply_order == 'mod first':
        m = make(mod_kind); assert UpdateManager.apply_update(red)
    else:
        assert UpdateManager.apply_update(red); m = make(mod_kind)
    row = [redef_kind, apply_order, revert_order, fires(m), stack_mod.f(5)]
    first, second = (red, m) if revert_order == 'redefine first' else (m, red)
    assert UpdateManager.revert_update(first.id)
    row += [fires(m) if m.status == 'applied' else None, stack_mod.f(5)]
    assert UpdateManager.revert_update(second.id)
    row += [fires(m), stack_mod.f(5), len(engine.armed_codes())]
    results.append(row)
print(json.dumps(results))
"""

MODIFICATIONS = ["Instrument", "FP", "FP frame", "LP", "FD", "LD", "VD"]
REDEFINITIONS = {"new body": 6, "defaults only": 16, "same source": 11}   # f(5) once redefined
CASES = list(itertools.product(REDEFINITIONS, ["mod first", "redefine first"],
                               ["redefine first", "mod first"]))


@pytest.mark.parametrize("mod", MODIFICATIONS)
def test_modification_keeps_firing_through_redefinition_and_revert(mod, tmp_path):
    result, _ = run_json(prelude=PRELUDE, source=SCRIPT % {"mod": mod, "cases": CASES},
                         env={"PYLU_LOG_DIR": str(tmp_path / "logs")}, timeout=120)
    assert len(result) == len(CASES)
    for row in result:
        redef, apply_order, revert_order, both, value, after_first, value1, after_both, \
            value2, armed = row
        case = (mod, redef, apply_order, revert_order)
        assert both is True, case
        assert value == REDEFINITIONS[redef], case
        if revert_order == "redefine first":
            assert after_first is True and value1 == 11, case       # back on the original
        else:
            assert after_first is None and value1 == REDEFINITIONS[redef], case
        assert after_both is False and value2 == 11 and armed == 0, case


def test_nested_lambdas_of_one_name_follow_a_redefinition():
    result, _ = run_json(prelude=PRELUDE, source="""
        import collections
        hits = collections.Counter()
        u = Instrument('stack_mod.pair.<lambda>', {'func_begin': lambda v: hits.update([v])})
        assert UpdateManager.apply_update(u)
        ns = {}
        exec(compile(SRC, stack_mod.__file__, 'exec'), ns)
        red = Redefine('stack_mod', None, {'stack_mod.pair': ns['pair']})
        assert UpdateManager.apply_update(red)
        stack_mod.pair(1)
        patched = sum(hits.values())
        UpdateManager.revert_update(red.id)
        hits.clear()
        stack_mod.pair(1)
        print(json.dumps([patched, sum(hits.values()), len(u.instrumented),
                          len(engine.armed_codes(u.id))]))
    """)
    assert result == [2, 2, 2, 2]


def test_profiler_rows_of_patched_and_original_bodies_stay_apart(tmp_path):
    result, _ = run_json(prelude=PRELUDE, source="""
        FP.profile('stack_mod.f')
        fp = UpdateManager.applied()[-1]
        original = stack_mod.f.__code__
        red = redefinition('same source')
        assert UpdateManager.apply_update(red)
        patched = stack_mod.f.__code__
        for _ in range(3): stack_mod.f(1)
        UpdateManager.revert_update(red.id)
        for _ in range(2): stack_mod.f(1)
        _engine.recorder_flush()
        funcs = _engine.recorder_live()[0]
        ids = [_engine.code_state(c)['id'] for c in (original, patched)]
        path = _engine.recorder_stats()['path']
        _engine.recorder_stop()
        names = {}
        for item in _engine.LogReader(path):
            if item[0] == 'code' and item[1] in ids:
                names[item[1]] = item[2]
        print(json.dumps([[funcs.get(i, [0])[0] for i in ids], [names.get(i) for i in ids],
                          ids[0] != ids[1]]))
    """, env={"PYLU_LOG_DIR": str(tmp_path / "logs")})
    hits, names, distinct = result
    assert distinct and hits == [2, 3]
    assert names[0] == "f" and names[1] == "f [update 2]"
