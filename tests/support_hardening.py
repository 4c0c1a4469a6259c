"""Helpers for the hardening tests: a live target under a real controller, its state,
fake peers that speak the real handshake, and small HTTP clients for load."""
import ast
import http.client
import os
import socket
import sys
import threading
import time

from support_controller import FIXTURES, LocalController, new_token, start_target

# A fresh target's state is read with this command; it runs in the stub's namespace.
SNAPSHOT = (
    "import __main__ as _m, pyliveupdate.engine as _pe, pyliveupdate.update as _pu\n"
    "_st = _pe.status()\n"
    "print(repr((sorted(_pu.UpdateManager._order),"
    " sorted(i for i, u in _pu.UpdateManager._updates.items() if u.status == 'applied'),"
    " _st['armed_codes'], sorted(_st['watches']), _st['handlers_disabled'],"
    " _m.compute.__code__.co_code.hex(), _m.Shop.sell.__code__.co_code.hex())))\n"
)
IMPORTS = "from pyliveupdate.update import Instrument, Redefine, UpdateManager, LU\n"


def payload(line):
    """'[pid host prog] text' -> 'text'."""
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


class LiveTarget:
    """tests/fixtures_controller/app.py under a LocalController: run commands, read state."""

    def __init__(self, token=None, **extra):
        self.token = token or new_token()
        self.controller = LocalController(self.token)
        self.app = start_target("app.py", self.controller.port, self.token, **extra)
        self.app.wait_for_line(lambda l: l.startswith("ready"))
        self.controller.wait_for(1)
        ok, lines = self.run(IMPORTS)
        assert ok, lines

    def run(self, src):
        ok, lines = self.controller.run(src)
        return ok, [payload(l) for l in lines]

    def state(self):
        ok, lines = self.run(SNAPSHOT)
        assert ok, lines
        return ast.literal_eval(lines[-1])

    def assert_serving(self):
        """The program still ticks, and its ticks still hold the right numbers."""
        mark = len(self.app.stdout)
        for _ in range(3):
            line = self.app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
            mark = self.app.stdout.index(line, mark) + 1
            _, n, value = line.split()
            assert int(value) == (int(n) % 5) * 2 + 1, line
        assert self.app.alive()

    def close(self):
        self.app.stop()
        self.controller.close()


# --- fake peers ---------------------------------------------------------------

class FakeController:
    """Listens like the controller and runs the real server handshake with each stub,
    then lets the test drive the raw socket or the authenticated channel."""

    def __init__(self, token):
        from pyliveupdate import protocol
        self.protocol = protocol
        self.token = token.encode() if isinstance(token, str) else token
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]

    def accept(self):
        conn, _ = self.sock.accept()
        conn.settimeout(15)
        return conn

    def accept_channel(self):
        conn = self.accept()
        channel = self.protocol.server_handshake(conn, self.token)
        hello = channel.recv()
        assert hello.get("op") == "hello", hello
        return channel, hello

    def close(self):
        self.sock.close()


def stub_channel(port, token):
    """Dial a controller as a stub would; returns the authenticated Channel."""
    from pyliveupdate import protocol
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return protocol.client_handshake(sock, token.encode())


# --- HTTP load ----------------------------------------------------------------

def http_get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_http(port, path="/", timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(port, path, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Load:
    """Client threads sending GETs until stopped (bounded by max_requests and max_seconds).
    Records every (status, body), when each request was sent and answered (`times`:
    (sent, answered), monotonic, in the same order), and every failure."""

    def __init__(self, port, path, threads=4, max_requests=20000, max_seconds=60):
        self.port, self.path = port, path
        self.results, self.failures, self.times = [], [], []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._left = max_requests
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self._left <= 0:
                    return
                self._left -= 1
            sent = time.monotonic()
            try:
                result = http_get(self.port, self.path)
            except Exception as e:  # noqa: BLE001 - a failed request is what we count
                with self._lock:
                    self.failures.append(repr(e))
                continue
            with self._lock:
                if result[0] != 200:
                    self.failures.append(result)
                self.results.append(result)
                self.times.append((sent, time.monotonic()))

    def within(self, start, end=float("inf")):
        """The (status, body) of the requests sent after `start` and answered before `end`
        (time.monotonic()): whatever ran in the server for them ran in between."""
        with self._lock:
            return [r for r, (sent, done) in zip(self.results, self.times)
                    if sent > start and done < end]

    def count(self):
        with self._lock:
            return len(self.results)

    def wait_count(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < deadline, "load stalled at %d requests" % self.count()
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(20)
        return list(self.results)


def python_env(**extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (FIXTURES, env.get("PYTHONPATH")) if p)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


PYTHON = sys.executable
