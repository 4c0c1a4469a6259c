"""Build pyliveupdate and its C engine `pyliveupdate._engine`.

Knobs (environment variables):
  PYLU_SANITIZE=address,undefined | thread   build the extension with sanitizers
  PYLU_DEBUG=1                               -O0 -g3, assertions on
  PYLU_WERROR=1                              warnings are errors
  PYLU_ZSTD_SOURCE=DIR                       compile zstd's single-file library (DIR/zstd.c,
                                             DIR/zstd.h) into every extension that links zstd,
                                             instead of -lzstd: self-contained wheels
                                             (./dev wheel), no libzstd needed at run time
The compiler is setuptools' (CC, CFLAGS, LDSHARED), so a cross compiler such as
`zig cc -target x86_64-linux-gnu.2.17` builds wheels for an older glibc (./dev wheel).
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

if sys.version_info < (3, 12):
    sys.exit("pyliveupdate needs CPython 3.12 or newer (this is %s)." % sys.version.split()[0])

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_command():
    """The C compiler and flags setuptools will use (CC may be a whole command line)."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    for flags in ("CPPFLAGS", "CFLAGS"):
        cc += shlex.split(os.environ.get(flags, ""))
    return cc


def _check_header(header, package):
    """Fail with one clear message when a system header is missing."""
    cc = _compiler_command()
    if shutil.which(cc[0]) is None:
        return  # let setuptools report the missing compiler
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <%s>\nint main(void) { return 0; }\n" % header)
        probe = subprocess.run(cc + ["-c", src, "-o", os.path.join(tmp, "probe.o")],
                               capture_output=True)
    if probe.returncode != 0:
        sys.exit("pyliveupdate: <%s> not found. Install it with:\n"
                 "    apt-get install %s\n" % (header, package))


def _flags():
    compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                    "-fvisibility=hidden"]
    link_args = []
    if os.environ.get("PYLU_DEBUG") == "1":
        compile_args += ["-O0", "-g3", "-UNDEBUG"]
    else:
        compile_args += ["-O2", "-g"]
    if os.environ.get("PYLU_WERROR") == "1":
        compile_args.append("-Werror")
    sanitize = os.environ.get("PYLU_SANITIZE", "").strip()
    if sanitize:
        san = ["-fsanitize=%s" % sanitize, "-fno-omit-frame-pointer"]
        if "undefined" in sanitize:
            san.append("-fno-sanitize-recover=undefined")
        compile_args += san
        link_args += san
    return compile_args, link_args


class BuildExt(build_ext):
    """build_ext that links zstd from source when PYLU_ZSTD_SOURCE names it."""

    # zstd.h marks its API visibility("default"); empty markers keep it hidden under
    # -fvisibility=hidden, so the extension exports only PyInit_* and cannot clash with
    # (or interpose on) another zstd in the process, e.g. Python 3.14's compression.zstd.
    ZSTD_HIDDEN = [("ZSTDLIB_VISIBLE", ""), ("ZSTDERRORLIB_VISIBLE", ""), ("ZDICTLIB_VISIBLE", "")]

    def build_extensions(self):
        source = os.environ.get("PYLU_ZSTD_SOURCE")
        if source:
            self._link_zstd_from(source)
        super().build_extensions()

    def _link_zstd_from(self, source):
        users = [ext for ext in self.extensions if "zstd" in ext.libraries]
        if not users:
            return
        # One object for all extensions; its own optimisation level, without debug info
        # (zstd is most of the binary's size and not ours to debug); one section per
        # function, so the link drops what we never call (dictionary training, ...).
        objects = self.compiler.compile(
            [os.path.join(source, "zstd.c")], output_dir=self.build_temp,
            macros=self.ZSTD_HIDDEN,
            extra_postargs=["-O3", "-g0", "-fvisibility=hidden", "-ffunction-sections",
                            "-fdata-sections"])
        for ext in users:
            ext.libraries = [lib for lib in ext.libraries if lib != "zstd"]
            ext.include_dirs = [source, *ext.include_dirs]  # the headers of the code linked in
            ext.define_macros = [*ext.define_macros, *self.ZSTD_HIDDEN]
            ext.extra_objects = [*ext.extra_objects, *objects]
            ext.extra_link_args = [*ext.extra_link_args, "-Wl,--gc-sections"]


def _check_zstd_source(source):
    missing = [f for f in ("zstd.c", "zstd.h") if not os.path.isfile(os.path.join(source, f))]
    if missing:
        sys.exit("pyliveupdate: PYLU_ZSTD_SOURCE=%s has no %s (it must hold zstd's single-file "
                 "library, as in python-zstandard's sdist)." % (source, " and ".join(missing)))


needs_build = not any(a in sys.argv for a in ("egg_info", "dist_info", "sdist", "--version", "--name"))
if needs_build:
    _check_header("ck_ring.h", "libck-dev")
    if os.environ.get("PYLU_ZSTD_SOURCE"):
        _check_zstd_source(os.environ["PYLU_ZSTD_SOURCE"])
    else:
        _check_header("zstd.h", "libzstd-dev")

compile_args, link_args = _flags()
# The offline reader is its own module (docs/DESIGN.md, C section): targets never load it.
READER_SOURCES = ["csrc/reader_module.c", "csrc/reader.c", "csrc/decoder.c", "csrc/logfile.c",
                  "csrc/calltree.c", "csrc/calltree_py.c", "csrc/kinds_py.c", "csrc/budget.c"]
SHARED_SOURCES = {"csrc/kinds_py.c", "csrc/budget.c"}   # in both modules
ENGINE_SOURCES = sorted(set(glob.glob("csrc/*.c")) - set(READER_SOURCES) | SHARED_SOURCES)
engine = Extension(
    "pyliveupdate._engine",
    sources=ENGINE_SOURCES,
    depends=sorted(glob.glob("csrc/*.h")),
    include_dirs=["csrc"],
    libraries=["zstd", "pthread"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)
reader = Extension(
    "pyliveupdate._reader",
    sources=READER_SOURCES,
    depends=sorted(glob.glob("csrc/*.h")),
    include_dirs=["csrc"],
    libraries=["zstd"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[engine, reader],
    # Every package below these roots, so a new subpackage cannot be left out of the wheel.
    # _autostart is a plain directory that pylu-run puts on PYTHONPATH (its sitecustomize),
    # shipped as a namespace package so its modules are not package data.
    packages=[*find_packages(include=["pyliveupdate", "pyliveupdate.*", "pyliveupdatescripts"]),
              "pyliveupdate._autostart",
              *find_packages("controller", include=["pyliveupdate_controller*"])],
    package_dir={"pyliveupdate_controller": "controller/pyliveupdate_controller"},
    package_data={"": ["py.typed", "*.pyi"]},
)
