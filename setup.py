"""Build pyliveupdate and its C engine `pyliveupdate._engine`.

Knobs (environment variables):
  PYLU_SANITIZE=address,undefined | thread   build the extension with sanitizers
  PYLU_DEBUG=1                               -O0 -g3, assertions on
  PYLU_WERROR=1                              warnings are errors
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup

if sys.version_info < (3, 12):
    sys.exit("pyliveupdate needs CPython 3.12 or newer (this is %s)." % sys.version.split()[0])

HERE = os.path.dirname(os.path.abspath(__file__))


def _check_header(header, package):
    """Fail with one clear message when a system header is missing."""
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None:
        return  # let setuptools report the missing compiler
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <%s>\nint main(void) { return 0; }\n" % header)
        probe = subprocess.run([cc, "-c", src, "-o", os.path.join(tmp, "probe.o")],
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


needs_build = not any(a in sys.argv for a in ("egg_info", "sdist", "--version", "--name"))
if needs_build:
    _check_header("ck_ring.h", "libck-dev")
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
    ext_modules=[engine, reader],
    packages=["pyliveupdate", "pyliveupdate.updates", "pyliveupdatescripts",
              "pyliveupdate_controller", "pyliveupdate_controller.processlogs",
              "pyliveupdate_controller.attach"],
    package_dir={"pyliveupdate_controller": "controller/pyliveupdate_controller"},
    package_data={"pyliveupdate": ["py.typed", "*.pyi", "_autostart/*.py"]},
)
