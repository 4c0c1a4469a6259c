"""Updates across several processes: one id everywhere, patch/revert, late joiners."""
import os

from support_controller import (EXAMPLES, LocalController, controller, free_port, run_cli,  # noqa: F401
                                start_target, targets, token)

PROGRAM1 = os.path.join(EXAMPLES, "program1.py")


def _start(targets, controller, token, n, tmp_path):
    apps = [targets(PROGRAM1, controller.port, token, cwd=EXAMPLES,
                    PYLU_LOG_DIR=str(tmp_path / "logs")) for _ in range(n)]
    controller.wait_for(n)
    return apps


def _bodies(lines):
    return [l.split("] ", 1)[1] for l in lines if "] " in l]


def test_patch_and_revert_across_processes_with_the_same_ids(controller, targets, token, tmp_path):
    apps = _start(targets, controller, token, 2, tmp_path)
    ok, lines = controller.run("FD.debug('__main__.Foo.method')")
    assert _bodies(lines).count("Update 1 applied") == 2 and ok, lines
    ok, lines = controller.console.execute("patch('patch.py')"), None
    # patch() reads the file relative to the controller's working directory
    assert not ok
    ok, lines = controller.run("patch(%r)" % os.path.join(EXAMPLES, "patch.py"))
    assert ok and _bodies(lines).count("Update 2 applied") == 2, lines
    for app in apps:  # bar(2) -> foo(2) prints "new foo 4", also through the alias in __main__
        app.wait_for_line(lambda l: l == "new foo 4", start=len(app.stdout))
    ok, lines = controller.run("LU.ls()")
    assert ok
    assert sum(l.startswith("1 : {type: FuncDebugger, status: applied") for l in _bodies(lines)) == 2
    assert sum(l.startswith("2 : {type: redefine, status: applied") for l in _bodies(lines)) == 2
    ok, lines = controller.run("LU.revert(2)")
    assert ok and _bodies(lines).count("Update 2 reverted") == 2
    for app in apps:
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l == "foo 2", start=mark)
    ok, lines = controller.run("LU.ls()")
    assert [l for l in _bodies(lines) if l[:1].isdigit()] == [
        "1 : {type: FuncDebugger, status: applied, scope: __main__.Foo.method, "
        "instrumented: [__main__.Foo.method]}"] * 2


def test_a_late_joiner_gets_the_active_updates(controller, targets, token, tmp_path):
    first, = _start(targets, controller, token, 1, tmp_path)
    ok, _ = controller.run("FD.debug('__main__.bar')")
    ok2, _ = controller.run("FP.profile(['__main__.**', 'module1.**'])")
    ok3, _ = controller.run("patch(%r)" % os.path.join(EXAMPLES, "patch.py"))
    ok4, _ = controller.run("LU.revert(1)")
    assert ok and ok2 and ok3 and ok4
    assert controller.server.next_id == 5
    late = targets(PROGRAM1, controller.port, token, cwd=EXAMPLES,
                   PYLU_LOG_DIR=str(tmp_path / "logs"))
    controller.wait_for(2)
    event = controller.wait_line(lambda e: e.startswith("process %d" % late.pid), events=True)
    assert "replayed update(s) 1, 2-3, 4" in event and "reverted [1]" in event
    late.wait_for_line(lambda l: l == "new foo 4")
    ok, lines = controller.run("LU.ls()")
    per_process = {}
    for line in lines:
        label, body = line[1:].split("] ", 1)
        if body[:1].isdigit():
            per_process.setdefault(label.split()[0], []).append(body.split(" : ")[0])
    assert per_process == {str(first.pid): ["2", "3", "4"], str(late.pid): ["2", "3", "4"]}
    ok, lines = controller.run("procs()")
    assert sum(" 2,3,4 " in l for l in lines) == 2
    # The new process takes part in the next command with the same id.
    ok, lines = controller.run("LD.debug('__main__.bar', [12])")
    assert ok and _bodies(lines).count("Update 5 applied") == 2


