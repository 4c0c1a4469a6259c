"""Helpers for the controller tests: real target processes and a real controller."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures_controller")
EXAMPLES = os.path.join(ROOT, "examples")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_token():
    return secrets.token_hex(24)


def _wait_for_line(cv, sink, predicate, start, timeout, failure, stop_early=lambda: False):
    """Wait on `cv` until a line of `sink` from index `start` on satisfies predicate."""
    deadline = time.monotonic() + timeout
    with cv:
        while True:
            for line in sink[start:]:
                if predicate(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or stop_early():
                raise AssertionError(failure())
            cv.wait(min(left, 0.2))


class Target:
    """A program started in a subprocess; its stdout/stderr are collected by threads."""

    def __init__(self, argv, env, cwd=None):
        # Its own session, so stop() can end the workers a prefork program forked too.
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1,
                                     start_new_session=True)
        self.stdout, self.stderr = [], []
        self._cv = threading.Condition()
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream, sink):
        for line in stream:
            with self._cv:
                sink.append(line.rstrip("\n"))
                self._cv.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def wait_for_line(self, predicate, timeout=60, stream="stdout", start=0):
        """Wait until a line from index `start` on satisfies predicate; return it."""
        sink = self.stdout if stream == "stdout" else self.stderr
        return _wait_for_line(
            self._cv, sink, predicate, start, timeout,
            stop_early=lambda: self.proc.poll() is not None,
            failure=lambda: "no matching line on %s of pid %d within %ss;\n"
                            "stdout tail: %s\nstderr tail: %s"
                            % (stream, self.pid, timeout, self.stdout[-10:], self.stderr[-20:]))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        try:  # whatever it forked and left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


def gunicorn_workers(controller):
    """The connected processes whose program is gunicorn (master and workers)."""
    return [p for p in controller.server.processes(all_=True) if p.info.get("program") == "gunicorn"]


def wait_workers(controller, n, master_pid, timeout=60):
    """Wait until n children of master_pid are connected and synced; return them."""
    deadline = time.monotonic() + timeout
    while True:
        ours = [p for p in gunicorn_workers(controller) if p.info.get("ppid") == master_pid]
        if len(ours) >= n and all(p.synced.is_set() for p in ours):
            return ours
        assert time.monotonic() < deadline, [p.label for p in gunicorn_workers(controller)]
        time.sleep(0.1)


def run_on_workers(controller, src):
    """Run src through the controller; it may fail only in processes that ended or
    disconnected meanwhile (workers recycled by --max-requests). Returns the lines."""
    ok, lines = controller.run(src)
    gone = [line for line in lines
            if "the process ended while running" in line
            or line.endswith(("] disconnected", "] process disconnected"))]
    assert ok or (gone and len(gone) < len(lines)), lines
    return lines


def target_env(port, token, **extra):
    env = dict(os.environ)
    env.update(PYLU_CONTROLLER="127.0.0.1:%d" % port, PYLU_TOKEN=token,
               PYTHONUNBUFFERED="1", PROGRAM1_INTERVAL="0.05")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_target(script, port, token, args=(), cwd=None, **extra):
    path = script if os.path.isabs(script) else os.path.join(FIXTURES, script)
    return Target([sys.executable, path, *args], target_env(port, token, **extra), cwd=cwd)


@pytest.fixture
def targets():
    started = []

    def start(*a, **kw):
        t = start_target(*a, **kw)
        started.append(t)
        return t
    yield start
    for t in started:
        t.stop()


class LocalController:
    """The real controller server, run inside the test process, with a log of what it printed."""

    def __init__(self, token, port=0):
        from pyliveupdate_controller import repl, server
        self.lines = []
        self.events = []
        self._cv = threading.Condition()
        self.out = _Sink(self)
        self.console = repl.Console(None, out=self.out, color=False)
        self.server = server.Server("127.0.0.1", port, token=token,
                                    on_output=self.console.stream_line, on_event=self._event,
                                    command_timeout=30)
        self.console.server = self.server
        self.server.start()
        self.port = self.server.port

    def _event(self, text):
        with self._cv:
            self.events.append(text)
            self._cv.notify_all()

    def _add(self, text):
        with self._cv:
            self.lines.extend(text.splitlines())
            self._cv.notify_all()

    def wait_for(self, count, timeout=60):
        assert self.server.wait_for(count, timeout), (
            "only %d process(es) connected; events: %s"
            % (len(self.server.processes(all_=True)), self.events))

    def run(self, src):
        """Run a command the way the console does; returns (ok, lines printed for it)."""
        mark = len(self.lines)
        ok = self.console.execute(src)
        return ok, self.lines[mark:]

    def wait_line(self, predicate, timeout=60, start=0, events=False):
        sink = self.events if events else self.lines
        return _wait_for_line(
            self._cv, sink, predicate, start, timeout,
            failure=lambda: "no matching controller line; last lines: %s; events: %s"
                            % (self.lines[-15:], self.events[-10:]))

    def close(self):
        self.server.close()


class _Sink:
    def __init__(self, owner):
        self.owner = owner

    def write(self, text):
        self.owner._add(text)

    def flush(self):
        pass

    def isatty(self):
        return False


@pytest.fixture
def token():
    return new_token()


@pytest.fixture
def controller(token):
    c = LocalController(token)
    yield c
    c.close()


def run_cli(args, token, timeout=60, env_extra=None):
    env = dict(os.environ, PYLU_TOKEN=token)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pyliveupdate_controller.repl", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)
