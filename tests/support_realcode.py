"""The real-code suite's helpers: pinned sdists of pure-Python packages, fetched once from
PyPI with pip and kept under .venv/realcode/, whose own test suites run in a subprocess
with tests/realcode/pylu_realcode_plugin.py applying one kind of update ("mode")."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".venv", "realcode")
PLUGIN_DIR = os.path.join(ROOT, "tests", "realcode")
ON_312 = sys.version_info < (3, 13)


@dataclass(frozen=True)
class Package:
    dist: str                  # name on PyPI
    version: str
    package: str               # import name; the updates target "<package>.**"
    tests: tuple               # test paths inside the sdist
    pytest_args: tuple = ()
    notes: str = ""

    @property
    def sdist_dir(self):
        return os.path.join(CACHE, "src", "%s-%s" % (self.dist.replace("-", "_"), self.version))


PACKAGES = {
    "toolz": Package("toolz", "1.0.0", "toolz", ("toolz/tests",)),
    "more-itertools": Package("more-itertools", "10.5.0", "more_itertools", ("tests",)),
    # its conftest uses a hook argument pytest 9 removed (`path`); it only deselects
    # tests named for Python 2
    "boltons": Package("boltons", "24.1.0", "boltons", ("tests",),
                       pytest_args=("--noconftest",)),
}

ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def fetch(pkg: Package) -> str:
    """The unpacked sdist (downloaded once with pip into .venv/realcode/; one suite at a
    time: ./dev test runs the 3.12 and 3.13 suites side by side)."""
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_locked(pkg)


def _fetch_locked(pkg: Package) -> str:
    if os.path.isdir(pkg.sdist_dir):
        return pkg.sdist_dir
    downloads = os.path.join(CACHE, "sdists")
    os.makedirs(downloads, exist_ok=True)
    spec = "%s==%s" % (pkg.dist, pkg.version)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "--no-binary", ":all:", "-d", downloads, spec],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, "pip download %s failed:\n%s" % (spec, proc.stderr[-3000:])
    stem = "%s-%s" % (pkg.dist, pkg.version)
    names = [n for n in os.listdir(downloads) if n.lower().replace("_", "-").startswith(
        stem.lower()) and n.endswith(".tar.gz")]
    assert names, "no sdist of %s in %s: %s" % (spec, downloads, os.listdir(downloads))
    unpack = os.path.join(CACHE, "src", ".unpack-%d" % os.getpid())
    with tarfile.open(os.path.join(downloads, names[0])) as tar:
        tar.extractall(unpack, filter="data")
    (top,) = os.listdir(unpack)
    os.rename(os.path.join(unpack, top), pkg.sdist_dir)
    os.rmdir(unpack)
    return pkg.sdist_dir


@dataclass
class Run:
    mode: str
    source: str | None
    returncode: int
    output: str
    result: dict = field(default_factory=dict)
    log_counts: dict | None = None

    def outcomes(self):
        return self.result.get("outcomes", {})


def run(pkg: Package, mode: str, workdir, source: str | None = None, timeout=600) -> Run:
    """The package's test suite in a fresh interpreter under `mode` (see the plugin)."""
    src = fetch(pkg)
    workdir = str(workdir)
    out = os.path.join(workdir, "result.json")
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir, mode=0o700, exist_ok=True)
    env = dict(os.environ, **ENV)
    env["PYTHONPATH"] = os.pathsep.join([src, PLUGIN_DIR, env.get("PYTHONPATH", "")])
    env["PYLU_REALCODE"] = json.dumps({"mode": mode, "source": source or "auto",
                                       "package": pkg.package, "out": out, "logdir": logdir})
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-p", "pylu_realcode_plugin", "--rootdir", src, *pkg.pytest_args,
           *(os.path.join(src, t) for t in pkg.tests)]
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    result = {}
    if os.path.exists(out):
        with open(out) as f:
            result = json.load(f)
    r = Run(mode, source, proc.returncode, output, result)
    if mode == "funcprofiler":
        r.log_counts = log_counts(logdir)
    return r


