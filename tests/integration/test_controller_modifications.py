"""Every predefined modification through the real controller, against examples/program1.py."""
import os
import re
import time

import pytest

from support_controller import (EXAMPLES, LocalController, controller, start_target,  # noqa: F401
                                targets, token)

PROGRAM1 = os.path.join(EXAMPLES, "program1.py")


def _body(line):
    return line.split("] ", 1)[1] if "] " in line else line


@pytest.fixture
def one(controller, targets, token, tmp_path):
    app = targets(PROGRAM1, controller.port, token, cwd=EXAMPLES, PYLU_LOG_DIR=str(tmp_path / "logs"))
    controller.wait_for(1)
    return app


def test_func_debugger_prints_arguments_and_return_values_everywhere(controller, one):
    ok, lines = controller.run("FD.debug('__main__.bar')")
    assert ok and "[%s] Update 1 applied" % controller.server.processes()[0].label in lines
    pat = re.compile(r"\] .*program1\.py, 10, __main__\.bar: parameters: \{'a': (\d)\}$")
    hit = controller.wait_line(pat.search)
    a = pat.search(hit).group(1)
    controller.wait_line(lambda l: l.endswith("program1.py, 16, __main__.bar: returnvalues: %s" % a))
    # The same lines reach the program's stderr, as in the original.
    one.wait_for_line(lambda l: "__main__.bar: parameters: {'a':" in l, stream="stderr")


def test_line_debugger_and_var_debugger_use_the_readme_lines(controller, one):
    ok, _ = controller.run("LD.debug('__main__.bar', [11, 12])")
    assert ok
    controller.wait_line(lambda l: re.search(r", 11, __main__\.bar: usevalues: \{'a': \d, 'foo': "
                                             r"<function foo", l))
    controller.wait_line(lambda l: re.search(r", 12, __main__\.bar: usevalues: \{'a': \d\}$", l))
    controller.wait_line(lambda l: re.search(r", 12, __main__\.bar: defvalues: \{'b': \d\}$", l))
    ok, _ = controller.run("LU.revert(1)\nVD.debug('__main__.bar', 'b')")
    assert ok
    mark = len(controller.lines)
    controller.wait_line(lambda l: re.search(r", 14, __main__\.bar: usevalues: \{'b': \d\}$", l),
                         start=mark)
    controller.wait_line(lambda l: re.search(r", 12, __main__\.bar: defvalues: \{'b': \d\}$", l),
                         start=mark)
    time.sleep(0.3)
    assert not any(", 11, __main__.bar" in l for l in controller.lines[mark + 5:])


def test_profilers_give_live_summaries(controller, one):
    ok, lines = controller.run("FP.profile(['__main__.**', 'module1.**'])")
    assert ok, lines
    assert sum("applied" in l for l in lines) == 2
    ok, lines = controller.run("LP.profile('__main__.bar', [11, 12])")
    assert ok, lines
    time.sleep(1.0)
    ok, lines = controller.run("FP.top()")
    assert ok
    rows = {_body(l).split()[0]: _body(l).split() for l in lines}
    assert int(rows["__main__.bar"][1]) > 0 and int(rows["module1.foo"][1]) > 0
    assert float(rows["__main__.bar"][2]) >= float(rows["__main__.bar"][4])  # total >= self
    ok, lines = controller.run("LP.show()")
    assert ok
    by_line = {int(_body(l).split()[0]): _body(l).split() for l in lines
               if re.match(r"\s*\d+\s+\d+", _body(l))}
    assert set(by_line) == {11, 12}
    assert int(by_line[11][1]) > 0 and by_line[11][4:] == ["foo(a)"]


def test_condition_and_ttl(controller, one):
    ok, _ = controller.run("FD.debug('__main__.bar', condition='a > 3', ttl=1.5)")
    assert ok
    line = controller.wait_line(lambda l: "update 1 expired: time to live of 1.5s ended; reverted" in l,
                                timeout=20)
    assert line
    seen = {int(m.group(1)) for m in (re.search(r"parameters: \{'a': (\d)\}", l)
                                      for l in controller.lines) if m}
    assert seen == {4, 5}
    ok, lines = controller.run("LU.ls(all=True, detail=True)")
    assert ok and any("status: reverted" in l and "ttl: 1.5s" in l for l in lines)
    # The controller heard of the expiry (an event), and never sends the update again.
    controller.wait_line(lambda e: "update 1 expired" in e, events=True)
    ok, lines = controller.run("LU.ls(all=True)")
    assert lines[1].startswith("1  expired   reverted in 1"), lines


def test_rate_limit_drops_are_counted_and_reported(controller, one):
    ok, _ = controller.run("LD.debug('__main__.bar', rate=2)")
    assert ok
    controller.wait_line(lambda l: re.search(r"update 1: \d+ lines? of output dropped by the rate "
                                             r"limit \(2 lines/s", l), timeout=20)


