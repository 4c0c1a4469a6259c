"""Hostile input, one table: each bad input gets its clear error, and nothing changes —
the program keeps running with the same outputs, and its updates, armed codes and
functions are as before."""
import os
import subprocess

import pytest

from support_hardening import LiveTarget, PYTHON

H = "lambda: None"
BAD_COMMANDS = [
    # patterns
    ("pattern: unknown module", "Instrument('nosuchmod.f', {'func_begin': %s})" % H,
     "is not imported in this process"),
    ("pattern: unknown function", "Instrument('__main__.nosuch', {'func_begin': %s})" % H,
     "nosuch"),
    ("pattern: empty", "Instrument('', {'func_begin': %s})" % H, "non-empty string"),
    ("pattern: empty segment", "Instrument('__main__..compute', {'func_begin': %s})" % H,
     "empty name between dots"),
    ("pattern: not a string", "Instrument(42, {'func_begin': %s})" % H, "scope must be"),
    ("pattern: a module", "Instrument('__main__', {'func_begin': %s})" % H, "is a module"),
    ("pattern: misplaced wildcard", "Instrument('*.compute', {'func_begin': %s})" % H,
     "wildcard"),
    # lines
    ("line: beyond the function", "Instrument('__main__.compute', {('line_before', 9999): %s})" % H,
     "9999"),
    ("line: negative", "Instrument('__main__.compute', {('line_before', -1): %s})" % H,
     "positive ints"),
    ("line: a string", "Instrument('__main__.compute', {('line_after', 'x'): %s})" % H,
     "positive ints"),
    ("line: a float", "Instrument('__main__.compute', {('line_after', 1.5): %s})" % H,
     "lines must be"),
    ("line: blank line between functions",
     "Instrument('__main__.compute', {('line_before', 14): %s})" % H, "14"),
    # variable names
    ("variable: not in the function",
     "Instrument('__main__.compute', {('var_def', 'nosuchvar'): lambda _variable: None})",
     "nosuchvar"),
    ("variable: empty name", "Instrument('__main__.compute', {('var_use', ''): %s})" % H,
     "variables must be names"),
    ("variable: not a name", "Instrument('__main__.compute', {('var_def', 5): %s})" % H,
     "variables must be"),
    # handler signatures
    ("handler: not callable", "Instrument('__main__.compute', {'func_begin': 5})",
     "must be a function"),
    ("handler: *args", "Instrument('__main__.compute', {'func_begin': lambda *a: None})",
     "*args/**kwargs cannot be bound"),
    ("handler: unknown variable",
     "Instrument('__main__.compute', {'func_begin': lambda nosuch: None})",
     "has no variable 'nosuch'"),
    ("handler: special of another join point",
     "Instrument('__main__.compute', {'func_begin': lambda _returnvalues: None})",
     "not available at func_begin"),
    ("handler: positional-only",
     "def h(a, /):\n    pass\nInstrument('__main__.compute', {'func_begin': h})",
     "positional-only"),
    ("join point: unknown", "Instrument('__main__.compute', {('func_middle', ()): %s})" % H,
     "unknown join point"),
    ("join point: none", "Instrument('__main__.compute', {})", "no join point"),
    # redefinitions
    ("redefine: unknown module", "Redefine('nosuchmod', None, {'nosuchmod.f': %s})" % H,
     "Module nosuchmod not found"),
    ("redefine: unknown class", "Redefine('__main__', None, {'__main__.Nope.sell': %s})" % H,
     "has no class 'Nope'"),
    ("redefine: not a dict", "Redefine('__main__', None, [1])", "must be a dict"),
    ("redefine: bad predefine", "Redefine('__main__', 42, {'__main__.compute': %s})" % H,
     "predefine must be"),
    # commands themselves
    ("command: syntax error", "def (:", "SyntaxError"),
    ("command: exits", "raise SystemExit(0)", "may not exit the program"),
    ("command: raises", "1/0", "ZeroDivisionError"),
    ("revert: unknown id", "LU.revert(12345)", "not found"),
    ("apply: unknown id", "UpdateManager.apply_update(777)", "Update 777 not found"),
]


@pytest.fixture(scope="module")
def live():
    t = LiveTarget()
    yield t
    t.close()


@pytest.mark.parametrize("src,expected", [c[1:] for c in BAD_COMMANDS],
                         ids=[c[0] for c in BAD_COMMANDS])
def test_bad_command_is_refused_clearly_and_changes_nothing(live, src, expected):
    before = live.state()
    ok, lines = live.run(src)
    text = "\n".join(lines)
    assert expected in text, text
    assert "pyliveupdate/" not in text, "internal frames leaked into the error:\n" + text
    assert live.state() == before
    live.assert_serving()


def test_a_good_update_after_all_the_bad_ones_still_works(live):
    before = live.state()
    ok, lines = live.run(
        "u = Instrument('__main__.compute', {'func_begin': lambda a: hits.append(a)})\n"
        "hits = []\nUpdateManager.apply_update(u)\nimport time; time.sleep(0.3)\n"
        "print(len(hits) > 0); LU.revert(u.id)")
    assert ok and "True" in lines, lines
    assert live.state()[0] == before[0]  # reverted: the same applied set as before
    live.assert_serving()


