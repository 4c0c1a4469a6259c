"""pylu-controller as scripts use it, against real programs; hostile input on its port."""
import os
import socket
import struct
import subprocess
import sys

from support_controller import (FIXTURES, controller, free_port, run_cli, target_env,  # noqa: F401
                                start_target, targets, token)


def test_wait_then_commands_print_per_process_results_and_exit_zero(targets, token):
    port = free_port()
    apps = [targets("app.py", port, token) for _ in range(2)]
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2", "-c", "import os",
                   "-c", "os.getpid() * 0 + 7"], token)
    assert out.returncode == 0, out
    host = os.uname().nodename
    for app in apps:
        assert "[%d %s app.py] 7" % (app.pid, host) in out.stdout.splitlines()


def test_a_command_failing_anywhere_gives_a_nonzero_exit(targets, token):
    port = free_port()
    targets("app.py", port, token)
    targets("app.py", port, token, PROBE="fail")
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2", "-c",
                   "import os\nif os.environ.get('PROBE') == 'fail':\n    raise KeyError('nope')"],
                  token)
    assert out.returncode == 1, out
    assert out.stdout.count("KeyError: 'nope'") == 1


def test_wait_gives_up_with_exit_2(token):
    out = run_cli(["-l", "127.0.0.1:%d" % free_port(), "--wait", "1", "--wait-timeout", "0.5",
                   "-c", "1"], token)
    assert out.returncode == 2 and "only 0 of 1 process(es) connected" in out.stdout


def test_no_process_means_failure_not_silence(token):
    out = run_cli(["-l", "127.0.0.1:%d" % free_port(), "-c", "1"], token)
    assert out.returncode == 1 and "no process is connected" in out.stdout


def test_non_loopback_address_needs_an_explicit_flag(token):
    out = run_cli(["-l", "0.0.0.0:%d" % free_port(), "-c", "1"], token)
    assert out.returncode != 0 and "--allow-remote" in out.stderr
    out = run_cli(["-l", "0.0.0.0:%d" % free_port(), "--allow-remote", "-c", "1"], token)
    assert "WITHOUT TLS" in out.stderr and "no process is connected" in out.stdout


def test_patch_runs_a_local_file_everywhere_and_reports_syntax_errors(targets, token, tmp_path):
    port = free_port()
    apps = [targets("app.py", port, token) for _ in range(2)]
    good = tmp_path / "good.py"
    good.write_text("import __main__\n"
                    "def doubled(a, b=2):\n    return a * b * 2\n"
                    "__main__.compute.__code__ = doubled.__code__\n"
                    "print('patched', '\\\\n', \"'''\")\n")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ndef broken(:\n    pass\n")
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2",
                   "-c", "patch(%r)" % str(bad)], token)
    assert out.returncode == 1
    assert out.stdout.count("SyntaxError") == 2 and "bad.py" in out.stdout and "line 2" in out.stdout
    for app in apps:  # unchanged: compute(n % 5) still gives n%5*2+1
        mark = len(app.stdout)
        line = app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
        n = int(line.split()[1])
        assert int(line.split()[2]) == (n % 5) * 2 + 1
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "2",
                   "-c", "patch(%r)" % str(good)], token)
    assert out.returncode == 0, out
    assert out.stdout.count("patched \\n '''") == 2  # the file is sent verbatim
    for app in apps:
        mark = len(app.stdout)
        line = app.wait_for_line(lambda l: l.startswith("tick"), start=mark)
        n = int(line.split()[1])
        assert int(line.split()[2]) == (n % 5) * 4


def _raw(port, data, read=True):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        if read:
            try:
                return s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                return b""
    return b""


def test_garbage_and_oversized_frames_close_only_that_connection(controller, targets, token):
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    _raw(controller.port, b"\x00\x00\x00\x05hello")
    _raw(controller.port, b"GET / HTTP/1.0\r\n\r\n")
    _raw(controller.port, struct.pack(">I", 64 * 1024 * 1024) + b"x" * 100)
    controller.wait_line(lambda e: "malformed frame" in e, events=True)
    controller.wait_line(lambda e: "exceeds the limit" in e, events=True)
    ok, lines = controller.run("1 + 1")
    assert ok and lines == ["[%d %s app.py] 2" % (app.pid, os.uname().nodename)]
    assert app.alive()


