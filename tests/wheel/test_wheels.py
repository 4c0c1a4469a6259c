"""The sdist and wheels of ./dev wheel: complete, self-contained, and working when installed
into a fresh virtualenv with no index, run from a folder where this tree is not importable.

PYLU_WHEEL_DIST: the sdist and the manylinux wheels; PYLU_WHEEL_SOURCE_BUILT: a wheel built
from that sdist with the system toolchain; PYLU_WHEEL_PYTHONS: the interpreters built for."""
import glob
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import tarfile
import zipfile

import pytest
from support_wheel import (GLIBC_SONAMES, ROOT, Wheel, clean_env, extension_name, fresh_venv,
                           glibc_version, pyproject, python_versions, read_elf, run,
                           tree_package_files, tree_version)

DIST = os.path.abspath(os.environ["PYLU_WHEEL_DIST"])
MANYLINUX = [Wheel.parse(p) for p in sorted(glob.glob(os.path.join(DIST, "pyliveupdate-*.whl")))]
SOURCE_BUILT = [Wheel.parse(p) for p in glob.glob(
    os.path.join(os.path.abspath(os.environ["PYLU_WHEEL_SOURCE_BUILT"]), "pyliveupdate-*.whl"))]
PYTHONS = python_versions(os.environ["PYLU_WHEEL_PYTHONS"].split(os.pathsep))
TOP_LEVEL = {"pyliveupdate", "pyliveupdatescripts", "pyliveupdate_controller"}


