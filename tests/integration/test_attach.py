"""pylu-attach against unmodified programs, driven through the real controller:
(a) two threads running Python code, (b) a process blocked in socket.recv and one in
time.sleep. Each is attached, debugged, profiled, hot-patched, reverted and detached,
and its own output stays right throughout; detach leaves no thread, tool id or hook."""
import socket
import sys
import time

from support_attach import (detach, os_threads, ours, parse_state, run_attach,
                            start_program)
from support_controller import controller, free_port, run_cli, token  # noqa: F401

PATCH_COMPUTE = """\
def compute(n):
    return n * 3 + 2

UpdateManager.apply_update(Redefine('__main__', None, {'__main__.compute': compute}))
"""
PATCH_REPLY = """\
def reply(n):
    return n * 2 + 100

UpdateManager.apply_update(Redefine('__main__', None, {'__main__.reply': reply}))
"""


def _results(prog, start, count=6, timeout=60):
    """The next `count` result lines of each worker from line index `start`: (n, value)."""
    got = {"a": [], "b": []}
    deadline = time.monotonic() + timeout
    index = start
    while min(len(v) for v in got.values()) < count:
        assert time.monotonic() < deadline, "workers stopped printing: %s" % prog.stdout[-5:]
        prog.wait_for_line(lambda l: l.startswith("result"), start=index)
        for line in prog.stdout[index:]:
            index += 1
            if line.startswith("result"):
                _, name, n, value = line.split()
                got[name].append((int(n), int(value)))
    return got, index


def _assert_formula(got, add):
    for name, rows in got.items():
        for n, value in rows:
            assert value == n * 3 + add, "worker %s: compute(%d) gave %d" % (name, n, value)


def _state(prog, start=None):
    start = len(prog.stdout) if start is None else start
    return parse_state(prog.wait_for_line(lambda l: l.startswith("state"), start=start))


def _apply_patch(controller, tmp_path, source):
    path = tmp_path / "patch.py"
    path.write_text(source)
    ok, lines = controller.run("patch(%r)" % str(path))
    assert ok, lines
    return int(next(l for l in lines if "applied" in l).split("Update ")[1].split()[0])


def test_two_threads_attach_debug_profile_patch_revert_detach(controller, token, tmp_path):
    prog = start_program("two_threads.py")
    try:
        before = _state(prog, 0)
        assert before["tasks"] == 3 and before["imported"] == "False"
        got, mark = _results(prog, 0)
        _assert_formula(got, 1)

        out = run_attach(prog.pid, controller.port, token)
        assert out.returncode == 0, out
        assert "stub started" in out.stdout and "(connected)" in out.stdout
        # mostly at the eval breaker; parked when caught between two GIL holders while
        # the main thread sleeps or a worker writes
        assert "at the eval breaker" in out.stdout or "parked in a blocking call" in out.stdout
        # this interpreter has no pyliveupdate: ours was loaded for the stub only
        assert "from the attaching environment" in out.stdout
        controller.wait_for(1)
        attached = _state(prog)
        assert attached["imported"] == "True" and "pyliveupdate-stub" in attached["threads"]

        ok, lines = controller.run("FD.debug('__main__.compute')")
        assert ok, lines
        controller.wait_line(lambda l: "[%d " % prog.pid in l and "compute" in l and "return" in l)
        ok, lines = controller.run("LP.profile('__main__.compute', [15, 16])")
        assert ok, lines
        time.sleep(1.0)
        ok, lines = controller.run("LP.show()")
        assert ok and any("total += 1" in l and " 0 " not in l.split("total")[0][-12:] for l in lines), lines
        got, mark = _results(prog, len(prog.stdout))
        _assert_formula(got, 1)

        patch_id = _apply_patch(controller, tmp_path, PATCH_COMPUTE)
        _, mark = _results(prog, len(prog.stdout), count=1)   # lines already under way
        got, mark = _results(prog, mark)
        _assert_formula(got, 2)

        ok, lines = controller.run("LU.revert(%d)" % patch_id)
        assert ok, lines
        _, mark = _results(prog, len(prog.stdout), count=1)
        got, mark = _results(prog, mark)
        _assert_formula(got, 1)

        ok, lines = controller.run("LU.detach()")
        assert ok, lines
        assert any("detached: " in l for l in lines), lines
        controller.wait_line(lambda l: "left" in l, events=True)
        deadline = time.monotonic() + 30
        while True:
            after = _state(prog)
            if not ours(after["threads"]) or time.monotonic() > deadline:
                break
        assert ours(after["threads"]) == [], after
        assert after["tasks"] == before["tasks"], (before, after)
        assert after["tools"] == before["tools"] and after["hook"] == "False", after
        got, _ = _results(prog, len(prog.stdout))
        _assert_formula(got, 1)
        assert prog.alive()
    finally:
        prog.stop()


