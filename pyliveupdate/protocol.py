"""The channel between a stub and the controller: framing, authentication, the token.

Shared by both sides, standard library only.

Wire format (docs/DESIGN.md §6):

* A frame is a 4-byte big-endian length, then that many bytes of payload.
* During the handshake the payload is a UTF-8 JSON object (at most 4 KiB).
* After the handshake the payload is a 32-byte HMAC-SHA256 tag followed by the UTF-8
  JSON body (at most 16 MiB). The tag covers the direction, a per-direction sequence
  number and the body, keyed by a session key derived from the token and both nonces.
  So a relay that sits between two honest peers can neither inject, replay nor reorder
  messages, and a process that squats on the port learns nothing it can use.

Handshake (the stub dials, the controller listens):

    stub -> ctl   {"hello": "pylu/1", "nonce": Ns}
    ctl  -> stub  {"nonce": Nc, "proof": HMAC(token, "ctl" | Ns | Nc)}
    stub -> ctl   {"proof": HMAC(token, "stub" | Nc | Ns)}
    ctl  -> stub  {"ok": true}

Each side checks the other's proof before it sends anything that depends on the token,
with fresh 32-byte nonces per connection, so proofs are never reusable.

Liveness: after the handshake each side sends {"op": "ka"} when it has sent nothing for
KEEPALIVE_INTERVAL seconds, and gives the peer up when nothing arrived for
KEEPALIVE_TIMEOUT seconds (a frozen or vanished peer is noticed; TCP alone never would).
"""
import hashlib
import hmac
import json
import os
import secrets
import socket
import stat
import struct

PROTOCOL = "pylu/1"
MAX_FRAME = 16 * 1024 * 1024
MAX_HANDSHAKE_FRAME = 4096
NONCE_BYTES = 32
TAG_BYTES = 32
HANDSHAKE_TIMEOUT = 10.0
# A handshake object is flat: {"hello": ..., "nonce": ...}. Unauthenticated bytes are
# never handed to json.loads with more nesting than this (4,000 '[' would exhaust the
# C stack check and raise RecursionError, which is not a ValueError).
MAX_HANDSHAKE_DEPTH = 2
KEEPALIVE_INTERVAL = 2.5
KEEPALIVE_TIMEOUT = 9.0