def test_oversized_frame_from_an_authenticated_peer_closes_it(controller, targets, token):
    # An authenticated stub that sends a frame over the limit is dropped with a reason;
    # the program itself is not harmed and the stub reconnects.
    app = targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, _ = controller.run(
        "import pyliveupdate.stub as s, struct\n"
        "ch = [o for o in __import__('gc').get_objects() if type(o).__name__ == 'Channel'][0]\n"
        "ch.sock.sendall(struct.pack('>I', 20 * 1024 * 1024))\n")
    controller.wait_line(lambda e: "exceeds the limit" in e, events=True)
    controller.wait_line(lambda e: e.startswith("process %d" % app.pid) and "connected" in e,
                         events=True, start=1)
    assert app.alive()


def test_tls_listener_with_a_tls_stub(targets, token, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    app = targets("app.py", port, token, PYLU_TLS_CA=str(cert))
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--tls-cert", str(cert), "--tls-key", str(key),
                   "--wait", "1", "-c", "import ssl; type(__import__('gc').get_referrers)"
                   " and sum(isinstance(o, ssl.SSLSocket) for o in __import__('gc').get_objects())"],
                  token)
    assert out.returncode == 0, out
    assert int(out.stdout.strip().rsplit("] ", 1)[1]) >= 1
    assert app.alive()


def test_scripted_commands_are_echoed_and_long_replies_summarised(targets, token):
    port = free_port()
    app = targets("app.py", port, token)
    out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "1",
                   "-c", "print('\\n'.join(map(str, range(1000))))",
                   "-c", "FP.profile('x' * 10**6)", "-c", "print('a' * 5000)"], token)
    assert out.returncode == 1, out
    lines = [l for l in out.stdout.splitlines() if not l.startswith("[pylu-controller] process")]
    assert lines[0] == ">>> print('\\n'.join(map(str, range(1000))))", lines[:3]
    tag = "[%d %s app.py]" % (app.pid, os.uname().nodename)
    assert lines[1:41] == ["%s %d" % (tag, i) for i in range(40)]
    assert lines[41] == "%s … 960 more lines" % tag
    assert lines[42].endswith("summarised: more() prints these replies in full")
    assert lines[43].startswith(">>> FP.profile('x' * 10**6)")
    assert len(out.stdout) < 20000, len(out.stdout)       # not megabytes of pattern
    assert "%s %s … 4600 more characters" % (tag, "a" * 400) in lines


def test_more_prints_the_last_replies_in_full(controller, targets, token):
    targets("app.py", controller.port, token)
    controller.wait_for(1)
    ok, lines = controller.run("print('\\n'.join(map(str, range(100))))")
    assert ok and len(lines) == 42
    ok, lines = controller.run("more()")
    assert ok and len(lines) == 100 and lines[-1].endswith("] 99")


ENDS_WHEN_TOLD = '''
import threading
from pyliveupdate import UpdateStub

go = threading.Event()
UpdateStub(retry_max=0.3).start()
print("ready", flush=True)
go.wait(60)
'''


def test_a_command_that_ends_the_program_still_gets_its_reply(token, tmp_path):
    # The command lets the main thread finish while it is still running: the interpreter
    # exits during the command, and the reply must go out before it does.
    script = tmp_path / "ends.py"
    script.write_text(ENDS_WHEN_TOLD)
    port = free_port()
    env = target_env(port, token)
    program = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        out = run_cli(["-l", "127.0.0.1:%d" % port, "--wait", "1", "-c",
                       "import __main__, time; __main__.go.set(); time.sleep(0.3); 'done'"],
                      token)
        assert out.returncode == 0, out
        assert "] 'done'" in out.stdout, out.stdout
        assert program.wait(30) == 0
    finally:
        program.kill()