def _ask(sock, text):
    sock.sendall(text.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    return data.decode().strip()


def test_blocked_in_recv_is_reached_at_once_and_keeps_serving(controller, token, tmp_path):
    prog = start_program("echo_server.py")
    port = int(prog.stdout[0].split()[1])
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(60)
        assert _ask(sock, "20") == "41"
        before = parse_state(_ask(sock, "state"))
        assert before["tasks"] == 1
        # now it sits in recv() with nothing to read, for as long as we like
        out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
        assert out.returncode == 0, out
        assert "parked in a blocking call" in out.stdout
        controller.wait_for(1)
        assert _ask(sock, "5") == "11"

        ok, lines = controller.run("FD.debug('__main__.reply')")
        assert ok, lines
        assert _ask(sock, "7") == "15"
        controller.wait_line(lambda l: "reply" in l and "15" in l)
        ok, lines = controller.run("LP.profile('__main__.reply', [12, 13])")
        assert ok, lines
        for n in range(20):
            assert _ask(sock, str(n)) == str(2 * n + 1)
        ok, lines = controller.run("LP.show()")
        assert ok and any("doubled + 1" in l for l in lines), lines

        patch_id = _apply_patch(controller, tmp_path, PATCH_REPLY)
        assert _ask(sock, "3") == "106"
        ok, lines = controller.run("LU.revert(%d)" % patch_id)
        assert ok, lines
        assert _ask(sock, "3") == "7"

        detach(controller, prog.pid)
        after = parse_state(_ask(sock, "state"))
        assert after["tasks"] == 1 and ours(after["threads"]) == [], after
        assert after["tools"] == before["tools"] and after["hook"] == "False"
        assert _ask(sock, "9") == "19"
        sock.close()
    finally:
        prog.stop()


def test_blocked_in_sleep_is_reached_and_can_be_attached_again_after_detach(controller, token):
    prog = start_program("sleeper.py")
    try:
        time.sleep(0.3)
        assert os_threads(prog.pid) == 1
        for _ in range(2):
            out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
            assert out.returncode == 0, out
            assert "parked in a blocking call" in out.stdout
            controller.wait_for(1)
            ok, lines = controller.run("import time; time.sleep.__name__")
            assert ok and "'sleep'" in lines[-1], lines
            again = run_attach(prog.pid, controller.port, token, "--timeout", "30")
            assert again.returncode == 0 and "a stub was already running here" in again.stdout
            assert len(controller.server.processes(all_=True)) == 1
            detach(controller, prog.pid)
            assert prog.alive()
    finally:
        prog.stop()


def test_a_thread_that_always_holds_the_gil_is_reached_at_the_eval_breaker(controller, token):
    prog = start_program("busy_in_python.py")
    try:
        out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
        assert out.returncode == 0, out
        assert "at the eval breaker" in out.stdout
        controller.wait_for(1)
        ok, lines = controller.run("FD.debug('__main__.step')")
        assert ok, lines
        controller.wait_line(lambda l: "__main__.step" in l and "returnvalues" in l)
        detach(controller, prog.pid)
        prog.wait_for_line(lambda l: l.startswith("alive"), start=len(prog.stdout))
    finally:
        prog.stop()


def test_a_process_with_its_own_pyliveupdate_uses_it(controller, token):
    prog = start_program("sleeper.py", python=sys.executable)   # this venv has pyliveupdate
    try:
        out = run_attach(prog.pid, controller.port, token, "--timeout", "30")
        assert out.returncode == 0, out
        assert "from the process's own environment" in out.stdout
        controller.wait_for(1)
        detach(controller, prog.pid)
    finally:
        prog.stop()


def test_pylu_controller_attach_option(token):
    prog = start_program("sleeper.py")
    try:
        out = run_cli(["-l", "127.0.0.1:%d" % free_port(), "--attach", str(prog.pid), "--wait", "1",
                       "-c", "import os; os.getpid()", "-c", "LU.detach()"], token, timeout=120)
        assert out.returncode == 0, out
        assert "stub started" in out.stdout and "[%d " % prog.pid in out.stdout, out.stdout
        assert "detached: " in out.stdout
        deadline = time.monotonic() + 30
        while os_threads(prog.pid) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os_threads(prog.pid) == 1
    finally:
        prog.stop()
