"""The channel notices: messages over the frame limit, peers that freeze or vanish,
hostile pre-authentication frames. Real processes, real sockets, the real controller."""
import os
import signal
import socket
import struct
import threading
import time

from support_controller import LocalController, controller, start_target, targets, token  # noqa: F401
from support_hardening import FakeController


def _payload(lines):
    return [l.split("] ", 1)[1] for l in lines if "] " in l]


def test_a_message_over_the_frame_limit_is_refused_and_the_link_stays_usable(
        controller, targets, token, tmp_path):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    big = tmp_path / "big.py"
    big.write_text("x = %r\n" % ("y" * (17 * 1024 * 1024)))
    ok, lines = controller.run("patch(%r)" % str(big))
    assert not ok
    assert any("exceeds the frame limit of 16.0 MiB; not sent" in l for l in lines), lines
    # Nothing was sent: the process is still listed, answers, and takes commands.
    assert [p.pid for p in controller.server.processes()] == [app.pid]
    ok, lines = controller.run("ping")
    assert ok and "pong" in lines[0], lines
    ok, lines = controller.run("1 + 1")
    assert ok and _payload(lines) == ["2"]
    assert controller.server.next_id == 1   # and no id was used up
    assert not any("left" in e for e in controller.events)


def test_a_reply_over_the_frame_limit_comes_back_as_an_error(controller, targets, token):
    targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("import pyliveupdate.command as c; c.MAX_OUTPUT = 1 << 30\n"
                               "print('z' * (17 * 1024 * 1024))")
    assert not ok and any("the reply was not sent" in l for l in lines), lines[-3:]
    ok, lines = controller.run("import pyliveupdate.command as c; c.MAX_OUTPUT = 4 << 20; 3")
    assert ok and _payload(lines) == ["3"]


def test_a_frozen_process_is_reported_dead_and_comes_back_when_continued(controller, targets,
                                                                          token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, _ = controller.run("FP.profile('__main__.compute')")
    assert ok
    os.kill(app.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        left = controller.wait_line(lambda e: e.startswith("process %d" % app.pid) and "left" in e,
                                    events=True, timeout=30)
        took = time.monotonic() - start
        assert "nothing heard from the peer" in left, left
        assert controller.server.processes(all_=True) == []
        print("frozen peer reported after %.1f s" % took)
    finally:
        os.kill(app.pid, signal.SIGCONT)
    mark = len(controller.events)
    controller.wait_line(lambda e: e.startswith("process %d" % app.pid) and "connected" in e,
                         events=True, start=mark, timeout=30)
    ok, lines = controller.run("sorted(UpdateManager._order)")
    assert ok and _payload(lines) == ["[1]"], lines   # it kept its update, nothing replayed


def test_the_stub_gives_up_a_silent_controller_and_dials_again(token):
    fake = FakeController(token)
    app = start_target("app.py", fake.port, token)
    try:
        channel, hello = fake.accept_channel()   # then never a keepalive, never a sync
        assert hello["instance"].endswith("/%d/%s" % (app.pid, hello["instance"].split("/")[-1]))
        start = time.monotonic()
        conn = fake.accept()                     # its next attempt
        took = time.monotonic() - start
        assert 5 < took < 25, took
        conn.close()
        channel.close()
        assert app.alive()
    finally:
        app.stop()
        fake.close()


def _raw_frame(port, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(struct.pack(">I", len(body)) + body)
        data = s.recv(4096)     # closed by the controller: b"" (or a reset)
    except (ConnectionResetError, socket.timeout):
        data = b""
    finally:
        s.close()
    return data


def test_deeply_nested_pre_authentication_json_closes_only_that_connection(controller, targets,
                                                                          token):
    died = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: died.append(args)
    try:
        assert _raw_frame(controller.port, b"[" * 4000) == b""
        assert _raw_frame(controller.port, b'{"hello": [[[[[[[1]]]]]]]}') == b""
        event = controller.wait_line(lambda e: "nested deeper" in e, events=True)
        assert "closed: malformed frame" in event
    finally:
        threading.excepthook = old_hook
    assert not died, died
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("2 * 21")
    assert ok and _payload(lines) == ["42"] and app.alive()


def test_the_controller_port_can_restart_while_a_frozen_stub_waits(token):
    # A stub frozen across a controller restart reconnects to the new one when continued.
    first = LocalController(token)
    port = first.port
    app = start_target("app.py", port, token)
    try:
        first.wait_for(1)
        os.kill(app.pid, signal.SIGSTOP)
        first.close()
        second = LocalController(token, port=port)
        try:
            os.kill(app.pid, signal.SIGCONT)
            second.wait_for(1, timeout=40)
            assert second.server.processes()[0].pid == app.pid
        finally:
            second.close()
    finally:
        os.kill(app.pid, signal.SIGCONT)
        app.stop()