_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something we do not accept; the connection must be closed."""


class AuthError(ProtocolError):
    """The peer failed to prove it knows the token."""


class MessageTooLarge(ValueError):
    """A message we were about to send exceeds the frame limit; nothing was sent and
    the connection is as usable as before."""


class PeerSilent(ProtocolError):
    """Nothing arrived from the peer for KEEPALIVE_TIMEOUT seconds: it is gone or frozen."""


class TokenError(Exception):
    """No usable token (for example a token file that others can read)."""


# --- token ------------------------------------------------------------------

def default_token_path():
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "pyliveupdate", "token")


def load_token(token=None, path=None):
    """The shared secret as bytes: the argument, else $PYLU_TOKEN, else the token file.

    The file is created (0600, random) on first use. A file that is a symlink, is not
    owned by us or is readable by others is refused rather than trusted.
    """
    if token is None:
        token = os.environ.get("PYLU_TOKEN") or None
    if token is not None:
        raw = token.encode() if isinstance(token, str) else bytes(token)
        if len(raw) < 16:
            raise TokenError("the token must be at least 16 characters long")
        return raw
    path = path or default_token_path()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_token_file(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return _read_token_file(path)


def _read_token_file(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise TokenError("cannot open the token file %s: %s" % (path, e.strerror)) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise TokenError("the token file %s is not a regular file" % path)
        if st.st_uid != os.getuid():
            raise TokenError("the token file %s is not owned by this user" % path)
        if st.st_mode & 0o077:
            raise TokenError("the token file %s is accessible by other users (mode %o); "
                             "run: chmod 600 %s" % (path, stat.S_IMODE(st.st_mode), path))
        raw = f.read().strip()
    if len(raw) < 16:
        raise TokenError("the token file %s holds no usable token" % path)
    return raw


# --- framing ----------------------------------------------------------------

def _recv_exact(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("connection closed by peer")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv_payload(sock, limit):
    (length,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    if length > limit:
        raise ProtocolError("frame of %d bytes exceeds the limit of %d" % (length, limit))
    return _recv_exact(sock, length)


def nesting_depth(text, limit):
    """The deepest bracket nesting of JSON text outside strings, counting no further
    than limit + 1 (so a hostile frame costs one pass and no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def _decode(body, max_depth=None):
    try:
        text = body.decode("utf-8")
        if max_depth is not None and nesting_depth(text, max_depth) > max_depth:
            raise ProtocolError("malformed frame: nested deeper than %d levels" % max_depth)
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError("malformed frame: %s" % e) from None
    except RecursionError:
        raise ProtocolError("malformed frame: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed frame: expected a JSON object")
    return obj


def _encode(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _send_plain(sock, obj):
    body = _encode(obj)
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _recv_plain(sock):
    return _decode(_recv_payload(sock, MAX_HANDSHAKE_FRAME), MAX_HANDSHAKE_DEPTH)


# --- handshake --------------------------------------------------------------

def _proof(token, label, first, second):
    return hmac.new(token, label + first + second, hashlib.sha256).hexdigest()


def _nonce_from(msg, key):
    value = msg.get(key)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != NONCE_BYTES:
        raise ProtocolError("handshake: missing or malformed %s" % key)
    return raw


def _check_proof(msg, expected, who):
    got = msg.get("proof")
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError).
    if not isinstance(got, str) or not hmac.compare_digest(got.encode("utf-8", "replace"),
                                                           expected.encode()):
        raise AuthError("%s failed authentication (wrong token?)" % who)


def client_handshake(sock, token):
    """Run by the stub. Returns a Channel, or raises AuthError/ProtocolError/OSError."""
    n_stub = secrets.token_bytes(NONCE_BYTES)
    _send_plain(sock, {"hello": PROTOCOL, "nonce": n_stub.hex()})
    reply = _recv_plain(sock)
    if "error" in reply:
        raise AuthError("controller refused: %s" % reply["error"])
    n_ctl = _nonce_from(reply, "nonce")
    _check_proof(reply, _proof(token, b"ctl", n_stub, n_ctl), "the controller")
    _send_plain(sock, {"proof": _proof(token, b"stub", n_ctl, n_stub)})
    done = _recv_plain(sock)
    if done.get("ok") is not True:
        raise AuthError("controller refused: %s" % done.get("error", "no reason given"))
    return Channel(sock, _session_key(token, n_stub, n_ctl), b"stub", b"ctl")


def server_handshake(sock, token):
    """Run by the controller for each accepted connection."""
    hello = _recv_plain(sock)
    if hello.get("hello") != PROTOCOL:
        raise ProtocolError("not a pyliveupdate stub (bad hello)")
    n_stub = _nonce_from(hello, "nonce")
    n_ctl = secrets.token_bytes(NONCE_BYTES)
    _send_plain(sock, {"nonce": n_ctl.hex(), "proof": _proof(token, b"ctl", n_stub, n_ctl)})
    try:
        answer = _recv_plain(sock)
    except EOFError:
        raise AuthError("the stub hung up during authentication: it failed to verify "
                        "the controller (different token?)") from None
    try:
        _check_proof(answer, _proof(token, b"stub", n_ctl, n_stub), "the stub")
    except AuthError:
        try:
            _send_plain(sock, {"ok": False, "error": "authentication failed"})
        except OSError:
            pass
        raise
    _send_plain(sock, {"ok": True})
    return Channel(sock, _session_key(token, n_stub, n_ctl), b"ctl", b"stub")


def _session_key(token, n_stub, n_ctl):
    return hmac.new(token, b"session" + n_stub + n_ctl, hashlib.sha256).digest()


class Channel:
    """An authenticated connection: send() and recv() JSON objects.

    send() may be called from several threads (it holds a lock); recv() from one.
    After start_liveness() recv() raises PeerSilent when the peer stays silent too long.
    """

    def __init__(self, sock, key, my_label, peer_label):
        import threading
        import time
        self._clock = time.monotonic
        self.last_sent = self._clock()
        self.sock = sock
        self._key = key
        self._send_label = my_label
        self._recv_label = peer_label
        self._send_seq = 0
        self._recv_seq = 0
        self._send_lock = threading.Lock()
        self._buf = bytearray()
        # wait_readable(fd, timeout, lend) -> bool: how recv() waits for the peer, when
        # set (the stub sets the C core's, so a busy main thread lends it the GIL).
        self.wait_readable = None

    def _tag(self, label, seq, body):
        return hmac.new(self._key, label + seq.to_bytes(8, "big") + body, hashlib.sha256).digest()

    def start_liveness(self, timeout=None):
        """From now on a recv() that waits longer than `timeout` raises PeerSilent (the
        peer sends keepalives); sends that stall that long fail as OSError."""
        self.sock.settimeout(KEEPALIVE_TIMEOUT if timeout is None else timeout)

    def send(self, obj):
        """Send one message. MessageTooLarge (nothing sent, channel intact) when it is
        over the frame limit; OSError when the link failed (the channel is then dead)."""
        body = _encode(obj)
        if len(body) + TAG_BYTES > MAX_FRAME:
            raise MessageTooLarge("message of %s exceeds the frame limit of %s; not sent"
                                  % (_size(len(body)), _size(MAX_FRAME - TAG_BYTES)))
        with self._send_lock:
            tag = self._tag(self._send_label, self._send_seq, body)
            self._send_seq += 1
            self.sock.sendall(_LENGTH.pack(len(body) + TAG_BYTES) + tag + body)
            self.last_sent = self._clock()

    def keepalive_due(self):
        return self._clock() - self.last_sent >= KEEPALIVE_INTERVAL

    def send_keepalive(self):
        self.send({"op": "ka"})

    def _fill(self, n):
        # One recv() usually brings a whole frame: each blocking call gives up the GIL,
        # and getting it back from a busy program thread costs up to the switch interval.
        buf = self._buf
        while len(buf) < n:
            if self.wait_readable is not None and not _tls_buffered(self.sock):
                # Only a frame's first wait asks for the GIL (a large frame's chunks do not).
                if not self.wait_readable(self.sock.fileno(), self.sock.gettimeout(), not buf):
                    raise self._silent()
            try:
                chunk = self.sock.recv(max(65536, min(n - len(buf), 1 << 20)))
            except TimeoutError:
                raise self._silent() from None
            if not chunk:
                raise EOFError("connection closed by peer")
            buf += chunk

    def _silent(self):
        return PeerSilent("nothing heard from the peer for %g s (frozen, or the network "
                          "dropped it)" % self.sock.gettimeout())

    def _take(self, n):
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv(self):
        (length,) = _LENGTH.unpack(self._take(_LENGTH.size))
        if length > MAX_FRAME:
            raise ProtocolError("frame of %d bytes exceeds the limit of %d" % (length, MAX_FRAME))
        payload = self._take(length)
        if len(payload) < TAG_BYTES:
            raise ProtocolError("frame too short for its authentication tag")
        tag, body = payload[:TAG_BYTES], payload[TAG_BYTES:]
        expected = self._tag(self._recv_label, self._recv_seq, body)
        if not hmac.compare_digest(tag, expected):
            raise AuthError("frame failed its integrity check (tampered or out of order)")
        self._recv_seq += 1
        return _decode(body)

    def close(self):
        # shutdown first: close() alone sends nothing while another thread is blocked in
        # recv() on this socket, so the peer would never learn that we left.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _tls_buffered(sock):
    """Bytes TLS has decrypted and holds: readable although the socket is not."""
    pending = getattr(sock, "pending", None)
    return pending is not None and pending() > 0


def _size(n):
    return "%.1f MiB" % (n / 1048576) if n >= 1048576 else "%d bytes" % n


def parse_address(text, default_port=50050):
    """'HOST:PORT', ':PORT', 'HOST' or '[v6]:PORT' -> (host, port)."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("bad address %r" % text)
        host, rest = text[1:end], text[end + 1:]
        if rest.startswith(":"):
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        port = int(port)
    except ValueError:
        raise ValueError("bad port in address %r" % text) from None
    if not 0 <= port <= 65535:
        raise ValueError("port out of range in address %r" % text)
    return (host or "127.0.0.1"), port
