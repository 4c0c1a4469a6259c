"""Instrument in real processes against the real engine: every join point's values, stacking
and revert in any order, carry-over across redefinition, code seen later, bad input."""
import itertools

from support_updates import run_json

PRELUDE = """
import json, asyncio, sys
import calc, shop
from pyliveupdate.update import Instrument, Redefine, UpdateManager
from pyliveupdate import engine
got = []
def rec(*items):
    got.append(items)
"""


def test_function_join_points_get_arguments_return_values_and_exceptions():
    result, out = run_json(prelude=PRELUDE, source="""
        u = Instrument('calc.bar', {
            'func_begin': lambda a, _parameters: rec('begin', a, _parameters),
            'func_end': lambda c, _returnvalues, _exception:
                rec('end', c, _returnvalues, repr(_exception)),
        })
        UpdateManager.apply_update(u)
        calc.bar(1)
        try:
            calc.bar(60)
        except ValueError:
            pass
        UpdateManager.revert_update(u.id)
        calc.bar(2)                                  # reverted: nothing recorded
        print(json.dumps(got))
    """)
    assert result == [["begin", 1, {"a": 1}], ["end", 4, 4, "None"],
                      ["begin", 60, {"a": 60}], ["end", 122, None, "ValueError('too big: 122')"]]
    assert "Update 1 applied" in out and "Update 1 reverted" in out


def test_line_join_points_see_reads_before_and_writes_after():
    result, _ = run_json(prelude=PRELUDE, source="""
        L = calc.bar.__code__.co_firstlineno
        u = Instrument('calc.bar', {
            ('line_before', (L + 1, L + 2)): lambda _line, _righthands: rec('before', _line - L, _righthands),
            ('line_after', (L + 1, L + 2)): lambda _line, _lefthands: rec('after', _line - L, _lefthands),
        })
        UpdateManager.apply_update(u)
        calc.bar(3)
        print(json.dumps(got))
    """)
    assert result == [["before", 1, {"a": 3}], ["after", 1, {"b": 4}],
                      ["before", 2, {"b": 4}], ["after", 2, {"c": 8}]]


def test_variable_join_points_on_a_method_with_attribute_chains():
    result, _ = run_json(prelude=PRELUDE, source="""
        u = Instrument('calc.Acc.add', {
            ('var_def', ('self.total',)): lambda _variable: rec('def', _variable),
            ('var_use', ('x',)): lambda _variable, self: rec('use', _variable, self.total),
        })
        UpdateManager.apply_update(u)
        acc = calc.Acc()
        acc.add(5); acc.add(7)
        print(json.dumps(got))
    """)
    assert result == [["use", {"x": 5}, 0], ["def", {"self.total": 5}],
                      ["use", {"x": 7}, 5], ["def", {"self.total": 12}]]


def test_closures_generators_and_async_functions():
    result, _ = run_json(prelude=PRELUDE, source="""
        inner_line = calc.outer(0).__code__.co_firstlineno
        gen_line = calc.gen.__code__.co_firstlineno
        updates = [
            Instrument('calc.outer.inner', {'func_begin': lambda v, k: rec('inner', v, k),
                                            ('line_after', (inner_line + 1,)): lambda w: rec('w', w)}),
            Instrument('calc.gen', {'func_begin': lambda n: rec('gen begin', n),
                                    ('var_def', ('j',)): lambda _variable: rec('j', _variable['j']),
                                    'func_end': lambda _returnvalues: rec('gen end', _returnvalues)}),
            Instrument('calc.co', {'func_begin': lambda x: rec('co begin', x),
                                   'func_end': lambda y, _returnvalues: rec('co end', y, _returnvalues)}),
        ]
        for u in updates:
            assert UpdateManager.apply_update(u)
        f = calc.outer(10)                 # a closure created after the update was applied
        f(1)
        list(calc.gen(2))
        asyncio.run(calc.co(1))
        print(json.dumps(got))
    """)
    assert result == [["inner", 1, 10], ["w", 11],
                      ["gen begin", 2], ["j", 0], ["j", 10], ["gen end", None],
                      ["co begin", 1], ["co end", 6, 6]]


def test_readme_instrument_example_with_a_list_of_lines():
    result, out = run_json(prelude=PRELUDE, source="""
        L = calc.bar.__code__.co_firstlineno
        def _line_after(b):
            print('b is', b)
        update = Instrument('calc.bar', [(('line_after', [L + 1, L + 2]), _line_after)])
        UpdateManager.apply_update(update)
        calc.bar(1)
        print(json.dumps(repr(update)))
    """)
    assert out.count("b is 2") == 2
    assert result == "{type: instrument, status: applied, scope: calc.bar, instrumented: [calc.bar]}"