def wheel_id(wheel):
    return os.path.basename(wheel.path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """wheel -> a fresh virtualenv holding it (made once per wheel)."""
    venvs = {}

    def install(wheel):
        if wheel.path not in venvs:
            where = tmp_path_factory.mktemp("venv-" + wheel.python)
            venvs[wheel.path] = fresh_venv(PYTHONS[wheel.python], wheel.path, str(where))
        return venvs[wheel.path]
    return install


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    def extract(wheel):
        where = tmp_path_factory.mktemp("unpacked")
        with zipfile.ZipFile(wheel.path) as z:
            z.extractall(where)
        return str(where)
    return extract


# --- what was built ------------------------------------------------------------
def test_one_sdist_and_one_manylinux2014_wheel_per_cpython():
    assert sorted(w.python for w in MANYLINUX) == sorted(PYTHONS), [wheel_id(w) for w in MANYLINUX]
    for wheel in MANYLINUX:
        assert "manylinux_2_17_%s" % platform.machine() in wheel.platform.split("."), wheel_id(wheel)
    sdists = glob.glob(os.path.join(DIST, "pyliveupdate-*.tar.gz"))
    assert [os.path.basename(p) for p in sdists] == ["pyliveupdate-%s.tar.gz" % tree_version()]
    assert len(SOURCE_BUILT) == 1


def test_sdist_holds_the_c_sources_and_no_build_products():
    (sdist,) = glob.glob(os.path.join(DIST, "pyliveupdate-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    c_files = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "*.[ch]"))}
    assert c_files and c_files <= names
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "LICENSES_bundled.txt",
            "README.md", "pyliveupdate/py.typed"} <= names
    assert not [n for n in names if re.search(r"\.(so|o|pyc)$|/\.inplace-|__pycache__", n)]


@pytest.mark.parametrize("wheel", MANYLINUX + SOURCE_BUILT, ids=wheel_id)
def test_wheel_holds_every_module_stub_license_and_command(wheel):
    names = set(wheel.names())
    assert "pyliveupdate/py.typed" in names
    missing = tree_package_files() - names
    assert not missing, "modules, stubs or py.typed of the tree not in the wheel: %s" % missing
    stray = {n for n in names
             if n.split("/")[0] not in TOP_LEVEL | {"pyliveupdate.libs"}
             and not re.fullmatch(r"pyliveupdate-[^/]+\.dist-info", n.split("/")[0])}
    assert not stray
    licenses = {n.rsplit("/", 1)[1] for n in names if ".dist-info/licenses/" in n} - {""}
    assert licenses == {"LICENSE", "LICENSES_bundled.txt"}

    meta = wheel.metadata()
    assert meta["Version"] == tree_version()
    assert meta["Requires-Python"] == ">=3.12"
    assert meta["License-Expression"].startswith("MIT")
    assert "Programming Language :: Python :: %s" % wheel.python in meta.get_all("Classifier")
    assert meta.get_all("Project-URL") and meta["Keywords"]
    scripts = re.search(r"\[console_scripts\]\n((?:.+\n?)*)", wheel.dist_info("entry_points.txt"))
    declared = {line.split("=")[0].strip() for line in scripts.group(1).splitlines()}
    assert declared == set(pyproject()["project"]["scripts"])


# --- the extensions: nothing from the system but glibc ---------------------------
@pytest.mark.parametrize("wheel", MANYLINUX, ids=wheel_id)
def test_every_shared_object_needs_only_glibc_up_to_its_tag(wheel, extracted):
    where = extracted(wheel)
    objects = wheel.shared_objects()
    modules = [n for n in objects if ".cpython-" in n]
    assert "pyliveupdate._engine" in {extension_name(n) for n in modules}
    inside = {os.path.basename(n) for n in objects}
    for member in objects:
        elf = read_elf(os.path.join(where, member))
        foreign = [lib for lib in elf.needed if not GLIBC_SONAMES.match(lib) and lib not in inside]
        assert not foreign, "%s needs %s, neither glibc's nor in the wheel" % (member, foreign)
        assert all(p.startswith("$ORIGIN") for p in elf.runpath), (member, elf.runpath)
        for soname, versions in elf.versions.items():
            if not GLIBC_SONAMES.match(soname):
                continue
            parsed = {v: glibc_version(v) for v in versions}
            assert None not in parsed.values(), "%s uses %s from %s" % (member, versions, soname)
            too_new = {v for v, ver in parsed.items() if ver > wheel.glibc}
            assert not too_new, "%s needs %s, newer than its tag %s" % (member, too_new, wheel.platform)
        if member in modules:  # zstd stays hidden inside: no clash with another zstd
            init = "PyInit_" + extension_name(member).rsplit(".", 1)[1]
            assert elf.exports == {init}, (member, sorted(elf.exports)[:20])


def test_the_sdist_builds_the_same_extensions_with_the_system_toolchain(installed, extracted):
    (source_built,) = SOURCE_BUILT
    (manylinux,) = [w for w in MANYLINUX if w.python == source_built.python]

    def modules(wheel):
        return sorted(extension_name(n) for n in wheel.shared_objects() if ".cpython-" in n)
    assert modules(source_built) == modules(manylinux)
    # Built the from-source way: the system's libzstd, not the wheel build's zstd.c.
    where = extracted(source_built)
    (engine,) = [n for n in source_built.shared_objects() if "_engine" in n]
    assert "libzstd.so.1" in read_elf(os.path.join(where, engine)).needed

    probe = ("import importlib, json, sys\n"
             "print(json.dumps({m: sorted(dir(importlib.import_module(m))) for m in sys.argv[1:]}))")
    api = []
    for wheel in (source_built, manylinux):
        python = os.path.join(installed(wheel), "bin", "python")
        api.append(json.loads(run([python, "-c", probe, *modules(wheel)], cwd="/").stdout))
    assert api[0] == api[1]


# --- installed into a fresh virtualenv -------------------------------------------
SMOKE = '''
import threading

from pyliveupdate import UpdateStub

go = threading.Event()


def work(n):
    return sum(range(n))


UpdateStub().start()
if not go.wait(120):
    raise SystemExit("the controller never said go")
for i in range(137):
    work(i)
print("done", flush=True)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("wheel", MANYLINUX + SOURCE_BUILT, ids=wheel_id)
def test_fresh_virtualenv_profiles_a_function_and_reports_its_hits(wheel, installed, tmp_path):
    venv = installed(wheel)
    bin_ = os.path.join(venv, "bin")
    work = tmp_path / "elsewhere"   # not the tree: nothing of it is importable from here
    work.mkdir()
    out = run([os.path.join(bin_, "pyliveupdate")], cwd=work)
    info = dict(re.split(r"\s+", line, maxsplit=1) for line in out.stdout.splitlines())
    assert info["pyliveupdate"] == tree_version()
    assert info["package"].startswith(venv) and info["engine"].startswith(venv), out.stdout
    assert run([os.path.join(bin_, "python"), "-m", "pyliveupdate", "--version"],
               cwd=work).stdout.strip() == "pyliveupdate " + tree_version()

    (work / "smoke.py").write_text(SMOKE)
    logs = work / "logs"
    logs.mkdir(mode=0o700)
    address = "127.0.0.1:%d" % free_port()
    env = clean_env(PYLU_TOKEN=secrets.token_hex(24), PYLU_CONTROLLER=address,
                    PYLU_LOG_DIR=str(logs))
    controller = subprocess.Popen(
        [os.path.join(bin_, "pylu-controller"), "-l", address, "--wait", "1", "--wait-timeout", "120",
         "-c", "FuncProfiler.profile(['__main__.work'])", "-c", "import __main__; __main__.go.set()"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    program = subprocess.Popen([os.path.join(bin_, "python"), "smoke.py"], cwd=work, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = controller.communicate(timeout=180)[0]
        printed = program.communicate(timeout=180)[0]
    finally:
        for proc in (controller, program):
            proc.kill()
            proc.wait()
    assert controller.returncode == 0 and "Update 1 applied" in said, said
    assert program.returncode == 0 and "done" in printed, printed

    summary = run([os.path.join(bin_, "pylu-processlogs"), "-i", str(logs), "-o", "-",
                   "--format", "summary"], cwd=work).stdout
    assert re.search(r"^__main__\.work\s+137\s", summary, re.M), summary
