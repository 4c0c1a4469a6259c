"""Write the seed corpora (tests/fuzz/corpus/{protocol,reader}/): valid inputs of each
kind, so the fuzzer starts from deep inside the decoders. Run again after a format change:

    python tests/fuzz/make_corpus.py
"""
import hashlib
import hmac
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from targets import TOKEN, _tagged  # noqa: E402

from pyliveupdate import protocol  # noqa: E402


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def protocol_seeds():
    n_stub, n_ctl = b"s" * 32, b"c" * 32
    proof = lambda label, a, b: hmac.new(TOKEN, label + a + b, hashlib.sha256).hexdigest()  # noqa: E731
    yield "server-handshake", b"\x00" + frame({"hello": "pylu/1", "nonce": n_stub.hex()}) + \
        frame({"proof": proof(b"stub", n_ctl, n_stub)})
    yield "client-handshake", b"\x01" + frame({"nonce": n_ctl.hex(), "proof": "00" * 32}) + \
        frame({"ok": True})
    yield "client-refused", b"\x01" + frame({"error": "authentication failed"})
    yield "channel-frames", b"\x02" + _tagged(b"stub", 0, b'{"op":"hello","pid":1}') + \
        _tagged(b"stub", 1, b'{"op":"out","lines":[[1,2,"x"]]}')
    yield "channel-bodies", b"\x03" + b'{"op":"result","ok":true,"id":1}\xff[1,2]\xff"s"\xff' \
        b'{"a":{"b":[1e309,-0.0,"\\ud800"]}}'
    yield "address-v6", b"\x04[::1]:50050"
    yield "address-plain", b"\x04127.0.0.1:1"
    assert protocol.MAX_HANDSHAKE_FRAME > 0


LOG_SRC = r"""
import sys, threading
from pyliveupdate import _engine as e
p = e.recorder_start(sys.argv[1], flush_ms=1, frame_ms=1)
e.recorder_text(1, "debug line")
def work():
    for i in range(40):
        e.recorder_emit(1, 1, 0); e.recorder_emit(6, 1, 10 + i % 3); e.recorder_emit(3, 1, 0)
t = threading.Thread(target=work, name="worker"); t.start(); t.join()
for i in range(40):
    e.recorder_emit(1, 2, 0); e.recorder_emit(4, 2, 0); e.recorder_emit(2, 2, 0); e.recorder_emit(5, 2, 0)
e.recorder_stop(); print(p)
"""


def reader_seeds():
    d = tempfile.mkdtemp()
    os.chmod(d, 0o700)
    try:
        out = subprocess.run([sys.executable, "-c", LOG_SRC, d], capture_output=True, text=True,
                             check=True)
        data = open(out.stdout.strip(), "rb").read()
    finally:
        shutil.rmtree(d)
    yield "whole-log", data
    yield "truncated-log", data[: len(data) // 2]
    yield "header-only", data[:64]


def main():
    for kind, seeds in (("protocol", protocol_seeds()), ("reader", reader_seeds())):
        where = os.path.join(HERE, "corpus", kind)
        os.makedirs(where, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(where, name), "wb") as f:
                f.write(data)
        print(kind, len(os.listdir(where)), "seeds")


if __name__ == "__main__":
    main()
