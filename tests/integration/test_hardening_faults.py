"""Faults: bad handlers, a controller that dies, a network that drops, a target killed
while recording, a disk that fills up, a log directory that disappears. In every case
the program keeps serving with the same outputs, and what happened is reported."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from support_controller import LocalController, new_token, start_target
from support_hardening import IMPORTS, LiveTarget, PYTHON, python_env


def _poll(live, src, predicate, timeout=20):
    """Run src until predicate(last output line) holds; return that line."""
    deadline = time.monotonic() + timeout
    while True:
        ok, lines = live.run(src)
        assert ok, lines
        if lines and predicate(lines[-1]):
            return lines[-1]
        assert time.monotonic() < deadline, "never true: %r -> %s" % (src, lines[-3:])
        time.sleep(0.2)


@pytest.fixture
def live():
    t = LiveTarget()
    yield t
    t.close()


# --- handlers that misbehave ----------------------------------------------------------

def test_raising_handler_is_switched_off_with_a_report(live):
    ok, lines = live.run("from pyliveupdate import engine\n"
                         "u = Instrument('__main__.compute', {'func_begin': lambda a: 1 / 0})\n"
                         "UpdateManager.apply_update(u)")
    assert ok and "Update 1 applied" in lines, lines
    _poll(live, "engine.handler_report(u.id)['disabled']", lambda l: l == "True")
    ok, lines = live.run("r = engine.handler_report(u.id); print(r['errors'], r['disabled_reason'])")
    assert lines[-1].startswith("10 10 consecutive failures; last: ZeroDivisionError"), lines
    ok, lines = live.run("print(any('switched off' in r for r in engine.status()['reports']))")
    assert lines[-1] == "True"
    # The operator hears of it without asking, and the fleet's listing says why.
    event = live.controller.wait_line(lambda e: "update 1 disabled" in e, events=True, timeout=30)
    assert event.startswith("process %d" % live.app.pid), event
    assert "10 consecutive failures; last: ZeroDivisionError" in event, event
    ok, lines = live.run("LU.ls()")
    assert lines[1].startswith("1  active    disabled in 1  from pyliveupdate import engine …"), lines
    assert lines[2].startswith("     disabled in pid %d: 10 consecutive failures" % live.app.pid)
    live.assert_serving()
    assert not any("Traceback" in l for l in live.app.stderr)  # nothing leaked to the program


def test_slow_handler_is_switched_off_by_its_time_budget(live):
    ok, lines = live.run("import time; from pyliveupdate import engine\n"
                         "u = Instrument('__main__.compute', {'func_begin': lambda a: time.sleep(0.02)})\n"
                         "UpdateManager.apply_update(u); engine.set_time_budget(u.id, 0.3)")
    assert ok, lines
    line = _poll(live, "r = engine.handler_report(u.id); (r['disabled'], r['disabled_reason'])",
                 lambda l: l.startswith("(True"))
    assert "time budget of 0.300 s exceeded" in line
    # Switched off means not called any more: the call count stays where it stopped.
    ok, first = live.run("engine.handler_report(u.id)['calls']")
    live.assert_serving()
    ok, second = live.run("engine.handler_report(u.id)['calls']")
    assert first == second
    ok, lines = live.run("LU.ls()")   # still listed, as disabled and why; revert works as usual
    assert lines[1].startswith("1  active    disabled in 1"), lines
    assert "time budget of 0.300 s exceeded" in lines[2], lines
    live.controller.wait_line(lambda e: "update 1 disabled: time budget" in e, events=True)
    ok, lines = live.run("LU.revert(u.id)")
    assert ok and "Update 1 reverted" in lines


def test_handler_printing_megabytes_is_cut_and_rate_limited(live):
    mark = len(live.controller.lines)
    ok, lines = live.run(
        "from pyliveupdate import output\n"
        "def flood(a):\n    output.emit(u.id, 'x' * 4_000_000, output.TEXT_HANDLER)\n"
        "u = Instrument('__main__.compute', {'func_begin': flood})\n"
        "UpdateManager.apply_update(u); output.set_rate_limit(5, u.id, burst=5)")
    assert ok, lines
    live.controller.wait_line(lambda l: "dropped by the rate limit" in l, start=mark)
    live.assert_serving()
    ok, lines = live.run("LU.revert(u.id); output.stats()[u.id]")
    stats = eval(lines[-1])
    assert stats["dropped"] > 0 and stats["emitted"] >= 5
    streamed = [l for l in live.controller.lines[mark:] if "xxxx" in l]
    assert streamed and all(len(l) < output_max() + 200 for l in streamed)
    assert all("characters cut" in l for l in streamed)


def test_rate_limited_debugger_skips_its_handlers_while_the_limit_is_spent(live):
    """compute() runs ~70 times a second; at 1 line a second the debugger's handlers must
    mostly not run at all (skipped in C), and the skips are reported with the drops."""
    mark = len(live.controller.lines)
    ok, lines = live.run("FD.debug('__main__.compute', rate=1)")
    assert ok, lines
    live.controller.wait_line(lambda l: "handlers were skipped" in l, start=mark, timeout=30)
    line = _poll(live, "from pyliveupdate import engine, output\n"
                       "(engine.handler_report(1)['calls'], output.stats()[1])",
                 lambda l: eval(l)[1]["skipped"] > 100)
    calls, stats = eval(line)
    assert calls < stats["skipped"] / 5, (calls, stats)
    assert 1 <= stats["emitted"] <= calls
    live.assert_serving()
    ok, lines = live.run("LU.revert(1); engine.handler_stats(1).gate_until_ns")
    assert ok and lines[-1] == "0", lines


def output_max():
    from pyliveupdate import output
    return output.MAX_LINE


# --- the controller or the network goes away ------------------------------------------

HITS = ("hits = []\n"
        "u = Instrument('__main__.compute', {'func_begin': lambda a: hits.append(a)})\n"
        "UpdateManager.apply_update(u)")


def _still_applied(controller):
    ok, lines = controller.run("n = len(hits); import time; time.sleep(0.3); "
                               "(UpdateManager.get(1).status, len(hits) > n)")
    assert ok, lines
    return lines[-1].split("] ", 1)[1]


def test_controller_killed_mid_command_leaves_the_program_and_its_updates(tmp_path):
    token = new_token()
    first = LocalController(token)
    port = first.port
    first.close()  # only its port: the real controller runs as a separate process
    app = start_target("app.py", port, token)
    cli = subprocess.Popen(
        [PYTHON, "-m", "pyliveupdate_controller.repl", "-l", "127.0.0.1:%d" % port,
         "--wait", "1", "-c", IMPORTS + HITS, "-c", "import time; time.sleep(1.5); print('done')"],
        env=python_env(PYLU_TOKEN=token), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = cli.stdout.readline()
        while "Update 1 applied" not in line:
            assert line, cli.stderr.read()
            line = cli.stdout.readline()
        time.sleep(0.3)  # the stub is inside the sleeping command now
        cli.kill()
        cli.wait(10)
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
        second = LocalController(token, port=port)
        try:
            second.wait_for(1, timeout=30)
            assert _still_applied(second) == "('applied', True)"
            proc = second.server.processes()[0]
            assert proc.info["pid"] == app.pid
            # The stub reports what it has applied in its hello on reconnecting.
            assert proc.info["updates"]["active"] == [1], proc.info
        finally:
            second.close()
        assert app.alive()
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
        app.stop()


class DroppingRelay:
    """Forwards stub <-> controller; drop() resets every connection at once."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self.conns += [down, up]
            self.accepted += 1
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        while True:
            try:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def drop(self):
        for c in self.conns:  # both ends at once, as when a link dies
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns = []

    def close(self):
        self.sock.close()
        self.drop()


