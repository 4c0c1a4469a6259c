"""Security: who may talk to a stub, what an impostor learns, where logs may go.

Every test drives real processes over real loopback sockets. "Runs nothing" is checked
with a command that would create a marker file."""
import json
import os
import secrets
import socket
import struct
import subprocess
import threading
import time

import pytest

from support_controller import LocalController, free_port, new_token, run_cli, start_target
from support_hardening import FakeController, PYTHON, python_env

FRAME = struct.Struct(">I")


def _read_frames(data):
    out, i = [], 0
    while i + 4 <= len(data):
        (n,) = FRAME.unpack_from(data, i)
        if i + 4 + n > len(data):
            break
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


def _drain(conn, seconds):
    """Everything the peer sends within `seconds` (or until it closes)."""
    conn.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _marker_command(path):
    return "open(%r, 'w').write('ran')" % str(path)


class Relay:
    """A TCP relay between a stub and the controller that records both directions."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.to_ctl, self.to_stub = bytearray(), bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            down, _ = self.sock.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=self._pump, args=(down, up, self.to_ctl), daemon=True).start()
        threading.Thread(target=self._pump, args=(up, down, self.to_stub), daemon=True).start()

    @staticmethod
    def _pump(src, dst, record):
        while True:
            try:
                chunk = src.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            record += chunk
            try:
                dst.sendall(chunk)
            except OSError:
                return

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def recorded_session(tmp_path_factory):
    """A real stub's session with a real controller, through a recording relay: a command
    that wrote a marker file ran in it. Returns the token and both byte streams."""
    token = new_token()
    controller = LocalController(token)
    relay = Relay(controller.port)
    app = start_target("app.py", relay.port, token, STUB_RETRY_MAX="30")
    try:
        controller.wait_for(1)
        marker = tmp_path_factory.mktemp("rec") / "first-run"
        ok, _ = controller.run(_marker_command(marker))
        assert ok and marker.exists()
        time.sleep(0.2)
        yield token, bytes(relay.to_ctl), bytes(relay.to_stub), str(marker)
    finally:
        app.stop()
        relay.close()
        controller.close()


def test_replayed_stub_handshake_is_refused_by_the_controller(recorded_session):
    token, to_ctl, _, _ = recorded_session
    controller = LocalController(token)
    try:
        conn = socket.create_connection(("127.0.0.1", controller.port), timeout=10)
        conn.sendall(to_ctl)  # the old hello, the old proof, the old authenticated frames
        reply = _drain(conn, 3)
        frames = [json.loads(f) for f in _read_frames(reply)]
        # It got a fresh challenge, then a refusal; never an authenticated frame.
        assert frames[0].keys() == {"nonce", "proof"}
        assert frames[1:] == [{"ok": False, "error": "authentication failed"}]
        controller.wait_line(lambda e: "failed authentication" in e, events=True)
        assert controller.server.processes(all_=True) == []
    finally:
        controller.close()


@pytest.mark.parametrize("impostor", ["replays a recorded controller", "guesses a proof",
                                      "says nothing", "sends commands without a handshake"])
def test_a_listener_planted_on_the_controller_port_learns_nothing_and_runs_nothing(
        recorded_session, tmp_path, impostor):
    token, _, to_stub, _ = recorded_session
    fake = FakeController("not-the-token-at-all-000000")
    app = start_target("app.py", fake.port, token)
    marker = tmp_path / "impostor-ran"
    try:
        conn = fake.accept()
        hello = _drain(conn, 0.5)
        frames = _read_frames(hello)
        assert len(frames) == 1
        first = json.loads(frames[0])
        assert first.keys() == {"hello", "nonce"} and first["hello"] == "pylu/1"
        if impostor == "replays a recorded controller":
            conn.sendall(to_stub)
        elif impostor == "guesses a proof":
            body = json.dumps({"nonce": secrets.token_hex(32),
                               "proof": secrets.token_hex(32)}).encode()
            conn.sendall(FRAME.pack(len(body)) + body)
        elif impostor == "sends commands without a handshake":
            body = json.dumps({"op": "exec", "src": _marker_command(marker), "id": 1}).encode()
            for _ in range(3):
                conn.sendall(FRAME.pack(len(body)) + body)
        rest = _drain(conn, 2.5 if impostor != "says nothing" else 0.5)
        # The stub told it nothing but its own fresh nonce: no proof, no pid, no argv.
        assert rest == b"", rest[:200]
        assert not marker.exists()
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
        if impostor in ("replays a recorded controller", "guesses a proof"):
            app.wait_for_line(lambda l: "pyliveupdate" in l, stream="stderr")
        conn.close()
    finally:
        app.stop()
        fake.close()
    assert not marker.exists()


def test_recorded_commands_do_not_run_again(recorded_session, tmp_path):
    """The recorded controller stream holds an exec frame; a fresh session never runs it,
    even when the relay's peer does complete a genuine handshake and then injects it."""
    token, _, to_stub, marker = recorded_session
    os.unlink(marker)
    fake = FakeController(token)
    app = start_target("app.py", fake.port, token)
    try:
        channel, hello = fake.accept_channel()
        assert hello["pid"] == app.pid
        frames = _read_frames(to_stub)
        # frames[0..1] are the old handshake; the rest are old authenticated frames.
        for f in frames[2:]:
            channel.sock.sendall(FRAME.pack(len(f)) + f)
        assert _drain(channel.sock, 2) == b""  # the stub hung up without replying
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    finally:
        app.stop()
        fake.close()
    assert not os.path.exists(marker)


