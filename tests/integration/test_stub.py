"""The stub in real programs: dialing, retrying, reconnecting, forking, its namespace."""
import os
import time

from support_controller import (LocalController, controller, free_port, start_target,  # noqa: F401
                                targets, token)


def _listening_inodes():
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A":  # LISTEN
                        inodes.add(cols[9])
        except FileNotFoundError:
            pass
    return inodes


def _socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def test_stub_without_controller_listens_nowhere_then_connects_when_it_appears(targets, token):
    port = free_port()
    app = targets("app.py", port, token)
    app.wait_for_line(lambda l: l.startswith("ready"))
    app.wait_for_line(lambda l: l.startswith("tick 5"))
    assert not (_socket_inodes(app.pid) & _listening_inodes())
    c = LocalController(token, port=port)
    try:
        c.wait_for(1, timeout=20)
        ok, lines = c.run("import os; os.getpid()")
        assert ok and lines == ["[%d %s app.py] %d" % (app.pid, os.uname().nodename, app.pid)]
    finally:
        c.close()


def test_stub_reconnects_after_the_controller_restarts(targets, token):
    c = LocalController(token)
    port = c.port
    app = targets("app.py", port, token)
    c.wait_for(1)
    ok, _ = c.run("x = 41")
    assert ok
    c.close()
    time.sleep(0.3)
    c2 = LocalController(token, port=port)
    try:
        c2.wait_for(1, timeout=20)
        ok, lines = c2.run("x + 1")  # the namespace survived the reconnection
        assert ok and lines[-1].endswith("] 42")
    finally:
        c2.close()
    assert app.alive()


def test_forked_workers_connect_on_their_own(targets, controller, token):
    app = targets("prefork.py", controller.port, token, args=("2",))
    line = app.wait_for_line(lambda l: l.startswith("workers"))
    children = {int(p) for p in line.split()[1:]}
    controller.wait_for(3)
    ok, lines = controller.run("import os; (os.getpid(), os.getppid())")
    assert ok
    pairs = {eval(l.split("] ", 1)[1]) for l in lines}
    assert pairs >= {(child, app.pid) for child in children}
    assert app.pid in {p for p, _ in pairs}
    # Each worker runs its own commands: state set in one does not leak into another.
    ok, lines = controller.run("counter = globals().get('counter', 0) + 1; counter")
    assert ok and {l.split("] ", 1)[1] for l in lines} == {"1"}


def test_commands_run_in_a_private_namespace_and_capture_only_their_own_output(controller, targets,
                                                                                token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("import builtins\n"
                               "print(sorted(n for n in ('FP', 'LU', 'show', 'UpdateStub') "
                               "if hasattr(builtins, n)))")
    assert ok and lines[-1].endswith("] []")
    mark = len(app.stdout)
    ok, lines = controller.run("import time\nfor i in range(3):\n    print('cmd', i)\n"
                               "    time.sleep(0.06)\n")
    assert ok and [l.split("] ", 1)[1] for l in lines] == ["cmd 0", "cmd 1", "cmd 2"]
    # The program's own prints during the command went to its stdout, not to us.
    app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    assert not any("cmd" in l for l in app.stdout[mark:])
    assert not any("tick" in l for l in lines)


def test_errors_come_back_as_errors_and_the_program_keeps_running(controller, targets, token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("import __main__\n__main__.compute('x', None)")
    assert not ok
    assert lines[-1].endswith("TypeError: can't multiply sequence by non-int of type 'NoneType'")
    assert not any("command.py" in l for l in lines)  # only the command's own frames
    ok, lines = controller.run("raise SystemExit(3)")
    assert not ok and "may not exit" in lines[-1]
    mark = len(app.stdout)
    app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    assert app.alive()


def test_wrong_token_is_rejected_and_logged_and_the_program_keeps_running(controller, targets):
    app = targets("app.py", controller.port, "a-different-token-0123456789")
    controller.wait_line(lambda e: "authentication" in e and "different token" in e,
                         events=True)
    app.wait_for_line(lambda l: "rejected" in l and "wrong token" in l, stream="stderr")
    mark = len(app.stdout)
    app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    assert controller.server.processes() == []


def test_a_command_that_stops_the_stub_gets_its_reply_then_the_stub_leaves(controller, targets,
                                                                          token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("import gc, pyliveupdate.stub as s\n"
                               "[o for o in gc.get_objects() if isinstance(o, s.UpdateStub)][0].stop()\n"
                               "'stopped'")
    assert ok and lines[-1].endswith("'stopped'"), lines
    controller.wait_line(lambda e: e.startswith("process %d" % app.pid) and "left" in e, events=True)
    time.sleep(1)
    assert controller.server.processes(all_=True) == [] and app.alive()
