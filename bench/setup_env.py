"""Set-up the bench does for itself: pinned peers in the running venv, the original
PyLiveUpdate's own venv on Python 3.9, the no-op floor callback, the machine's facts."""
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ORIGINAL_PYTHON = os.environ.get("PYLU_BENCH_PY39", "/root/.pyenv/versions/3.9.18/bin/python3")
ORIGINAL_VENV = os.path.join(ROOT, ".venv", "3.9-original")


def _say(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


def _pins(path):
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _installed(python):
    out = subprocess.run([python, "-c", (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower().replace('_','-'): d.version"
        " for d in m.distributions()}))")], capture_output=True, text=True, check=True)
    import json
    return json.loads(out.stdout)


def ensure_requirements(python, requirements, no_deps=False):
    """pip install the pinned file into ``python``'s environment if any pin differs."""
    pins = _pins(requirements)
    have = _installed(python)
    wrong = sorted(n for n, v in pins.items() if have.get(n) != v)
    if not wrong:
        return
    _say("installing %s into %s (%s)" % (os.path.basename(requirements), python,
                                         ", ".join(wrong)))
    cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-r", requirements]
    if no_deps:
        cmd.append("--no-deps")
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def ensure_original_venv():
    """The 3.9 venv of PyLiveUpdate 0.3.1 -> its python, or raise with the reason."""
    python = os.path.join(ORIGINAL_VENV, "bin", "python")
    if not os.path.exists(python):
        if not os.path.exists(ORIGINAL_PYTHON):
            raise RuntimeError("Python 3.9 not found at %s (set PYLU_BENCH_PY39)"
                               % ORIGINAL_PYTHON)
        _say("creating %s with %s" % (ORIGINAL_VENV, ORIGINAL_PYTHON))
        subprocess.run([ORIGINAL_PYTHON, "-m", "venv", ORIGINAL_VENV], check=True)
    # Exact pins without the resolver: 0.3.1's grpcio-tools wants a protobuf its own
    # generated modules cannot import.
    ensure_requirements(python, os.path.join(HERE, "requirements-original.txt"), no_deps=True)
    return python


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        flags = ", ".join(fl for fl in ("constant_tsc", "nonstop_tsc") if " %s " % fl in text)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "tsc_flags": flags,
            "kernel": platform.release(), "machine": platform.machine(),
            "loadavg_at_start": [round(x, 2) for x in load] if load else None}
