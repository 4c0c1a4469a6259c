"""Helpers for the updates tests: run a script in a fresh interpreter with the fixture
modules importable, and read back what it printed."""
import json
import os
import subprocess
import sys
import textwrap

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures_updates")


def run_script(source, timeout=60, env=None, prelude=""):
    """Run ``prelude`` + ``source`` (dedented) in a new interpreter; assert it exits 0;
    return its stdout."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = FIXTURES + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(source)],
                          capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=FIXTURES)
    assert proc.returncode == 0, "script failed (%d)\nstdout:\n%s\nstderr:\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def run_json(source, timeout=60, prelude="", env=None):
    """Run ``source``; its last stdout line is JSON: return it decoded (and the rest)."""
    out = run_script(source, timeout=timeout, prelude=prelude, env=env)
    lines = out.strip().splitlines()
    assert lines, "script printed nothing"
    return json.loads(lines[-1]), "\n".join(lines[:-1])
