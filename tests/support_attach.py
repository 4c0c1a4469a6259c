"""Helpers for the pylu-attach / pylu-run tests: programs that never imported pyliveupdate,
the real pylu-attach command, and what a process looks like from outside (/proc)."""
import os
import re
import shutil
import subprocess
import sys
import time

from support_controller import HERE, ROOT, Target

FIXTURES = os.path.join(HERE, "fixtures_attach")
# The interpreter of this venv without the venv: same version, no pyliveupdate installed.
BARE_PYTHON = getattr(sys, "_base_executable", None) or sys.executable
VERSION = "%d.%d" % sys.version_info[:2]


def clean_env(**extra):
    """The environment of a program that knows nothing of pyliveupdate."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYLU_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_program(script, *args, python=BARE_PYTHON, prefix=(), env=None):
    """Start a fixture program (cwd: the fixtures folder); wait for its first line."""
    target = Target([*prefix, python, os.path.join(FIXTURES, script), *map(str, args)],
                    env or clean_env(), cwd=FIXTURES)
    target.wait_for_line(lambda l: " pid " in l or l.startswith("pid "))
    return target


def run_attach(pid, port, token, *extra, prefix=(), timeout=180, env=None):
    """The real pylu-attach, as a command; returns the CompletedProcess."""
    cmd = [*prefix, sys.executable, "-m", "pyliveupdate_controller.attach.cli", str(pid),
           "--controller", "127.0.0.1:%d" % port, "--token", token, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/",
                         env=env if env is not None else dict(os.environ))
    print(out.stdout, out.stderr)
    return out


def os_threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def detach(controller, pid, threads=1, timeout=30):
    """LU.detach() at the controller; wait until pid has left and is back to `threads`."""
    ok, lines = controller.run("LU.detach()")
    assert ok and any("detached: " in l for l in lines), lines
    deadline = time.monotonic() + timeout
    while (any(p.pid == pid for p in controller.server.processes(all_=True))
           or os_threads(pid) > threads) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os_threads(pid) == threads, "pid %d kept %d threads" % (pid, os_threads(pid))
    return lines


def process_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    return stat[stat.rfind(")") + 2]


def parse_state(line):
    """The fields of a fixture's state() line."""
    fields = dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))
    fields["tasks"] = int(fields["tasks"])
    fields["threads"] = fields["threads"].split(",")
    return fields


def ours(thread_names):
    return [n for n in thread_names if n.startswith("pyliveupdate")]


def find_python(version):
    """A working interpreter of that version (~/.pyenv, then PATH), or None."""
    candidates = []
    base = os.path.expanduser("~/.pyenv/versions")
    if os.path.isdir(base):
        candidates += [os.path.join(base, name, "bin", "python" + version)
                       for name in sorted(os.listdir(base), reverse=True)
                       if name.startswith(version + ".")]
    candidates.append(shutil.which("python" + version))
    for path in candidates:
        if path and os.access(path, os.X_OK) and subprocess.run(
                [path, "-c", "import sys; sys.exit('%d.%d' % sys.version_info[:2] != " + repr(version) + ")"],
                capture_output=True, cwd="/").returncode == 0:
            return path
    return None


def dev_venv_python(version):
    """`./dev env VERSION`: the venv of that version with pyliveupdate built for it."""
    out = subprocess.run([os.path.join(ROOT, "dev"), "env", version], capture_output=True,
                         text=True, timeout=1800)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 else None
