"""Updates reach code by identity, not by equality (issue 16.1).

twin_a and twin_b define the same functions on the same lines: their code objects compare
equal (the file name is not part of code equality) but are distinct objects. Each test
runs in a fresh interpreter against the real engine.
"""
import os

import pytest

from support_updates import run_json

PRELUDE = """
import json, importlib, sys
import twin_a, twin_b
from pyliveupdate.update import Instrument, Redefine, UpdateManager
from pyliveupdate import engine, _engine
assert twin_a.handler.__code__ == twin_b.handler.__code__
assert twin_a.handler.__code__ is not twin_b.handler.__code__
counts = {}
def counter(name):
    def count():
        counts[name] = counts.get(name, 0) + 1
    return count
"""


def test_instrument_on_one_twin_counts_only_that_twin():
    result, out = run_json(prelude=PRELUDE, source="""
        ua = Instrument('twin_a.handler', {'func_begin': counter('a')})
        ub = Instrument('twin_b.handler', {'func_begin': counter('b')})
        UpdateManager.apply_update(ub)
        for i in range(3): twin_a.handler(i)
        for i in range(2): twin_b.handler(i)
        only_b = dict(counts)
        UpdateManager.apply_update(ua)
        counts.clear()
        twin_a.handler(0); twin_b.handler(0); twin_b.handler(0)
        both = dict(counts)
        UpdateManager.revert_update(ub.id)               # b's revert leaves a armed
        counts.clear()
        twin_a.handler(0); twin_b.handler(0)
        after_b = dict(counts)
        listing = UpdateManager.ls()
        armed = [c.co_filename.rsplit('/', 1)[-1] for c in engine.armed_codes()]
        UpdateManager.revert_update(ua.id)
        counts.clear()
        twin_a.handler(0); twin_b.handler(0)
        print(json.dumps([only_b, both, after_b, [d['id'] for d in listing], armed,
                          counts, len(engine.armed_codes())]))
    """)
    only_b, both, after_b, listed, armed, after_all, left = result
    assert only_b == {"b": 2}
    assert both == {"a": 1, "b": 2}
    assert after_b == {"a": 1}
    assert listed == [1] and armed == ["twin_a.py"]
    assert after_all == {} and left == 0


@pytest.mark.parametrize("source", ["monitoring", "frame"])
def test_func_profiler_records_the_twin_it_names(source, tmp_path):
    result, _ = run_json(prelude=PRELUDE, source="""
        from pyliveupdate.modifications import FP
        FP.profile('twin_b.handler', source=%r)
        for i in range(3): twin_a.handler(i)
        for i in range(5): twin_b.handler(i)
        _engine.recorder_flush()
        funcs = _engine.recorder_live()[0]
        ida = (_engine.code_state(twin_a.handler.__code__) or {}).get('id')
        idb = _engine.code_state(twin_b.handler.__code__)['id']
        print(json.dumps([ida, funcs.get(idb, [0])[0],
                          sum(v[0] for k, v in funcs.items() if k != idb)]))
    """ % source, env={"PYLU_LOG_DIR": str(tmp_path / "logs")})
    ida, hits_b, others = result
    assert ida is None          # twin_a's code was never given a code id: never armed
    assert hits_b == 5 and others == 0


REDEFINE_SAME_CODE = """
    # Only a default changes: the new code object equals the old one.
    src = open(twin_b.__file__).read().replace('k=2', 'k=3')
    ns = {}
    exec(compile(src, twin_b.__file__, 'exec'), ns)
    assert ns['scaled'].__code__ == twin_b.scaled.__code__
    ins = Instrument('twin_b.scaled', {'func_begin': counter('b')})
    red = Redefine('twin_b', None, {'twin_b.scaled': ns['scaled']})
    seen = []
    def step(label):
        counts.clear()
        value = twin_b.scaled(5)
        seen.append([label, value, counts.get('b', 0)])
    for u in %s:
        UpdateManager.apply_update(u)
    step('both applied')
    for u in %s:
        UpdateManager.revert_update(u.id)
        step('reverted ' + u.kind)
    print(json.dumps(seen))
"""


def test_a_redefinition_with_equal_code_keeps_the_instrument_instrument_first():
    result, _ = run_json(prelude=PRELUDE, source=REDEFINE_SAME_CODE % ("[ins, red]", "[red, ins]"))
    assert result == [["both applied", 15, 1], ["reverted redefine", 10, 1],
                      ["reverted instrument", 10, 0]]


def test_a_redefinition_with_equal_code_keeps_the_instrument_redefine_first():
    result, _ = run_json(prelude=PRELUDE, source=REDEFINE_SAME_CODE % ("[red, ins]", "[red, ins]"))
    assert result == [["both applied", 15, 1], ["reverted redefine", 10, 1],
                      ["reverted instrument", 10, 0]]


def test_instrument_reverted_before_the_equal_redefinition():
    result, _ = run_json(prelude=PRELUDE, source=REDEFINE_SAME_CODE % ("[ins, red]", "[ins, red]"))
    assert result == [["both applied", 15, 1], ["reverted instrument", 15, 0],
                      ["reverted redefine", 10, 0]]


def test_code_compiled_later_from_the_same_file_is_armed_as_itself():
    result, _ = run_json(prelude=PRELUDE, source="""
        u = Instrument('twin_a.**', {'func_begin': counter('a')})
        UpdateManager.apply_update(u)
        old = twin_a.handler
        importlib.reload(twin_a)                  # new code objects, equal to the old ones
        assert twin_a.handler.__code__ == old.__code__
        assert twin_a.handler.__code__ is not old.__code__
        twin_a.handler(1); old(1); twin_b.handler(1)
        both = counts.get('a', 0)
        UpdateManager.revert_update(u.id)
        counts.clear()
        twin_a.handler(1); old(1)
        print(json.dumps([both, counts, len(engine.armed_codes())]))
    """)
    assert result == [2, {}, 0]


def test_fixture_twins_are_line_for_line_identical():
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fixtures_updates")
    with open(os.path.join(here, "twin_a.py")) as a, open(os.path.join(here, "twin_b.py")) as b:
        assert a.read() == b.read()