def test_bad_input_gives_clear_errors_and_changes_nothing(controller, one):
    cases = [
        ("FD.debug('__main__.nope')", "has no function, class or member 'nope'"),
        ("LP.profile('__main__.bar', [99])", "line 99 holds no code in __main__.bar; "
                                             "lines with code: 11-16"),
        ("FD.debug('nomod.f')", "module 'nomod' is not imported"),
        ("FD.debug('__main__.bar', condition='a >')", "is not a valid expression"),
        ("FP.profile(['__main__.bar', '__main__.nope'])", "nope"),
        ("LU.revert(42)", "not reverted: 42"),
    ]
    for cmd, message in cases:
        ok, lines = controller.run(cmd)
        assert not ok, cmd
        assert message in lines[-1], (cmd, lines)
    ok, lines = controller.run("LU.ls()\nimport pyliveupdate.engine as e\nlen(e.armed_codes())")
    assert ok and _body(lines[0]) == "no update is applied" and _body(lines[-1]) == "0"
    mark = len(one.stdout)
    one.wait_for_line(lambda l: l == "foo 2", start=mark)


def test_show_prints_the_target_source_with_line_numbers(controller, one):
    ok, lines = controller.run("show('__main__.bar')")
    assert ok
    body = [_body(l) for l in lines]
    assert body[0].startswith("__main__.bar (") and body[0].endswith("program1.py:10)")
    assert body[2] == "11      foo(a)" and body[3] == "12      b = a"
    ok, lines = controller.run("show('__main__.missing')")
    assert not ok and "has no member 'missing'" in lines[-1]


def test_completion_comes_from_the_target(controller, one):
    assert controller.server.complete("module1.f") == ["module1.foo"]
    assert "__main__.Foo.cmethod" in controller.server.complete("__main__.Foo.")
    assert "FuncProfiler" in controller.server.complete("Func")


def test_a_calls_lines_pass_or_drop_together_and_drop_notices_are_merged(controller, one):
    ok, _ = controller.run("FD.debug('__main__.bar', rate=3)")
    assert ok
    time.sleep(4)
    ok, _ = controller.run("LU.revert(1)")
    time.sleep(1)                   # output streamed meanwhile can arrive after the reply
    lines = [_body(l) for l in controller.lines]
    params = sum(": parameters: " in l for l in lines)
    returns = sum(": returnvalues: " in l for l in lines)
    notices = [l for l in lines if "lines of output dropped" in l or "line of output dropped" in l]
    assert params >= 3 and abs(params - returns) <= 1, (params, returns)
    # One notice per second at most (plus the one at the revert), not one per line.
    assert 1 <= len(notices) <= 6, notices
    # Each shown once: the revert's notice reaches the controller as output, not also in
    # the command's reply (each notice's running total differs).
    assert len(set(notices)) == len(notices), notices


def test_a_condition_reading_an_unknown_name_is_refused_when_built(controller, one):
    ok, lines = controller.run("FD.debug('__main__.bar', condition='zz > 1')")
    assert not ok
    text = "\n".join(lines)
    assert "condition 'zz > 1' reads zz" in text and "parameters and locals are: a, b" in text
    ok, lines = controller.run("LU.ls()")
    assert ok and not any("__main__.bar" in line for line in lines), lines   # nothing applied
    # Parameters, globals of the module (foo, os), builtins and the condition's own
    # comprehension variable are fine.
    ok, lines = controller.run(
        "FD.debug('__main__.bar', condition='a > 3 and foo and os and all(x for x in [a])')")
    assert ok, lines
    controller.wait_line(lambda l: re.search(r"__main__\.bar: parameters: \{'a': [4-9]\}", l))
    # A wildcard scope skips the functions that lack the name and arms those that have it.
    ok, lines = controller.run("FD.debug('__main__.Foo.*', condition='cls is not None')")
    assert ok, lines
    ok, lines = controller.run("print([(u.id, u.instrumented) for u in UpdateManager.applied()][-1])")
    assert ok and lines[-1].endswith("['__main__.Foo.cmethod'])"), lines


def test_each_update_of_a_command_is_listed_by_what_it_covers(controller, one):
    ok, lines = controller.run("FP.profile(['__main__.bar', 'module1.foo'])")
    assert ok, lines
    ok, lines = controller.run("LU.ls()")
    assert ok
    rows = [line for line in lines if line[:1].isdigit() and "active" in line]
    assert len(rows) == 2 and rows[0].startswith("1  active") and rows[1].startswith("2  active"), lines
    assert rows[0].endswith("→ FuncProfiler __main__.bar"), rows
    assert rows[1].endswith("→ FuncProfiler module1.foo"), rows
    # One update per command: no label needed.
    ok, _ = controller.run("FD.debug('__main__.bar', rate=1)")
    ok, lines = controller.run("LU.ls()")
    assert any(line.startswith("3  active") and "→" not in line for line in lines), lines