def test_network_drop_the_stub_reconnects_with_its_updates():
    token = new_token()
    controller = LocalController(token)
    relay = DroppingRelay(controller.port)
    app = start_target("app.py", relay.port, token)
    try:
        controller.wait_for(1)
        ok, lines = controller.run(IMPORTS + HITS)
        assert ok and any("Update 1 applied" in l for l in lines), lines
        for round_ in range(2):
            relay.drop()
            controller.wait_line(lambda e: "left" in e, events=True,
                                 start=len(controller.events) - 1 if round_ else 0)
            deadline = time.monotonic() + 30
            while relay.accepted < round_ + 2:
                assert time.monotonic() < deadline, "the stub did not reconnect"
                time.sleep(0.05)
            controller.wait_for(1)
            assert controller.server.processes()[0].info["updates"]["active"] == [1]
            assert _still_applied(controller) == "('applied', True)"
        mark = len(app.stdout)
        app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
    finally:
        app.stop()
        relay.close()
        controller.close()


# --- recording under faults -----------------------------------------------------------

def _record(live, directory, flush_ms=5, frame_ms=20, budget=None):
    ok, lines = live.run(
        "import __main__; from pyliveupdate import engine, recording, _engine\n"
        "engine.arm(900, __main__.compute.__code__, engine.Request(func_timing=True),"
        " module='__main__', qualname='compute')\n"
        "print(recording.ensure_started(%r, flush_ms=%d, frame_ms=%d, budget=%r))"
        % (str(directory), flush_ms, frame_ms, budget))
    assert ok, lines
    return lines[-1]


