"""Updates across several processes: one id everywhere, patch/revert, who gets what later:
the same instance (a forked worker), a new run of the program (clean, told, deploy(),
sticky=True), an unrelated program (nothing), a new controller (learns the active set)."""
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
    ok, lines = controller.run("LU.ls(detail=True)")
    assert ok
    assert sum(l.startswith("1 : {type: FuncDebugger, status: applied") for l in _bodies(lines)) == 2
    assert sum(l.startswith("2 : {type: redefine, status: applied") for l in _bodies(lines)) == 2
    ok, lines = controller.run("LU.ls()")       # the fleet's view, one line per update
    assert ok and lines[0] == "2 process(es) connected", lines
    assert lines[1].startswith("1  active    applied in 2  FD.debug('__main__.Foo.method')"), lines
    assert lines[2].startswith("2  active    applied in 2  patch(%r)"
                               % os.path.join(EXAMPLES, "patch.py")), lines
    ok, lines = controller.run("LU.revert(2)")
    assert ok and _bodies(lines).count("Update 2 reverted") == 2
    for app in apps:
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l == "foo 2", start=mark)
    ok, lines = controller.run("LU.ls(all=True)")
    assert lines[2].startswith("2  reverted  reverted in 2"), lines
    ok, lines = controller.run("LU.ls(detail=True)")
    assert [l for l in _bodies(lines) if l[:1].isdigit()] == [
        "1 : {type: FuncDebugger, status: applied, scope: __main__.Foo.method, "
        "instrumented: [__main__.Foo.method]}"] * 2


def _applied(controller):
    """{pid: sorted ids applied there}, asked of every process."""
    results = controller.server.run("sorted(u.id for u in UpdateManager._updates.values() "
                                    "if u.status == 'applied')")
    assert all(r["ok"] for _, r in results), results
    return {p.pid: eval(r["output"]) for p, r in results}


def test_a_new_run_of_the_program_starts_clean_is_told_and_deploy_gives_it_the_updates(
        controller, targets, token, tmp_path):
    first, = _start(targets, controller, token, 1, tmp_path)
    ok, _ = controller.run("FD.debug('__main__.bar')")
    ok2, _ = controller.run("FP.profile(['__main__.**', 'module1.**'])")
    ok3, _ = controller.run("patch(%r)" % os.path.join(EXAMPLES, "patch.py"))
    ok4, _ = controller.run("LU.revert(1)")
    assert ok and ok2 and ok3 and ok4
    assert controller.server.next_id == 5
    late = targets(PROGRAM1, controller.port, token, cwd=EXAMPLES,
                   PYLU_LOG_DIR=str(tmp_path / "logs"))
    unrelated = targets("app.py", controller.port, token)
    controller.wait_for(3)
    event = controller.wait_line(lambda e: e.startswith("process %d" % late.pid), events=True)
    assert "a new run of program1.py: it did not get active update(s) 2, 3, 4" in event, event
    assert "deploy([2, 3, 4], to=%d)" % late.pid in event
    other = controller.wait_line(lambda e: e.startswith("process %d" % unrelated.pid), events=True)
    assert other.endswith("connected from 127.0.0.1:%s" % other.rsplit(":", 1)[1])  # no note
    assert _applied(controller) == {first.pid: [2, 3, 4], late.pid: [], unrelated.pid: []}
    ok, lines = controller.run("deploy([2, 3, 4], to=%d)" % late.pid)
    assert ok and lines == ["[%s] applied update(s) 2-3, 4" % _label(controller, late.pid)], lines
    late.wait_for_line(lambda l: l == "new foo 4")
    assert _applied(controller) == {first.pid: [2, 3, 4], late.pid: [2, 3, 4], unrelated.pid: []}
    ok, lines = controller.run("procs()")
    assert sum(" 2,3,4 applied " in l for l in lines) == 2
    # Every process takes part in the next command with the same id.
    ok, lines = controller.run("LD.debug('__main__.bar', [12])")
    assert not ok   # app.py has no bar: it fails there, and is not counted
    assert _bodies(lines).count("Update 5 applied") == 2


def _label(controller, pid):
    return next(p.label for p in controller.server.processes(all_=True) if p.pid == pid)


def test_sticky_updates_follow_the_program_to_its_next_run(controller, targets, token, tmp_path):
    first, = _start(targets, controller, token, 1, tmp_path)
    ok, _ = controller.run("patch(%r, sticky=True)" % os.path.join(EXAMPLES, "patch.py"))
    ok2, _ = controller.run("FD.debug('__main__.bar', sticky=True)")
    ok3, _ = controller.run("FP.profile('module1.**')")    # not sticky
    assert ok and ok2 and ok3
    first.stop()
    again = targets(PROGRAM1, controller.port, token, cwd=EXAMPLES,
                    PYLU_LOG_DIR=str(tmp_path / "logs"))
    event = controller.wait_line(lambda e: e.startswith("process %d" % again.pid), events=True)
    assert "applied update(s) 1, 2" in event and "did not get active update(s) 3" in event, event
    again.wait_for_line(lambda l: l == "new foo 4")
    assert _applied(controller) == {again.pid: [1, 2]}


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
    assert "applied" not in event  # the fork inherited update 1 already
    assert list(_applied(controller).values()) == [[1]] * 3


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


