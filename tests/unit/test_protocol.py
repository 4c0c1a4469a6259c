"""The framed, authenticated channel: unit-level checks over real socket pairs."""
import json
import os
import socket
import stat
import struct
import threading

import pytest

from pyliveupdate import protocol

TOKEN = b"a-shared-secret-of-enough-length"


def _pair():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    return a, b


def _handshake(client_token=TOKEN, server_token=TOKEN):
    a, b = _pair()
    result = {}

    def serve():
        try:
            result["server"] = protocol.server_handshake(b, server_token)
        except Exception as e:  # noqa: BLE001
            result["server_error"] = e
    t = threading.Thread(target=serve)
    t.start()
    try:
        result["client"] = protocol.client_handshake(a, client_token)
    except Exception as e:  # noqa: BLE001
        result["client_error"] = e
        a.close()
    t.join(5)
    return result


def test_handshake_then_messages_both_ways():
    r = _handshake()
    client, server = r["client"], r["server"]
    client.send({"op": "hello", "x": "é" * 3})
    assert server.recv() == {"op": "hello", "x": "ééé"}
    server.send({"op": "exec", "src": "1+1"})
    assert client.recv()["src"] == "1+1"


def test_wrong_token_fails_on_both_sides():
    r = _handshake(client_token=b"another-secret-of-enough-length")
    assert isinstance(r["client_error"], protocol.AuthError)
    assert "wrong token" in str(r["client_error"])
    # The stub refused first, so the controller never saw a valid proof.
    assert "server" not in r and "server_error" in r


def test_a_listener_without_the_token_learns_no_reusable_proof():
    # A squatter on the port sees only the stub's nonce; the stub never sends its proof
    # unless the listener proved itself first.
    a, b = _pair()
    sent = []

    def squatter():
        hello = json.loads(b.recv(4096)[4:])
        sent.append(hello)
        body = json.dumps({"nonce": os.urandom(32).hex(), "proof": "00" * 32}).encode()
        b.sendall(struct.pack(">I", len(body)) + body)
        sent.append(b.recv(4096))  # whatever the stub sends next (nothing: it closes)
    t = threading.Thread(target=squatter)
    t.start()
    with pytest.raises(protocol.AuthError):
        protocol.client_handshake(a, TOKEN)
    a.close()
    t.join(5)
    assert set(sent[0]) == {"hello", "nonce"}
    assert sent[1] == b""


def test_tampered_and_replayed_frames_are_rejected():
    r = _handshake()
    client, server = r["client"], r["server"]
    # Replay: resend the exact bytes of an earlier frame.
    body = b'{"op":"exec","src":"x"}'
    frame = struct.pack(">I", 32 + len(body)) + client._tag(b"stub", 0, body) + body
    client.sock.sendall(frame)
    client._send_seq += 1
    assert server.recv()["src"] == "x"
    client.sock.sendall(frame)
    with pytest.raises(protocol.AuthError, match="integrity"):
        server.recv()
    # Tamper: flip one body byte.
    r = _handshake()
    client, server = r["client"], r["server"]
    body = b'{"op":"exec","src":"y"}'
    tag = client._tag(b"stub", 0, body)
    bad = body.replace(b"y", b"z")
    client.sock.sendall(struct.pack(">I", 32 + len(bad)) + tag + bad)
    with pytest.raises(protocol.AuthError):
        server.recv()


def test_oversized_and_garbage_frames():
    a, b = _pair()
    a.sendall(struct.pack(">I", protocol.MAX_HANDSHAKE_FRAME + 1))
    with pytest.raises(protocol.ProtocolError, match="exceeds the limit"):
        protocol.server_handshake(b, TOKEN)
    a, b = _pair()
    a.sendall(struct.pack(">I", 5) + b"\xff\xfe{[x")
    with pytest.raises(protocol.ProtocolError, match="malformed"):
        protocol.server_handshake(b, TOKEN)
    a, b = _pair()
    a.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(protocol.ProtocolError):
        protocol.server_handshake(b, TOKEN)
    r = _handshake()
    r["client"].sock.sendall(struct.pack(">I", protocol.MAX_FRAME + 1))
    with pytest.raises(protocol.ProtocolError, match="exceeds the limit"):
        r["server"].recv()


def test_token_file_created_private_and_reused(tmp_path):
    path = tmp_path / "cfg" / "token"
    first = protocol.load_token(path=str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert protocol.load_token(path=str(path)) == first and len(first) >= 32


def test_token_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("x" * 40)
    path.chmod(0o644)
    with pytest.raises(protocol.TokenError, match="chmod 600"):
        protocol.load_token(path=str(path))
    link = tmp_path / "link"
    path.chmod(0o600)
    link.symlink_to(path)
    with pytest.raises(protocol.TokenError):
        protocol.load_token(path=str(link))


def test_token_from_argument_and_environment(monkeypatch):
    monkeypatch.setenv("PYLU_TOKEN", "from-the-environment-123")
    assert protocol.load_token() == b"from-the-environment-123"
    assert protocol.load_token("from-the-argument-12345") == b"from-the-argument-12345"
    with pytest.raises(protocol.TokenError, match="16"):
        protocol.load_token("short")


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:50050", ("127.0.0.1", 50050)), (":7000", ("127.0.0.1", 7000)),
    ("[::1]:9", ("::1", 9)), ("localhost", ("localhost", 50050))])
def test_parse_address(text, expected):
    assert protocol.parse_address(text) == expected


def test_parse_address_rejects_bad_ports():
    for bad in ("h:x", "h:70000", "[::1"):
        with pytest.raises(ValueError):
            protocol.parse_address(bad)


def test_nesting_depth_stops_counting_past_the_limit_and_ignores_strings():
    assert protocol.nesting_depth("[" * 100000, 2) == 3
    assert protocol.nesting_depth('{"a": "[[[\\"[[", "b": [1]}', 4) == 2


def test_a_deeply_nested_handshake_is_refused_without_recursion():
    for body in (b"[" * 4000, b'{"hello": [[[1]]]}'):
        a, b = _pair()
        a.sendall(struct.pack(">I", len(body)) + body)
        with pytest.raises(protocol.ProtocolError, match="nested deeper than 2"):
            protocol.server_handshake(b, TOKEN)
    r = _handshake()          # after authentication: a RecursionError becomes a ProtocolError
    body = b"[" * 200000
    r["client"].sock.sendall(struct.pack(">I", 32 + len(body)) + r["client"]._tag(b"stub", 0, body)
                             + body)
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        r["server"].recv()


def test_a_message_over_the_limit_is_not_sent_and_the_channel_still_works():
    r = _handshake()
    with pytest.raises(protocol.MessageTooLarge, match="exceeds the frame limit"):
        r["client"].send({"op": "out", "x": "y" * protocol.MAX_FRAME})
    r["client"].send({"op": "hello"})
    assert r["server"].recv() == {"op": "hello"}


def test_a_silent_peer_is_noticed():
    r = _handshake()
    r["server"].start_liveness(0.3)
    with pytest.raises(protocol.PeerSilent, match="nothing heard"):
        r["server"].recv()