def test_wrong_token_peer_gets_no_command_and_is_not_listed(tmp_path):
    token = new_token()
    controller = LocalController(token)
    marker = tmp_path / "ran"
    try:
        app = start_target("app.py", controller.port, "some-other-token-1234567890")
        controller.wait_line(lambda e: "authentication" in e, events=True)
        ok, _ = controller.run(_marker_command(marker))
        assert not ok and controller.server.processes(all_=True) == []
        assert any("no process is connected" in l for l in controller.lines)
        app.wait_for_line(lambda l: "rejected" in l, stream="stderr")
        app.stop()
    finally:
        controller.close()
    assert not marker.exists()


def test_missing_or_unsafe_token_file_means_no_connection_at_all(tmp_path):
    home = tmp_path / "home"
    cfg = home / ".config" / "pyliveupdate"
    cfg.mkdir(parents=True)
    (cfg / "token").write_text(secrets.token_hex(32) + "\n")
    os.chmod(cfg / "token", 0o644)
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    listener.settimeout(2)
    app = start_target("app.py", port, "", **env)
    try:
        app.wait_for_line(lambda l: "cannot authenticate" in l and "chmod 600" in l,
                          stream="stderr")
        with pytest.raises(socket.timeout):
            listener.accept()  # it never dialed: no token, no connection
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    finally:
        app.stop()
        listener.close()
    # The controller refuses the same file rather than trusting it.
    out = run_cli(["-l", "127.0.0.1:%d" % port, "-c", "1"], "",
                  env_extra=dict(env, PYLU_TOKEN=""))
    assert out.returncode != 0 and "accessible by other users" in out.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.1", "no-such-host.invalid"])
def test_non_loopback_listen_address_is_refused_without_the_flag(host):
    port = free_port()
    out = run_cli(["-l", "%s:%d" % (host, port), "-c", "1"], new_token(), timeout=30)
    assert out.returncode != 0 and "--allow-remote" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


# --- log directory planted by someone else --------------------------------------------

RECORD = """
import os, sys
from pyliveupdate import recording, _engine as e
path = recording.ensure_started()
for i in range(100):
    e.recorder_emit(1, 1, 0); e.recorder_emit(3, 1, 0)
recording.stop()
print(path)
"""


def _record_with(log_dir, tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run([PYTHON, "-c", RECORD], capture_output=True, text=True, timeout=60,
                         env=python_env(PYLU_LOG_DIR=log_dir, XDG_RUNTIME_DIR=str(xdg)))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr, str(xdg / "pylu-logs")


@pytest.mark.parametrize("attack", ["symlink to the attacker's directory",
                                    "directory owned by another user",
                                    "world-writable directory"])
def test_planted_log_directory_gets_nothing_and_the_log_goes_somewhere_safe(tmp_path, attack):
    from pyliveupdate import _engine
    attacker = tmp_path / "attacker"
    attacker.mkdir(mode=0o700)
    if attack.startswith("symlink"):
        planted = tmp_path / "planted"
        os.symlink(attacker, planted)
        reason = "symlink"
    elif attack.startswith("directory owned"):
        planted = attacker
        os.chown(attacker, 54321, 54321)
        reason = "owned by uid 54321"
    else:
        planted = attacker
        os.chmod(attacker, 0o777)
        reason = "writable by group or others"
    path, err, fallback = _record_with(str(planted), tmp_path)
    assert os.listdir(attacker) == []
    assert os.path.dirname(path) == fallback
    assert reason in err and fallback in err
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o600
    events = sum(1 for item in _engine.LogReader(path) if item[0] == "event")
    assert events == 200
