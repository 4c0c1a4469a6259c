"""Line analysis (which lines hold code, what each reads and writes) and handler binding."""
import sys

import pytest

from support_updates import FIXTURES

sys.path.insert(0, FIXTURES)

from pyliveupdate import handlers  # noqa: E402
from pyliveupdate.handlers import HandlerError  # noqa: E402
from pyliveupdate.update import Instrument, UpdateError, UpdateManager  # noqa: E402


class Box:
    def __init__(self):
        self.x = 1

    @property
    def boom(self):
        raise AssertionError("a property ran during analysis")


def sample(box, n):
    total = n + box.x                     # +1
    box.x = total                         # +2
    squares = [i * i for i in range(n)]   # +3
    print(total, len(squares))            # +4
    return total + box.boom               # +5


FIRST = sample.__code__.co_firstlineno


def test_lines_with_code_and_what_they_read_and_write():
    info = handlers.analyse(sample.__code__)
    assert sorted(info) == [FIRST + k for k in range(1, 6)]
    assert info[FIRST + 1].reads == ("n", "box", "box.x") and info[FIRST + 1].writes == ("total",)
    assert info[FIRST + 2].writes == ("box.x",)
    # the inlined comprehension's own variable is neither read nor written by the line
    assert "i" not in info[FIRST + 3].reads + info[FIRST + 3].writes
    assert info[FIRST + 3].writes == ("squares",)
    assert {"print", "total", "len", "squares"} <= set(info[FIRST + 4].reads)


def test_bound_callables_read_values_from_a_real_frame_without_running_properties():
    seen = []
    field, table = handlers.bind("line_before", lambda _righthands, n: seen.append((_righthands, n)),
                                 sample.__code__, (FIRST + 5,), "sample")
    assert field == "on_line_before" and set(table) == {FIRST + 5}

    def probe(box, n):
        total = n + box.x
        table[FIRST + 5](sys._getframe(), FIRST + 5)
        return total
    # The handler was analysed for sample(); run it on a frame with the same names.
    probe(Box(), 3)
    (values, n), = seen
    assert n == 3 and values["total"] == 4 and values["box"].x == 1
    assert "box.boom" not in values          # a property is never evaluated


def test_func_end_callable_gets_return_value_exception_and_arguments():
    got = []
    field, f = handlers.bind("func_end", lambda _returnvalues, _exception, _parameters:
                             got.append((_returnvalues, _exception, _parameters)),
                             sample.__code__, (), "sample")

    def sample_like(box, n):
        f(sys._getframe(), 7, None)
    sample_like("B", 2)
    err = KeyError("k")
    f(sys._getframe(), None, err)
    assert got[0] == (7, None, {"box": "B", "n": 2}) and got[1][1] is err


@pytest.mark.parametrize("payload, expected", [
    ({"func_begin": lambda nope: None}, "has no variable 'nope'; available: box, n, total"),
    ({"func_begin": lambda _returnvalues: None}, "_returnvalues is not available at func_begin"),
    ({("line_after", (FIRST,)): lambda: None}, "holds no code in"),
    ({("line_after", (FIRST + 40,)): lambda: None}, "lines with code: %d-%d" % (FIRST + 1, FIRST + 5)),
    ({("var_def", ("zzz",)): lambda: None}, "no line of"),
    ({"func_middle": lambda: None}, "unknown join point 'func_middle'"),
    ({("line_after", "x"): lambda: None}, "lines must be"),
    ({"func_begin": 42}, "must be a function"),
    ({"func_begin": lambda *a: None}, "*args/**kwargs cannot be bound"),
    ({}, "no join point given"),
])
def test_bad_handlers_are_refused_when_the_update_is_built(payload, expected):
    before = dict(UpdateManager._updates)
    with pytest.raises(UpdateError) as err:
        Instrument("test_targets_lines.sample", payload)
    assert expected in str(err.value)
    assert UpdateManager._updates == before


def test_a_line_inside_a_nested_function_is_named():
    def outer():
        def inner():
            return 1
        return inner
    line = outer.__code__.co_firstlineno + 2
    with pytest.raises(HandlerError) as err:
        handlers.check_lines(outer.__code__, (line,), "outer")
    assert "belongs to the nested" in str(err.value) and "inner" in str(err.value)


def test_readme_join_point_list_is_accepted_as_pairs():
    # The seed README writes {('line_after', [12, 14]): h}: a list cannot be a dict key,
    # so a list of pairs with a list argument is accepted and converted.
    u = Instrument("test_targets_lines.sample", [(("line_after", [FIRST + 4, FIRST + 1]),
                                                  lambda total: None)])
    assert u.describe()["joinpoints"] == [("line_after", (FIRST + 1, FIRST + 4))]
    assert u.status == "created" and UpdateManager.get(u.id) is u
