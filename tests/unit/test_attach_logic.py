"""The pure parts of pylu-attach: MI syntax, C strings, versions, the permission rule,
3.14 opt-outs, the ELF reader, the hand-off code and pylu-run's environment."""
import os
import sys
import sysconfig

import pytest

from pyliveupdate_controller import run
from pyliveupdate_controller.attach import handoff, inject_remote_exec, target
from pyliveupdate_controller.attach.elf import ElfError, ElfFile
from pyliveupdate_controller.attach.gdb_mi import parse_cstring, parse_record, quote
from pyliveupdate_controller.attach.inject_gdb import c_string


def test_mi_records_parse_into_dicts_and_lists():
    cls, res = parse_record('done,threads=[{id="1",target-id="Thread 0x7f (LWP 12)",'
                            'frame={func="recv",args=[]}},{id="2",target-id="LWP 13"}],'
                            'current-thread-id="1"')
    assert cls == "done" and res["current-thread-id"] == "1"
    assert [t["id"] for t in res["threads"]] == ["1", "2"]
    assert res["threads"][0]["frame"] == {"func": "recv", "args": []}
    cls, res = parse_record('stopped,reason="breakpoint-hit",bkptno="1",thread-id="3"')
    assert res == {"reason": "breakpoint-hit", "bkptno": "1", "thread-id": "3"}
    assert parse_record("running") == ("running", {})
    cls, res = parse_record('done,stack=[frame={level="1",addr="0x10"}]')
    assert res["stack"] == [{"level": "1", "addr": "0x10"}]


def test_mi_cstrings_round_trip():
    for text in ['plain', 'a "quoted" \\ back\nslash', 'tab\there']:
        assert parse_cstring(quote(text))[0] == text
    assert parse_cstring(r'"\101\t"')[0] == "A\t"


def test_c_string_escapes_what_c_needs():
    assert c_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert c_string("\x01") == '"\\001"'


def test_py_version_hex_is_decoded():
    assert target.decode_version(0x030C01F0) == (3, 12, 1, "")
    assert target.decode_version(0x030E00C1) == (3, 14, 0, "rc1")
    assert target.decode_version(0x030D00A3) == (3, 13, 0, "a3")


class _Fake:
    def __init__(self, uids=(1000, 1000, 1000, 1000), gids=(1000, 1000, 1000, 1000)):
        self.pid, self.uids, self.gids = 42, list(uids), list(gids)
        self.status = {"Name": "python3"}
        self.user = "alice"


@pytest.mark.parametrize("ours, has_cap, scope, refusal", [
    ((1000, 1000), False, None, None),                       # same user, no Yama
    ((1000, 1000), False, 0, None),
    ((1000, 1000), False, 1, "ptrace_scope is 1"),           # only ancestors
    ((1000, 1000), True, 1, None),
    ((1000, 1000), False, 2, "ptrace_scope is 2"),
    ((0, 0), True, 2, None),
    ((0, 0), True, 3, "ptrace_scope is 3"),                  # nobody, root included
    ((1001, 1000), False, 0, "belongs to user alice, not to you"),
    ((0, 0), False, 0, "root without CAP_SYS_PTRACE"),
    ((0, 0), True, 0, None),
])
def test_permission_rule(ours, has_cap, scope, refusal):
    if refusal is None:
        target.check_permission(_Fake(), ours, has_cap, scope)
    else:
        with pytest.raises(target.Refusal, match=refusal):
            target.check_permission(_Fake(), ours, has_cap, scope)


def test_a_setuid_like_process_with_mixed_ids_needs_the_capability():
    mixed = _Fake(uids=(1000, 0, 0, 0))
    with pytest.raises(target.Refusal, match="not to you"):
        target.check_permission(mixed, (1000, 1000), False, 0)


def test_yama_scope_file(tmp_path):
    assert target.read_yama_scope(str(tmp_path / "missing")) is None
    (tmp_path / "s").write_text("2\n")
    assert target.read_yama_scope(str(tmp_path / "s")) == 2


class _Proc:
    def __init__(self, env, argv):
        self._env, self._argv = env, argv

    def environ(self):
        return self._env

    def cmdline(self):
        return self._argv


@pytest.mark.parametrize("env, argv, why", [
    ({}, ["python3.14", "app.py"], None),
    ({"PYTHON_DISABLE_REMOTE_DEBUG": "1"}, ["python3.14"], "PYTHON_DISABLE_REMOTE_DEBUG"),
    ({}, ["python3.14", "-X", "disable_remote_debug", "app.py"], "-X disable_remote_debug"),
    ({}, ["python3.14", "-Xdisable-remote-debug", "app.py"], "-X disable-remote-debug"),
    ({}, ["python3.14", "-X", "dev", "app.py"], None),
])
def test_remote_debugging_opt_outs(env, argv, why):
    found = inject_remote_exec.opted_out(_Proc(env, argv))
    assert (found is None) if why is None else (why in found)


def test_elf_reader_finds_py_version_in_libpython():
    libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    path = os.path.join(libdir, name) if name and sysconfig.get_config_var("Py_ENABLE_SHARED") \
        else os.path.realpath(sys.executable)
    with ElfFile(path) as elf:
        assert elf.symbol("Py_Version") is not None
        assert elf.symbol("no_such_symbol_anywhere") is None


def test_elf_reader_refuses_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ElfError):
        ElfFile(str(tmp_path / "x"))


def test_inline_code_binds_nothing_and_swallows_everything(tmp_path):
    h = handoff.Handoff()
    try:
        code = h.inline_code()
        main = {"__name__": "__main__"}
        exec(code, main)      # no params file yet: the launch code finds none and returns
        assert set(main) == {"__name__", "__builtins__"}
    finally:
        h.remove()


def test_params_are_read_once_and_withdrawn_cleanly():
    h = handoff.Handoff()
    try:
        h.offer({"controller": "127.0.0.1:1", "token": "x" * 20})
        assert not h.taken()
        assert h.withdraw() is True and h.taken()
        assert h.withdraw() is False
    finally:
        h.remove()


def test_pylu_run_environment_puts_the_hook_first_and_keeps_the_rest():
    args = run.build_parser().parse_args(["--controller", "h:1", "--", "python", "x.py"])
    env = run.command_environment(args, {"PYTHONPATH": "/a:/b", "HOME": "/h"})
    assert env["PYTHONPATH"].split(os.pathsep) == [run.AUTOSTART_DIR, "/a", "/b"]
    assert env["PYLU_RUN"] == "1" and env["PYLU_CONTROLLER"] == "h:1" and env["HOME"] == "/h"
    assert os.path.isfile(os.path.join(run.AUTOSTART_DIR, "sitecustomize.py"))
    assert sorted(n for n in os.listdir(run.AUTOSTART_DIR) if n.endswith(".py")) == [
        "_pyliveupdate_launch.py", "sitecustomize.py"]   # nothing else becomes importable
