"""pylu-attach on CPython 3.14+: sys.remote_exec (PEP 768), no gdb.

Runs whenever a CPython 3.14 is found (~/.pyenv/versions, PATH); the target runs in the
3.14 virtualenv `./dev env 3.14` builds (pyliveupdate compiled for 3.14)."""
import pytest

from support_attach import (clean_env, detach, dev_venv_python, find_python, os_threads, run_attach,
                            start_program)
from support_controller import controller, token  # noqa: F401

PY314 = find_python("3.14")
pytestmark = pytest.mark.skipif(
    PY314 is None, reason="no CPython 3.14 found (~/.pyenv/versions, PATH): the sys.remote_exec "
                          "path (PEP 768) is not exercised on this machine")


@pytest.fixture(scope="module")
def python314():
    venv = dev_venv_python("3.14")
    assert venv, "./dev env 3.14 failed"
    return venv


def test_attach_debug_and_detach_through_remote_exec(controller, token, python314):
    prog = start_program("busy_in_python.py", python=python314)
    try:
        out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
        assert out.returncode == 0, out
        assert "reached sys.remote_exec" in out.stdout
        assert "from the process's own environment" in out.stdout
        controller.wait_for(1)
        ok, lines = controller.run("FD.debug('__main__.step')")
        assert ok, lines
        controller.wait_line(lambda l: "__main__.step" in l and "returnvalues" in l)
        detach(controller, prog.pid)
    finally:
        prog.stop()


def test_a_process_that_opted_out_is_refused(token, python314):
    prog = start_program("sleeper.py", python=python314,
                         env=clean_env(PYTHON_DISABLE_REMOTE_DEBUG="1"))
    try:
        out = run_attach(prog.pid, 9, token)
        assert out.returncode == 1 and "PYTHON_DISABLE_REMOTE_DEBUG" in out.stdout, out
        assert os_threads(prog.pid) == 1
    finally:
        prog.stop()


def test_no_safe_point_withdraws_the_request(token, python314):
    """The main thread sleeps past the timeout: the request is withdrawn (when the script
    runs later it finds no parameters, removes its files and does nothing)."""
    prog = start_program("sleeper.py", python=python314)
    try:
        out = run_attach(prog.pid, 9, token, "--timeout", "1")
        assert out.returncode == 1 and "withdrawn" in out.stdout, out
        assert os_threads(prog.pid) == 1
    finally:
        prog.stop()
