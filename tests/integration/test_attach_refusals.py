"""pylu-attach refuses, with a reason and what to change, and leaves the process as it was:
no process, not CPython, too old, stopped, already traced, another user's without
privilege (a real unprivileged user via setpriv), root without CAP_SYS_PTRACE, Yama
scopes, no debug symbols, no gdb, no safe point, no loadable pyliveupdate."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from support_attach import (BARE_PYTHON, VERSION, clean_env, dev_venv_python,
                            find_python, os_threads, parse_state, process_state, run_attach,
                            start_program)
from support_controller import controller, token  # noqa: F401

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
          # to read the interpreter and this tree under /root, and nothing more
          "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
NO_PTRACE_CAP = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"]


def _tracer(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("TracerPid:")).split()[1])


def _untouched(prog, threads=1):
    assert prog.alive() and _tracer(prog.pid) == 0
    assert process_state(prog.pid) in "SR"
    assert os_threads(prog.pid) == threads


def test_no_such_process(token):
    gone = subprocess.Popen(["true"])
    gone.wait()
    out = run_attach(gone.pid, 9, token)
    assert out.returncode == 2 and "there is no process %d" % gone.pid in out.stdout, out


def test_not_cpython(token):
    proc = subprocess.Popen(["sleep", "300"])
    try:
        time.sleep(0.2)
        out = run_attach(proc.pid, 9, token)
        assert out.returncode == 2 and "is not a CPython process" in out.stdout, out
        assert proc.poll() is None and _tracer(proc.pid) == 0
    finally:
        proc.kill()
        proc.wait()


def test_python_older_than_3_12(token):
    old = find_python("3.11") or find_python("3.10") or (
        "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None)
    if old is None or subprocess.run([old, "-c", "import sys; sys.exit(sys.version_info >= (3, 12))"],
                                     cwd="/").returncode:
        pytest.skip("no CPython older than 3.12 on this machine")
    prog = start_program("sleeper.py", python=old)
    try:
        out = run_attach(prog.pid, 9, token)
        assert out.returncode == 2 and "pyliveupdate needs CPython 3.12 or newer" in out.stdout, out
        _untouched(prog)
    finally:
        prog.stop()


def test_stopped_process_is_left_stopped(token):
    prog = start_program("sleeper.py")
    try:
        os.kill(prog.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while process_state(prog.pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.02)
        out = run_attach(prog.pid, 9, token)
        assert out.returncode == 2 and "is stopped" in out.stdout and "kill -CONT" in out.stdout, out
        assert process_state(prog.pid) == "T" and _tracer(prog.pid) == 0
    finally:
        os.kill(prog.pid, signal.SIGCONT)
        prog.stop()


def test_already_traced_process(token):
    prog = start_program("sleeper.py")
    holder = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-p", str(prog.pid),
                               "-ex", "shell sleep 30"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True,
                              env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    try:
        deadline = time.monotonic() + 60
        while _tracer(prog.pid) != holder.pid and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _tracer(prog.pid) == holder.pid, "the holding gdb did not attach"
        out = run_attach(prog.pid, 9, token)
        assert out.returncode == 2 and "already being traced by pid %d" % holder.pid in out.stdout, out
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        prog.stop()


def test_another_users_process_without_privilege(token):
    prog = start_program("sleeper.py")   # ours (root)
    try:
        out = run_attach(prog.pid, 9, token, prefix=NOBODY)
        assert out.returncode == 2, out
        assert "belongs to user root, not to you (nobody)" in out.stdout, out
        _untouched(prog)
    finally:
        prog.stop()


def test_root_without_cap_sys_ptrace_then_with_it(controller, token):
    prog = start_program("sleeper.py", prefix=NOBODY)    # nobody's process
    try:
        out = run_attach(prog.pid, controller.port, token, prefix=NO_PTRACE_CAP)
        assert out.returncode == 2, out
        assert "root without CAP_SYS_PTRACE" in out.stdout and "--cap-add=SYS_PTRACE" in out.stdout
        _untouched(prog)
        # With the capability, root attaches to another user's process; the hand-off
        # files are made readable to that user only.
        out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
        assert out.returncode == 0, out
        assert "user nobody" in out.stdout
        controller.wait_for(1)
        ok, lines = controller.run("import os; os.getuid()")
        assert ok and lines[-1].endswith(" 65534"), lines
        ok, lines = controller.run("LU.detach()")
        assert ok, lines
    finally:
        prog.stop()


@pytest.mark.parametrize("scope, has_cap, expected", [
    (1, False, "ptrace_scope is 1"), (2, False, "ptrace_scope is 2"), (3, True, "ptrace_scope is 3")])
def test_yama_scopes_simulated(tmp_path, scope, has_cap, expected):
    """This kernel has no Yama: the scope file is replaced, the capability really dropped."""
    prog = start_program("sleeper.py")
    scope_file = tmp_path / "ptrace_scope"
    scope_file.write_text("%d\n" % scope)
    code = ("from pyliveupdate_controller.attach import target\n"
            "try:\n    target.inspect(%d, yama_path=%r)\nexcept target.Refusal as e:\n    print(e)\n"
            % (prog.pid, str(scope_file)))
    try:
        out = subprocess.run([*([] if has_cap else NO_PTRACE_CAP), sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert expected in out.stdout, out
        assert ("sysctl kernel.yama.ptrace_scope" in out.stdout) == (scope in (1, 2)), out
        _untouched(prog)
    finally:
        prog.stop()


def test_cpython_without_debug_symbols(token, tmp_path):
    """A copy of libpython stripped of its symbols, loaded instead of the real one."""
    import sysconfig
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("INSTSONAME")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not name or shutil.which("strip") is None:
        pytest.skip("this CPython is not built as a shared libpython (or strip is missing)")
    shutil.copy(os.path.join(libdir, name), tmp_path / name)
    subprocess.run(["strip", "--strip-all", str(tmp_path / name)], check=True)
    env = clean_env(LD_LIBRARY_PATH=str(tmp_path))
    prog = start_program("sleeper.py", env=env)
    try:
        with open("/proc/%d/maps" % prog.pid) as f:
            if str(tmp_path / name) not in f.read():
                pytest.skip("the interpreter's RPATH wins over LD_LIBRARY_PATH here")
        out = run_attach(prog.pid, 9, token)
        assert out.returncode == 1, out
        assert "has no debug symbols" in out.stdout, out
        assert "apt-get install python%s-dbg" % VERSION in out.stdout, out
        _untouched(prog)
    finally:
        prog.stop()


def test_no_gdb_says_how_to_install_it(token):
    prog = start_program("sleeper.py")
    try:
        env = dict(os.environ, PATH=os.path.dirname(sys.executable))
        out = run_attach(prog.pid, 9, token, env=env)
        assert out.returncode == 1 and "apt-get install gdb" in out.stdout, out
        _untouched(prog)
    finally:
        prog.stop()


def test_no_safe_point_times_out_and_changes_nothing(token):
    prog = start_program("busy_in_c.py")
    try:
        time.sleep(0.3)
        out = run_attach(prog.pid, 9, token, "--timeout", "2")
        assert out.returncode == 1, out
        assert "no safe point within 2 s" in out.stdout and "Nothing was changed" in out.stdout, out
        assert prog.alive() and _tracer(prog.pid) == 0 and os_threads(prog.pid) == 1
    finally:
        prog.stop()


def test_no_pyliveupdate_that_this_process_can_load(token):
    """The program's interpreter has no pyliveupdate, and the attaching one's is built for
    another Python version: refused, and the process imported nothing."""
    other = "3.13" if VERSION == "3.12" else "3.12"
    if find_python(other) is None:
        pytest.skip("no CPython %s on this machine to attach from" % other)
    attacher = dev_venv_python(other)
    assert attacher, "./dev env %s failed" % other
    prog = start_program("two_threads.py", python=BARE_PYTHON)
    try:
        before = parse_state(prog.wait_for_line(lambda l: l.startswith("state")))
        out = subprocess.run([attacher, "-m", "pyliveupdate_controller.attach.cli", str(prog.pid),
                              "--controller", "127.0.0.1:9", "--token", token],
                             capture_output=True, text=True, timeout=180, cwd="/")
        assert out.returncode == 1, out
        assert "this process's environment has no pyliveupdate" in out.stdout, out
        time.sleep(0.5)
        after = parse_state(prog.wait_for_line(lambda l: l.startswith("state"), start=len(prog.stdout)))
        assert after["imported"] == "False" and after["tasks"] == before["tasks"], (before, after)
    finally:
        prog.stop()