def test_forked_child_keeps_what_it_inherited_without_replay(controller, targets, token):
    app = targets("prefork.py", controller.port, token, args=("1",))
    controller.wait_for(2)
    ok, lines = controller.run("FP.profile('__main__.handle')")
    assert ok and _bodies(lines).count("Update 1 applied") == 2, lines
    ok, lines = controller.run("import os\nif os.getpid() == %d:\n    os.fork() or None\n"
                               % app.pid)
    assert ok
    controller.wait_for(3)
    newest = max(controller.server.processes(all_=True), key=lambda p: p.number)
    event = controller.wait_line(lambda e: e.startswith("process %d" % newest.pid), events=True)
    assert "replayed" not in event  # the fork inherited update 1 already
    ok, lines = controller.run("LU.ls()")
    assert sum(l.startswith("1 : {type: FuncProfiler, status: applied")
               for l in _bodies(lines)) == 3


def test_readme_commands_in_scripted_mode(targets, token, tmp_path):
    port = free_port()
    apps = [targets(PROGRAM1, port, token, cwd=EXAMPLES, PYLU_LOG_DIR=str(tmp_path / "logs"))
            for _ in range(2)]
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2",
                   "-c", "FuncProfiler.profile(['__main__.**', 'module1.**'])",
                   "-c", "LineProfiler.profile('__main__.bar', [11, 12])",
                   "-c", "FuncDebugger.debug('__main__.bar')",
                   "-c", "LineDebugger.debug('__main__.bar', [11, 12])",
                   "-c", "VarDebugger.debug('__main__.bar', 'b')",
                   "-c", "LU.ls()", "--linger", "0.5"], token)
    assert out.returncode == 0, out
    for app in apps:
        for uid in (1, 2, 3, 4, 5, 6):
            assert "[%d %s program1.py] Update %d applied" % (app.pid, os.uname().nodename, uid) \
                in out.stdout
    assert "__main__.bar: parameters: {'a':" in out.stdout
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2",
                   "-c", "LineProfiler.profile('__main__.bar', [11, 99])"], token)
    assert out.returncode == 1
    assert out.stdout.count("line 99 holds no code in __main__.bar") == 2


def test_show_after_a_patch_prints_the_patched_source(controller, targets, token, tmp_path):
    _start(targets, controller, token, 1, tmp_path)
    ok, lines = controller.run("patch(%r)" % os.path.join(EXAMPLES, "patch.py"))
    assert ok and _bodies(lines) == ["Update 1 applied"]  # no echo of the file's last value
    ok, lines = controller.run("show('module1.foo')")
    body = _bodies(lines)
    assert ok and body[0].startswith("module1.foo (<patch %s>:" % os.path.join(EXAMPLES, "patch.py"))
    assert body[2].endswith("print('new foo', double(a))  # noqa: F821  (double is module1's, "
                            "from _predefine)")


def test_a_restarted_controller_continues_the_ids_and_replays_only_its_own(targets, token,
                                                                            tmp_path):
    first = LocalController(token)
    port = first.port
    try:
        old, = _start(targets, first, token, 1, tmp_path)
        ok, _ = first.run("FD.debug('__main__.bar')\nFP.profile('module1.**')")
        assert ok
    finally:
        first.close()
    second = LocalController(token, port=port)
    try:
        second.wait_for(1, timeout=20)
        ok, lines = second.run("LD.debug('__main__.bar', [12])")
        assert ok and [b for b in _bodies(lines) if b.startswith("Update")] == \
            ["Update 3 applied"], lines
        new = targets(PROGRAM1, port, token, cwd=EXAMPLES, PYLU_LOG_DIR=str(tmp_path / "logs"))
        second.wait_for(2)
        event = second.wait_line(lambda e: e.startswith("process %d" % new.pid), events=True)
        assert "replayed update(s) 3" in event
        ok, lines = second.run("sorted(u.id for u in UpdateManager._updates.values() "
                               "if u.status == 'applied')")
        assert sorted(b for b in _bodies(lines) if b.startswith("[")) == ["[1, 2, 3]", "[3]"]
    finally:
        second.close()
    assert old.alive()