def test_sigkill_while_recording_leaves_a_log_that_reads_to_its_last_flush(live, tmp_path):
    from pyliveupdate import _engine
    logs = tmp_path / "logs"
    path = _record(live, logs)
    ok, lines = live.run("for i in range(20000): __main__.compute(i)\n"
                         "_engine.recorder_flush(); print(_engine.recorder_stats()['events'])")
    flushed = int(lines[-1])
    assert flushed >= 40000
    os.kill(live.app.pid, signal.SIGKILL)
    live.app.proc.wait(10)
    reader = _engine.LogReader(path)
    events = sum(1 for item in reader if item[0] == "event")
    assert events >= flushed
    assert not reader.complete
    assert reader.error is None or "truncated" in reader.error


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system of our own (tmpfs)."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                           str(where)], capture_output=True, text=True)
    assert done.returncode == 0, "cannot mount a small tmpfs (root needed): %s" % done.stderr
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_disk_stops_recording_with_a_report_and_the_program_carries_on(live, small_disk):
    # A budget above the disk's size: the default (a tenth of the free space) would keep
    # the log from ever filling it.
    path = _record(live, small_disk, frame_ms=5, budget=1 << 30)
    assert path.startswith(str(small_disk))
    # Random arguments keep the log incompressible; on a starved machine the rings drop
    # records instead of filling the disk, so keep going (bounded) until recording stops.
    ok, lines = live.run("import random, time\n"
                         "deadline = time.monotonic() + 30\n"
                         "while _engine.recorder_active() and time.monotonic() < deadline:\n"
                         "    for i in range(50000): __main__.compute(random.random())\n"
                         "    _engine.recorder_flush()\n"
                         "s = _engine.recorder_stats()\n"
                         "(_engine.recorder_active(), s['error'])")
    assert ok, lines
    assert lines[-1].startswith("(False, ") and "No space left on device" in lines[-1], lines
    live.app.wait_for_line(lambda l: "recording stopped" in l and "No space left" in l,
                           stream="stderr")
    live.assert_serving()
    # What reached the disk reads back up to where it stopped.
    from pyliveupdate import _engine
    reader = _engine.LogReader(path)
    assert sum(1 for item in reader if item[0] == "event") > 0


def test_removed_log_directory_stops_recording_with_a_report(live, tmp_path):
    import shutil
    logs = tmp_path / "logs"
    path = _record(live, logs)
    ok, lines = live.run("for i in range(2000): __main__.compute(i)\n_engine.recorder_flush()")
    assert ok and os.path.exists(path)
    shutil.rmtree(logs)
    ok, lines = live.run("for i in range(2000): __main__.compute(i)\n_engine.recorder_flush()\n"
                         "(_engine.recorder_active(), _engine.recorder_stats()['error'])")
    assert ok and lines[-1].startswith("(False, ") and "removed" in lines[-1], lines
    live.app.wait_for_line(lambda l: "recording stopped" in l, stream="stderr")
    live.assert_serving()
    # Recording can start again, in a directory that exists.
    path2 = _record(live, tmp_path / "logs2")
    assert path2 != path and os.path.exists(path2)


def test_program_printing_hard_while_commands_come_and_go_keeps_running(live):
    """Each command swaps sys.stdout for a router and back; a program thread in the middle
    of print() must never see a router that is gone (CPython 3.12's print() holds only a
    borrowed reference to sys.stdout)."""
    ok, lines = live.run("import threading, sys\nprinting = [True]\n"
                         "def spam():\n    i = 0\n    while printing[0]:\n"
                         "        print('spam', i, 'x' * 20); i += 1\n"
                         "threading.Thread(target=spam, daemon=True).start()")
    assert ok, lines
    for i in range(150):
        ok, lines = live.run("%d + 1" % i)
        assert ok and lines == [str(i + 1)], (i, lines, live.app.stderr[-10:])
    ok, _ = live.run("printing[0] = False")
    assert ok
    live.assert_serving()
    assert not any("Error" in l for l in live.app.stderr), live.app.stderr[-10:]
