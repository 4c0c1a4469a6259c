"""pylu-processlogs on the command line: bad input gives a clear error and a non-zero exit."""
import subprocess
import sys

CLI = [sys.executable, "-m", "pyliveupdate_controller.processlogs"]


def run(*args, cwd=None):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_missing_input_is_a_clear_error(tmp_path):
    out = run("-i", str(tmp_path / "nope.pylog"), "-o", str(tmp_path))
    assert out.returncode == 2
    assert "nope.pylog: no such file or directory" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_directory_without_logs_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    out = run("-i", str(tmp_path), "-o", str(tmp_path / "out"))
    assert out.returncode == 2 and "no pyliveupdate logs" in out.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_bad_window_are_refused(tmp_path):
    out = run("-i", str(tmp_path), "--format", "pdf")
    assert out.returncode == 2 and "unknown format 'pdf'" in out.stderr
    out = run("-i", str(tmp_path), "--start", "5", "--end", "1")
    assert out.returncode == 2 and "--start must not be after --end" in out.stderr


def test_no_logs_in_the_default_directory_says_it_is_the_default(tmp_path):
    import os
    env = dict(os.environ, PYLU_LOG_DIR=str(tmp_path / "none"), HOME=str(tmp_path),
               XDG_RUNTIME_DIR="")
    out = subprocess.run(CLI, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 2
    assert str(tmp_path / "none") in out.stderr and "the default log directory" in out.stderr
