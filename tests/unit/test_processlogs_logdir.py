"""The log-directory policy and log naming (pyliveupdate/logdir.py), shared by the recorder
and pylu-processlogs."""
import os

from pyliveupdate import logdir


def test_the_default_is_per_user_and_cannot_be_imported(monkeypatch):
    monkeypatch.delenv("PYLU_LOG_DIR", raising=False)
    default = logdir.wanted_dir()
    assert default == "/tmp/pylu-%d" % os.geteuid()
    # a directory named like a package becomes a namespace portion on sys.path
    assert not os.path.basename(default).isidentifier()
    assert not logdir.FALLBACK_NAME.isidentifier()


def test_the_environment_and_the_argument_choose(monkeypatch, tmp_path):
    monkeypatch.setenv("PYLU_LOG_DIR", str(tmp_path / "env"))
    assert logdir.wanted_dir() == str(tmp_path / "env")
    assert logdir.wanted_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert logdir.reading_dirs()[:2] == [str(tmp_path / "env"), str(tmp_path / "pylu-logs")]


def test_segment_names_round_trip():
    assert logdir.segment_name(12, 345) == "pylu-12-345.pylog"
    assert logdir.segment_name(12, 345, 2) == "pylu-12-345.2.pylog"
    assert logdir.parse_segment_name("/x/pylu-12-345.2.pylog") == (12, 345, 2)
    assert logdir.parse_segment_name("pylu-12-345.pylog") == (12, 345, 0)
    for other in ("pylu-12.pylog", "pylu-a-1.pylog", "pylu-1-2.pylog.tmp", "x.pylog"):
        assert logdir.parse_segment_name(other) is None


def test_a_processs_segments_group_in_order_and_gaps_are_known():
    paths = ["/d/pylu-7-100.10.pylog", "/d/pylu-7-100.pylog", "/d/pylu-7-100.2.pylog",
             "/d/pylu-8-50.pylog", "/d/other.pylog", "/d/pylu-7-200.pylog",
             "/e/pylu-7-100.1.pylog"]
    groups = logdir.group_logs(paths)
    by_first = {g.path: g for g in groups}
    assert sorted(by_first) == ["/d/other.pylog", "/d/pylu-7-100.pylog", "/d/pylu-7-200.pylog",
                                "/d/pylu-8-50.pylog", "/e/pylu-7-100.1.pylog"]
    seven = by_first["/d/pylu-7-100.pylog"]
    assert seven.segments == ["/d/pylu-7-100.pylog", "/d/pylu-7-100.2.pylog",
                              "/d/pylu-7-100.10.pylog"]
    assert (seven.pid, seven.start_ns) == (7, 100)
    assert seven.missing == [1, 3, 4, 5, 6, 7, 8, 9]
    assert by_first["/e/pylu-7-100.1.pylog"].missing == [0]   # the first one was deleted
    assert by_first["/d/other.pylog"].missing == []


def test_list_logs_reads_a_directory(tmp_path):
    for name in ("pylu-3-9.pylog", "pylu-3-9.1.pylog", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (group,) = logdir.list_logs(str(tmp_path))
    assert [os.path.basename(p) for p in group.segments] == ["pylu-3-9.pylog", "pylu-3-9.1.pylog"]