def log_counts(logdir: str) -> dict:
    """{"file:line:name": [calls, slices]} summed over every call path of every thread of
    the logs in `logdir`, as `pylu-processlogs --format json` reports them."""
    proc = subprocess.run([sys.executable, "-m", "pyliveupdate_controller.processlogs",
                           "-i", logdir, "--format", "json", "--threads", "all", "-o", "-"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    counts: dict = {}
    for p in report["processes"]:
        for t in p["threads"]:
            stack = list(t["children"])
            while stack:
                node = stack.pop()
                name = node["function"].rsplit(".", 1)[-1]
                key = "%s:%d:%s" % (node["file"], node["line"], name)
                c = counts.setdefault(key, [0, 0])
                c[0] += node["hits"]
                c[1] += node["slices"]
                stack.extend(node["children"])
    return counts


def outcome_differences(base: Run, other: Run, limit=20) -> list:
    a, b = base.outcomes(), other.outcomes()
    diffs = ["%s: %s -> %s" % (k, a.get(k), b.get(k))
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs[:limit] + (["... %d more" % (len(diffs) - limit)] if len(diffs) > limit else [])


def count_differences(expected: dict, got: dict, column: int, limit=25) -> list:
    """Keys where got[key][column] differs from expected[key][column]."""
    diffs = []
    for key in sorted(set(expected) | set(got)):
        want = expected.get(key, [0, 0])[column]
        have = got.get(key, [0, 0])[column]
        if want != have:
            diffs.append("%s: expected %d, got %d" % (short(key), want, have))
    return diffs[:limit] + (["... %d more" % (len(diffs) - limit)] if len(diffs) > limit else [])


def short(key: str) -> str:
    return key.replace(CACHE + os.sep + "src" + os.sep, "")


def problems(r: Run) -> list:
    """Everything that must be zero: errors, handler and matcher failures, dropped records,
    failed updates, engine reports."""
    out = list(r.result.get("errors", []))
    if not r.result:
        out.append("no result written (exit %d):\n%s" % (r.returncode, r.output))
    eng = r.result.get("engine")
    if eng:
        if eng["handler_errors"] or eng["dispatch_errors"]:
            out.append("handler errors %d, dispatch errors %d"
                       % (eng["handler_errors"], eng["dispatch_errors"]))
        if eng["matcher_errors"]["count"]:
            out.append("matcher errors: %s" % eng["matcher_errors"])
        out.extend("engine report: %s" % t for t in eng["reports"])
    for u in r.result.get("updates") or []:
        if u["status"] not in ("applied", "reverted"):
            out.append("update %s: %s" % (u["id"], u["status"]))
        if u["handlers"]["errors"]:
            out.append("update %s handler errors: %s" % (u["id"], u["handlers"]["last_error"]))
    rec = r.result.get("recorder")
    if rec and (rec.get("dropped") or rec.get("error")):
        out.append("recorder: %d records dropped, error %s (issue 16 item 5)"
                   % (rec.get("dropped", 0), rec.get("error")))
    return out


def in_package(counts: dict, reference: Run) -> dict:
    """The counts of the functions in the package's own module files (module and class
    bodies, which the reference run lists, are not functions and no update's target)."""
    files = set(reference.result["package_files"])
    bodies = set(reference.result["bodies"])
    return {k: v for k, v in (counts or {}).items()
            if k.rsplit(":", 2)[0] in files and k not in bodies}


def instrument_expected(cprofile_run) -> tuple:
    """(expected {key: [begins, ends]}, generator keys) for func_begin/func_end handlers:
    calls as cProfile counts them, except for generators and coroutines, whose handlers
    run once per frame while cProfile counts every resumption; those come from the
    reference run's count of frames started.  A generator dropped while suspended ends
    without any event CPython reports (3.12+ clears it without running it), so its
    end count may be lower."""
    gens = in_package({k: [v, v] for k, v in cprofile_run.result["generator_frames"].items()},
                      cprofile_run)
    calls = in_package(cprofile_run.result["counts"], cprofile_run)
    expected = {k: gens.get(k, v) for k, v in calls.items()}
    return expected, set(gens)
