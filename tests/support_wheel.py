"""Helpers for tests/wheel: what a built wheel holds, what its shared objects need, and a
fresh virtualenv with only that wheel installed (no index, no source tree)."""
import ast
import os
import re
import subprocess
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser

from elftools.elf.elffile import ELFFile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The source folder of each top-level package in the wheel (setup.py's package_dir).
PACKAGE_SOURCES = {"pyliveupdate": "pyliveupdate", "pyliveupdatescripts": "pyliveupdatescripts",
                   "pyliveupdate_controller": "controller/pyliveupdate_controller"}
# glibc's own libraries: the only ones a manylinux wheel may need from the system.
GLIBC_SONAMES = re.compile(r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|"
                           r"librt\.so\.1|ld-linux-[\w-]+\.so\.[12])$")


def tree_version():
    """__version__ as written in pyliveupdate/__init__.py, the one place it is set."""
    with open(os.path.join(ROOT, "pyliveupdate", "__init__.py")) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__"
                                                    for t in node.targets):
                return ast.literal_eval(node.value)
    raise AssertionError("pyliveupdate/__init__.py sets no __version__")


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def tree_package_files():
    """Wheel paths of every module, stub and py.typed of the source tree's packages."""
    found = set()
    for package, source in PACKAGE_SOURCES.items():
        top = os.path.join(ROOT, source)
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith((".py", ".pyi")) or name == "py.typed":
                    rel = os.path.relpath(os.path.join(folder, name), top)
                    found.add(package + "/" + rel.replace(os.sep, "/"))
    return found


@dataclass
class Wheel:
    path: str
    python: str      # "3.12"
    platform: str    # "manylinux2014_x86_64.manylinux_2_17_x86_64"

    @classmethod
    def parse(cls, path):
        name, version, py_tag, abi, plat = os.path.basename(path)[:-len(".whl")].split("-")
        assert name == "pyliveupdate" and py_tag == abi and py_tag.startswith("cp3"), path
        return cls(path, "3.%s" % py_tag[3:], plat)

    @property
    def glibc(self):
        """The newest glibc the platform tag allows, e.g. (2, 17); None if not manylinux."""
        m = re.search(r"manylinux_(\d+)_(\d+)_", self.platform)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def names(self):
        with zipfile.ZipFile(self.path) as z:
            return z.namelist()

    def dist_info(self, name):
        (path,) = [n for n in self.names() if re.fullmatch(r"pyliveupdate-[^/]+\.dist-info/" + name, n)]
        with zipfile.ZipFile(self.path) as z:
            return z.read(path).decode()

    def metadata(self):
        return Parser().parsestr(self.dist_info("METADATA"))

    def shared_objects(self):
        return [n for n in self.names() if re.search(r"\.so(\.[\d.]+)?$", n)]


def extension_name(member):
    """pyliveupdate/_engine.cpython-312-x86_64-linux-gnu.so -> pyliveupdate._engine"""
    return member.split(".", 1)[0].replace("/", ".")


@dataclass
class ElfNeeds:
    needed: list        # DT_NEEDED sonames
    runpath: list       # DT_RUNPATH and DT_RPATH entries
    versions: dict      # soname -> symbol versions it needs from it (GLIBC_2.17, ...)
    exports: set        # defined global symbols of default visibility


def read_elf(data_path):
    with open(data_path, "rb") as f:
        elf = ELFFile(f)
        dynamic = elf.get_section_by_name(".dynamic")
        needed = [t.needed for t in dynamic.iter_tags("DT_NEEDED")]
        runpath = [p for t in dynamic.iter_tags("DT_RUNPATH") for p in t.runpath.split(":")]
        runpath += [p for t in dynamic.iter_tags("DT_RPATH") for p in t.rpath.split(":")]
        versions = {}
        verneed = elf.get_section_by_name(".gnu.version_r")
        if verneed is not None:
            for need, auxes in verneed.iter_versions():
                versions[need.name] = {aux.name for aux in auxes}
        exports = {s.name for s in elf.get_section_by_name(".dynsym").iter_symbols()
                   if s["st_shndx"] != "SHN_UNDEF"
                   and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                   and s["st_other"]["visibility"] == "STV_DEFAULT"}
    return ElfNeeds(needed, runpath, versions, exports)


def glibc_version(name):
    """GLIBC_2.17 -> (2, 17); anything else (GLIBC_PRIVATE) -> None."""
    m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def clean_env(**extra):
    """The environment of a user's shell: nothing that points Python, pip or the loader
    at this tree or its virtualenvs."""
    drop = ("PYTHON", "PYLU_", "PIP_", "VIRTUAL_ENV", "LD_PRELOAD", "ASAN_", "UBSAN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def run(cmd, cwd, timeout=180, env=None):
    out = subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, "%s failed (%d):\n%s\n%s" % (cmd, out.returncode, out.stdout,
                                                            out.stderr)
    return out


def fresh_venv(base_python, wheel_path, where):
    """A new virtualenv of base_python with only wheel_path installed, from no index."""
    venv = os.path.join(where, "venv")
    run([base_python, "-m", "venv", venv], cwd=where)
    python = os.path.join(venv, "bin", "python")
    run([python, "-m", "pip", "install", "--isolated", "--no-index", "--no-cache-dir", "-q",
         wheel_path], cwd=where)
    return venv


def python_versions(pythons):
    """{"3.12": path, ...} of the interpreters ./dev wheel built for."""
    found = {}
    for py in pythons:
        out = run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], cwd=ROOT)
        found[out.stdout.strip()] = py
    return found
