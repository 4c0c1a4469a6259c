"""pylu-run: the stub starts before the program's code, without editing it, in a plain
script, its subprocesses, and a gunicorn master with its workers."""
import os
import subprocess
import sys
import urllib.request

import pytest

from support_attach import BARE_PYTHON, FIXTURES, clean_env, find_python
from support_controller import Target, controller, free_port, token  # noqa: F401

PATCH = """\
def compute(i):
    return i * 2 + 50

UpdateManager.apply_update(Redefine('__main__', None, {'__main__.compute': compute}))
"""


def pylu_run(port, token, *command, env=None):
    return [sys.executable, "-m", "pyliveupdate_controller.run", "--controller",
            "127.0.0.1:%d" % port, "--token", token, "--", *command]


def _ticks(prog, pid, start, count=3):
    """The next `count` (i, value) ticks of process pid from line index `start`."""
    out, index = [], start
    while len(out) < count:
        prog.wait_for_line(lambda l: l.startswith("tick %d " % pid), start=index)
        for line in prog.stdout[index:]:
            index += 1
            if line.startswith("tick %d " % pid):
                _, _, i, value = line.split()
                out.append((int(i), int(value)))
    return out


def test_plain_script_and_its_subprocess(controller, token, tmp_path):
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text("import sys\nsys.stderr.write('hidden sitecustomize ran\\n')\n")
    env = clean_env(PYTHONPATH=str(hidden))
    prog = Target(pylu_run(controller.port, token, BARE_PYTHON, "run_ticks.py", "--spawn"),
                  env, cwd=FIXTURES)
    try:
        first = prog.wait_for_line(lambda l: l.startswith("pid "))
        assert first.endswith("stub True"), first      # started before the program's code
        assert prog.pid == int(first.split()[1])                     # exec'd: same pid
        controller.wait_for(2)                                       # the script and its child
        pids = sorted(p.pid for p in controller.server.processes())
        assert prog.pid in pids
        # the sitecustomize ours hides still ran: in pylu-run itself, the script, its child
        index = 0
        for _ in range(3):
            prog.wait_for_line(lambda l: "hidden sitecustomize ran" in l, stream="stderr", start=index)
            index = next(i for i, l in enumerate(prog.stderr) if i >= index and "hidden" in l) + 1

        for pid in pids:   # the stubs connect before the programs define compute()
            _ticks(prog, pid, 0, count=1)
        ok, lines = controller.run("FD.debug('__main__.compute')")
        assert ok, lines
        for pid in pids:
            controller.wait_line(lambda l, pid=pid: l.startswith("[%d " % pid) and "compute" in l)
        patch = tmp_path / "patch.py"
        patch.write_text(PATCH)
        ok, lines = controller.run("patch(%r)" % str(patch))
        assert ok, lines
        for pid in pids:
            ticks = _ticks(prog, pid, len(prog.stdout), count=4)[1:]
            assert all(v == i * 2 + 50 for i, v in ticks), ticks
        ok, lines = controller.run("LU.detach()")
        assert ok, lines
        for pid in pids:
            ticks = _ticks(prog, pid, len(prog.stdout), count=4)[1:]
            assert all(v == i * 2 + 1 for i, v in ticks), ticks
    finally:
        prog.stop()


def test_gunicorn_master_and_workers(controller, token, tmp_path):
    port = free_port()
    prog = Target(pylu_run(controller.port, token, sys.executable, "-m", "gunicorn", "wsgi_app:app",
                           "-w", "2", "-b", "127.0.0.1:%d" % port), clean_env(), cwd=FIXTURES)

    def get(n):
        with urllib.request.urlopen("http://127.0.0.1:%d/%d" % (port, n), timeout=30) as r:
            return int(r.read())
    try:
        controller.wait_for(3)                    # the master and both workers
        programs = [p.info.get("argv") for p in controller.server.processes()]
        assert len(programs) == 3, programs
        assert get(4) == 45
        workers = [p.pid for p in controller.server.processes() if p.pid != prog.pid]
        ok, lines = controller.run("use(%s)" % ", ".join(map(str, workers)))
        assert ok, lines
        ok, lines = controller.run("FD.debug('wsgi_app.price')")
        assert ok, lines
        for n in range(6):
            assert get(n) == n * 10 + 5
        controller.wait_line(lambda l: "wsgi_app.price" in l and "returnvalues" in l)
        patch = tmp_path / "patch.py"
        patch.write_text("def price(n):\n    return n * 10 + 9\n\nUpdateManager.apply_update("
                         "Redefine('wsgi_app', None, {'wsgi_app.price': price}))\n")
        ok, lines = controller.run("patch(%r)" % str(patch))
        assert ok, lines
        assert all(get(n) == n * 10 + 9 for n in range(10))
        patch_id = max(i for d in controller.server.fleet.active() for i in d.active_ids())
        ok, lines = controller.run("LU.revert(%d)" % patch_id)
        assert ok, lines
        assert all(get(n) == n * 10 + 5 for n in range(10))
    finally:
        prog.stop()


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "pyliveupdate_controller.run", *args],
                          capture_output=True, text=True, timeout=120, cwd="/", **kw)


def test_usage_errors():
    out = _run([])
    assert out.returncode == 2 and "no command given" in out.stderr
    out = _run(["--", "/no/such/program"])
    assert out.returncode == 127 and "cannot run /no/such/program" in out.stderr
    out = _run(["--controller", "host:notaport", "--", "true"])
    assert out.returncode == 2 and "bad port" in out.stderr


def test_python_too_old_for_us_runs_untouched_and_quiet():
    old = find_python("3.11") or find_python("3.10")
    if old is None:
        pytest.skip("no CPython older than 3.12 on this machine")
    out = _run(["--", old, "-c", "import sys; print('ok', 'sitecustomize' in sys.modules)"],
               env=clean_env())
    assert out.returncode == 0 and out.stdout.split() == ["ok", "True"] and out.stderr == "", out


def test_a_python_that_cannot_load_our_core_says_so_and_runs(tmp_path):
    """The hook, with a pyliveupdate whose C core was built for other Pythons only."""
    import importlib.machinery
    from pyliveupdate_controller import run
    package = os.path.dirname(run.AUTOSTART_DIR)
    fake = tmp_path / "pyliveupdate"
    fake.mkdir()
    for name in os.listdir(package):
        if not any(name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
            os.symlink(os.path.join(package, name), fake / name)
    env = clean_env(PYTHONPATH=run.AUTOSTART_DIR, PYLU_RUN="1", PYLU_RUN_PACKAGE=str(fake),
                    PYLU_CONTROLLER="127.0.0.1:9")
    out = subprocess.run([BARE_PYTHON, "-c", "import sys; print('ran', 'pyliveupdate' in sys.modules)"],
                         env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0 and out.stdout.split() == ["ran", "False"], out
    assert "stub not started" in out.stderr and "C core is built for" in out.stderr, out


def test_stub_starts_before_the_program_code(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("import sys, threading\n"
                      "print('imported' if 'pyliveupdate.stub' in sys.modules else 'missing',\n"
                      "      [t.name for t in threading.enumerate() if t.name.startswith('pyliveupdate')])\n")
    out = _run(["--controller", "127.0.0.1:9", "--token", "t" * 20, "--", BARE_PYTHON, str(script)],
               env=clean_env())
    assert out.returncode == 0 and out.stdout.startswith("imported ['pyliveupdate-stub']"), out