# --- patch files ------------------------------------------------------------------

PATCHES = [
    ("syntax error", "def broken(:\n    pass\n", "SyntaxError"),
    ("exception at import", "import __main__\nvalue = 1\nraise RuntimeError('patch is broken')\n",
     "RuntimeError: patch is broken"),
    ("bad update inside", "from pyliveupdate.update import Instrument\n"
     "Instrument('__main__.compute', {('line_before', 9999): lambda: None}).apply()\n",
     "9999"),
]


@pytest.mark.parametrize("body,expected", [p[1:] for p in PATCHES], ids=[p[0] for p in PATCHES])
def test_bad_patch_file_is_refused_clearly_and_changes_nothing(live, tmp_path, body, expected):
    path = tmp_path / "patch.py"
    path.write_text(body)
    before = live.state()
    ok, lines = live.run("patch(%r)" % str(path))
    assert not ok
    assert expected in "\n".join(lines), lines
    assert live.state() == before
    live.assert_serving()


def test_missing_patch_file_is_a_local_error(live, tmp_path):
    before = live.state()
    ok, _ = live.run("patch(%r)" % str(tmp_path / "nope.py"))
    assert not ok
    assert any("No such file" in e for e in live.controller.lines[-3:]), live.controller.lines[-3:]
    assert live.state() == before


# --- log files --------------------------------------------------------------------

def _write_log(tmp_path):
    """A real log of a short recording, made in a child process."""
    src = ("import sys; from pyliveupdate import _engine as e\n"
           "p = e.recorder_start(sys.argv[1], flush_ms=1, frame_ms=1)\n"
           "import time\n"
           "for i in range(3000):\n"
           "    e.recorder_emit(1, 1, 0); e.recorder_emit(3, 1, 0)\n"
           "    if i % 500 == 0: e.recorder_flush()\n"
           "e.recorder_stop(); print(p)\n")
    out = subprocess.run([PYTHON, "-c", src, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _damaged(tmp_path, kind):
    good = open(_write_log(tmp_path), "rb").read()
    data = {
        "empty": b"",
        "foreign": b"\x7fELF" + os.urandom(2000),
        "text file": b"hello, this is not a log\n" * 50,
        "header only": good[:40],
        "truncated": good[: len(good) * 2 // 3],
        "corrupted": good[:200] + bytes(b ^ 0x5A for b in good[200:600]) + good[600:],
    }[kind]
    path = tmp_path / ("bad-%s.pylog" % kind.replace(" ", "-"))
    path.write_bytes(data)
    return str(path), len(good)


@pytest.mark.parametrize("kind", ["empty", "foreign", "text file", "header only", "truncated",
                                  "corrupted"])
def test_damaged_log_reads_what_it_can_and_says_why(tmp_path, kind):
    from pyliveupdate import _engine
    path, _ = _damaged(tmp_path, kind)
    if kind in ("empty", "foreign", "text file", "header only"):
        with pytest.raises(ValueError) as err:
            _engine.LogReader(path)
        assert "log" in str(err.value)
    else:
        reader = _engine.LogReader(path)
        events = sum(1 for item in reader if item[0] == "event")
        assert not reader.complete
        assert reader.error and ("truncated" in reader.error or "corrupt" in reader.error), \
            reader.error
        assert events < 6000
    # The command-line tool says the same thing in one line, without a traceback.
    out = subprocess.run([PYTHON, "-m", "pyliveupdate_controller.processlogs", "-i", path,
                          "-o", str(tmp_path / "out"), "--format", "summary"],
                         capture_output=True, text=True, timeout=60)
    assert "Traceback" not in out.stderr, out.stderr
    if kind in ("empty", "foreign", "text file", "header only"):
        assert out.returncode != 0 and path in out.stderr, (out.returncode, out.stderr)


def test_log_reader_refuses_wrong_argument_types():
    from pyliveupdate import _engine
    for bad in (None, 42, b"\x00bad", "/nonexistent/dir/x.pylog"):
        with pytest.raises((TypeError, ValueError, OSError)):
            _engine.LogReader(bad)


def test_patch_that_never_finishes_importing_is_interrupted_at_the_timeout(tmp_path):
    live = LiveTarget()
    try:
        before = live.state()
        live.controller.server.command_timeout = 2.0
        path = tmp_path / "loop.py"
        path.write_text("import __main__\nn = 0\nwhile True:\n    n += 1\n")
        ok, lines = live.run("patch(%r)" % str(path))
        assert not ok
        assert "CommandTimeout" in "\n".join(lines) and "interrupted" in "\n".join(lines), lines
        live.assert_serving()
        # The stub is not left deaf: the next command runs, and nothing changed.
        live.controller.server.command_timeout = 30.0
        assert live.state() == before
    finally:
        live.close()