def test_three_stacked_instruments_revert_in_every_order():
    orders = [list(p) for p in itertools.permutations([0, 1, 2])]
    result, _ = run_json(prelude=PRELUDE, source="""
        codes = []
        results = []
        ups = [Instrument('calc.bar', {'func_begin': (lambda n: lambda: rec(n))(n)}) for n in (1, 2, 3)]
        for order in %r:
            for u in ups:
                assert UpdateManager.apply_update(u.id)
            trace = []
            for i in [None] + order:
                if i is not None:
                    assert UpdateManager.revert_update(ups[i].id)
                del got[:]
                calc.bar(0)
                trace.append([g[0] for g in got])
            results.append(trace)
        st = engine.status()
        mon = sys.monitoring
        tool = st['tool_id']
        local = mon.get_local_events(tool, calc.bar.__code__) if tool is not None else 0
        print(json.dumps([results, st['armed_codes'], st['watches'], local,
                          st['frame_hook_installed']]))
    """ % orders)
    results, armed, watches, local, hook = result
    for order, trace in zip(orders, results):
        alive = [1, 2, 3]
        expected = [list(alive)]
        for i in order:
            alive.remove(i + 1)
            expected.append(list(alive))
        assert trace == expected, (order, trace)
    assert armed == 0 and watches == {} and local == 0 and hook is False


def test_instrumentation_follows_redefinition_and_its_revert_in_any_order():
    result, out = run_json(prelude=PRELUDE, source="""
        L = shop.price.__code__.co_firstlineno
        ins = Instrument('shop.price', {'func_begin': lambda qty: rec('begin', qty),
                                        ('line_after', (L + 1,)): lambda total: rec('total', total)})
        UpdateManager.apply_update(ins)
        def price(qty):
            return qty * 1000
        red = Redefine('shop', None, {'shop.price': price})
        UpdateManager.apply_update(red)
        shop.price(1)                       # new code: func_begin follows, the line is gone
        UpdateManager.revert_update(red.id)
        shop.price(2)                       # original code again: both handlers
        UpdateManager.apply_update(red.id)
        UpdateManager.revert_update(ins.id) # revert the older update first
        shop.price(3)
        UpdateManager.revert_update(red.id)
        shop.price(4)
        st = engine.status()
        print(json.dumps([got, st['armed_codes'], ins.notes]))
    """)
    got, armed, notes = result
    assert got == [["begin", 1], ["begin", 2], ["total", 20]]
    assert armed == 0
    assert any("shop.price now runs code from <string>; its line_after handler on lines"
               in n for n in notes)
    assert "note: update 1: shop.price now runs code from <string>" in out


def test_code_seen_later_is_covered_modules_imported_after_apply():
    result, _ = run_json(prelude=PRELUDE, source="""
        u = Instrument('**', {'func_begin': lambda: rec('start')})
        UpdateManager.apply_update(u)
        before = len(got)
        import late_mod                      # imported after the update was applied
        del got[:]
        late_mod.late(2)
        late_calls = len(got)
        UpdateManager.revert_update(u.id)
        del got[:]
        late_mod.late(2); calc.bar(1)
        print(json.dumps([late_calls, len(got), engine.status()['armed_codes']]))
    """)
    assert result == [1, 0, 0]


def test_a_failing_handler_never_disturbs_the_program():
    result, _ = run_json(prelude=PRELUDE, source="""
        def bad(a):
            raise RuntimeError('handler bug')
        u = Instrument('calc.bar', {'func_begin': bad})
        UpdateManager.apply_update(u)
        values = [calc.bar(i) for i in range(3)]
        rep = engine.handler_report(u.id)
        print(json.dumps([values, rep['errors'], rep['last_error']]))
    """)
    assert result == [[2, 4, 6], 3, "RuntimeError: handler bug"]


def test_bad_instrument_input_applies_nothing():
    result, _ = run_json(prelude=PRELUDE, source="""
        errors = []
        for scope, payload in [
                ('nope_mod.f', {'func_begin': lambda: None}),
                ('calc.barr', {'func_begin': lambda: None}),
                ('calc.bar', {('line_before', (1,)): lambda: None}),
                ('calc.bar', {'func_begin': lambda zz: None}),
                ('calc.**', {'func_begin': lambda zz: None})]:
            try:
                Instrument(scope, payload)
                errors.append(None)
            except ValueError as e:
                errors.append(str(e))
        print(json.dumps([errors, engine.status()['armed_codes'], len(UpdateManager._updates)]))
    """)
    errors, armed, registered = result
    assert "module 'nope_mod' is not imported" in errors[0]
    assert "did you mean bar" in errors[1]
    assert "line 1 holds no code in calc.bar; lines with code:" in errors[2]
    assert "has no variable 'zz'; available: a, b, c" in errors[3]
    assert "no target fits the handlers" in errors[4]
    assert armed == 0 and registered == 0


def test_static_class_methods_and_property_getters_are_instrumented():
    result, _ = run_json(prelude=PRELUDE, source="""
        u = Instrument('shop.Cart.*', {'func_begin': lambda _parameters: rec(sorted(_parameters))})
        UpdateManager.apply_update(u)
        cart = shop.Cart.make()                       # classmethod, then __init__
        shop.Cart.unit()                              # staticmethod
        cart.add('x')
        cart.size                                     # property getter
        print(json.dumps([got, sorted(u.instrumented)]))
    """)
    got, instrumented = result
    assert got == [[["cls"]], [["self"]], [[]], [["item", "self"]], [["self"]]]
    assert instrumented == sorted(["shop.Cart.__init__", "shop.Cart.add", "shop.Cart.unit",
                                   "shop.Cart.make", "shop.Cart.size", "shop.Cart.__getattr__"])
