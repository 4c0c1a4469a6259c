"""Fuzz targets shared by atheris (run_atheris.py, `make fuzz`) and the normal suite
(tests/test_hardening_fuzz.py replays the corpora and crashers, and mutates them).

A target returns normally or raises one of the errors its API documents for bad input;
anything else (another exception, a crash, a sanitizer report) is a bug.
"""
import hashlib
import hmac
import os
import struct
import tempfile

from pyliveupdate import protocol

TOKEN = b"fuzzing-token-0123456789abcdef"
KEY = b"k" * 32
EXPECTED_PROTOCOL_ERRORS = (protocol.ProtocolError, EOFError)


class BytesSocket:
    """Enough of a socket for the protocol code: recv() serves the fuzzer's bytes in
    pieces of varying size, sendall() swallows."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0
        self.sent = 0

    def recv(self, n):
        step = 1 + (self.pos * 7919) % 61  # uneven pieces, deterministic
        chunk = bytes(self.data[self.pos:self.pos + min(n, step)])
        self.pos += len(chunk)
        return chunk

    def sendall(self, data):
        self.sent += len(data)

    def close(self):
        pass

    def shutdown(self, how):
        pass


def _tagged(channel_label, seq, body):
    tag = hmac.new(KEY, channel_label + seq.to_bytes(8, "big") + body, hashlib.sha256).digest()
    return struct.pack(">I", len(body) + len(tag)) + tag + body


def check_protocol(data):
    """First byte: which decoder. The rest: what the peer sends."""
    if not data:
        return
    mode, rest = data[0] % 5, bytes(data[1:])
    try:
        if mode == 0:
            protocol.server_handshake(BytesSocket(rest), TOKEN)
        elif mode == 1:
            protocol.client_handshake(BytesSocket(rest), TOKEN)
        elif mode == 2:  # raw frames into an authenticated channel
            ch = protocol.Channel(BytesSocket(rest), KEY, b"ctl", b"stub")
            for _ in range(8):
                assert isinstance(ch.recv(), dict)
        elif mode == 3:  # validly tagged bodies: reaches the JSON decoder
            frames = b"".join(_tagged(b"stub", i, part) for i, part in
                              enumerate(rest.split(b"\xff")[:8]))
            ch = protocol.Channel(BytesSocket(frames), KEY, b"ctl", b"stub")
            for _ in range(8):
                assert isinstance(ch.recv(), dict)
        else:
            try:
                host, port = protocol.parse_address(rest.decode("utf-8", "replace"))
                assert isinstance(host, str) and 0 <= port <= 65535
            except ValueError:
                pass
    except EXPECTED_PROTOCOL_ERRORS:
        pass


_tmpdir = None


def check_reader(data):
    """The bytes as a log file: open, iterate tuples, iterate chunks."""
    from pyliveupdate import _engine
    global _tmpdir
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="pylu-fuzz-")
    path = os.path.join(_tmpdir, "input.pylog")
    with open(path, "wb") as f:
        f.write(data)
    try:
        reader = _engine.LogReader(path)
    except ValueError as e:
        assert "log" in str(e)
        return
    assert isinstance(reader.header, dict)
    for item in reader:
        assert isinstance(item, tuple) and item[0] in ("event", "code", "thread", "text", "drop")
    assert reader.error is None or isinstance(reader.error, str)
    try:
        chunks = _engine.LogReader(path).chunks()
        for events, _metas in chunks:
            assert len(events) % 24 == 0
    except ValueError:
        pass


TARGETS = {"protocol": check_protocol, "reader": check_reader}
