"""setup.py's build knobs refuse bad input with one clear line, before anything is built."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_ext(tmp_path, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "CC", "CFLAGS", "CPPFLAGS", "PYLU_ZSTD_SOURCE")}
    full.update(env)
    out = tmp_path / "out"
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--build-temp", str(out),
                           "--build-lib", str(out)], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120)


def test_a_zstd_source_without_the_single_file_library_is_refused(tmp_path):
    empty = tmp_path / "zstd"
    empty.mkdir()
    run = build_ext(tmp_path, PYLU_ZSTD_SOURCE=str(empty))
    assert run.returncode != 0
    assert "PYLU_ZSTD_SOURCE=%s has no zstd.c and zstd.h" % empty in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_header_probe_uses_the_whole_compiler_command(tmp_path):
    # The flags in CC hide every header: the probe must compile with them, as setuptools will.
    run = build_ext(tmp_path, CC="gcc -nostdinc")
    assert run.returncode != 0
    assert "<ck_ring.h> not found. Install it with:\n    apt-get install libck-dev" in run.stderr
    assert not (tmp_path / "out").exists()