def test_a_restarted_controller_learns_the_active_set_with_definitions(targets, token, tmp_path):
    first = LocalController(token)
    port = first.port
    try:
        old, = _start(targets, first, token, 1, tmp_path)
        ok, _ = first.run("FD.debug('__main__.bar')\nFP.profile('module1.**')")
        ok2, _ = first.run("LU.revert(2)")
        assert ok and ok2
    finally:
        first.close()
    second = LocalController(token, port=port)
    try:
        second.wait_for(1, timeout=30)
        ok, lines = second.run("LU.ls(all=True)")
        assert lines[1].startswith("1  active    applied in 1  FD.debug('__main__.bar') …"), lines
        assert lines[2].startswith("2  reverted  reverted in 1"), lines
        ok, lines = second.run("LD.debug('__main__.bar', [12])")
        assert ok and [b for b in _bodies(lines) if b.startswith("Update")] == \
            ["Update 3 applied"], lines
        new = targets(PROGRAM1, port, token, cwd=EXAMPLES, PYLU_LOG_DIR=str(tmp_path / "logs"))
        second.wait_for(2)
        event = second.wait_line(lambda e: e.startswith("process %d" % new.pid), events=True)
        assert "did not get active update(s) 1, 3" in event, event
        # The definitions learned from the old process can be given to the new one.
        ok, lines = second.run("deploy([1, 3], to=%d)" % new.pid)
        assert ok and lines[-1].endswith("applied update(s) 1, 3"), lines   # 2 stays reverted
        assert _applied(second) == {old.pid: [1, 3], new.pid: [1, 3]}
    finally:
        second.close()
    assert old.alive()


def test_failed_commands_use_no_ids_and_are_never_run_again(controller, targets, token):
    app = targets("prefork.py", controller.port, token, args=("1",))
    controller.wait_for(2)
    for _ in range(3):
        ok, lines = controller.run("FD.debug('__main__.nothing_here')")
        assert not ok
    ok, lines = controller.run("marks = globals().setdefault('marks', []); marks.append(1)\n"
                               "FD.debug(['__main__.handle', '__main__.nope'])")
    assert not ok          # the second pattern fails: the first is rolled back
    assert controller.server.next_id == 1
    ok, lines = controller.run("FP.profile('__main__.handle')")
    assert ok and _bodies(lines).count("Update 1 applied") == 2, lines
    # A worker forked now (same instance) inherits update 1; nothing failed is re-run in it.
    ok, _ = controller.run("import os\nif os.getpid() == %d:\n    os.fork() or None\n" % app.pid)
    assert ok
    controller.wait_for(3)
    newest = max(controller.server.processes(all_=True), key=lambda p: p.number)
    event = controller.wait_line(lambda e: e.startswith("process %d" % newest.pid), events=True)
    assert "failed" not in event and "applied" not in event, event
    results = controller.server.run("len(marks)")
    assert sorted(r["output"].strip() for _, r in results) == ["1", "1", "1"]
    ok, lines = controller.run("LU.ls()")
    assert lines[1].startswith("1  active    applied in 3  FP.profile('__main__.handle')"), lines
    assert len(lines) == 2


def test_use_narrows_an_update_to_processes_and_deploy_widens_it_to_their_instance(
        controller, targets, token):
    app = targets("prefork.py", controller.port, token, args=("2",))
    controller.wait_for(3)
    workers = [p.pid for p in controller.server.processes(all_=True) if p.pid != app.pid]
    ok, _ = controller.run("use(%s)" % ", ".join(map(str, workers)))
    assert ok
    ok, lines = controller.run("FP.profile('__main__.handle')")
    assert ok and _bodies(lines).count("Update 1 applied") == 2
    ok, _ = controller.run("use('all')")
    # Selected processes only: not the whole instance, so the master stays as it was...
    assert _applied(controller)[app.pid] == []
    # ...and deploy() makes it the instance's: the master, then a worker forked from it.
    ok, lines = controller.run("deploy(1, to=%d)" % app.pid)
    assert ok and any(l.endswith("applied update(s) 1") for l in lines), lines
    assert set(map(tuple, _applied(controller).values())) == {(1,)}


def test_use_matches_only_what_procs_shows(controller, targets, token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("use(1)")          # the first connection, not a pid
    assert not ok and "no connected process matches 1 (see procs())" in lines[-1], lines
    assert controller.server.selection is None
    ok, lines = controller.run("use('app.py')")
    assert ok and lines[-1].startswith("using 'app.py': now %d " % app.pid), lines
