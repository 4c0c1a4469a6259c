"""The interactive console on a real terminal (pty): the prompt_toolkit line editor with
live output above the line being typed, multi-line input, completion from the target and
of file names in patch('...'), Ctrl-C that interrupts a running command everywhere,
history, exit; and the plain console when stdin is not a terminal."""
import os
import pty
import select
import subprocess
import sys
import time

from support_controller import LocalController, free_port, targets, token  # noqa: F401


class Terminal:
    def __init__(self, argv, env, cwd=None):
        self.fd, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                                     env=dict(os.environ, **env), start_new_session=True,
                                     preexec_fn=_controlling_tty)
        os.close(slave)
        self.seen = ""

    def expect(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, "did not see %r; terminal shows:\n%s" % (text, self.seen[-2000:])
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
        assert text in self.seen, self.seen[-2000:]
        head, _, self.seen = self.seen.partition(text)
        return head

    def send(self, text):
        os.write(self.fd, text.encode())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.fd)


def _controlling_tty():
    # The pty becomes the controlling terminal, so Ctrl-C (\x03) is a SIGINT, as for a person.
    import fcntl
    import termios
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_interactive_session(targets, token, tmp_path):
    port = free_port()
    app = targets("app.py", port, token)
    env = {"PYLU_TOKEN": token, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "dumb", "NO_COLOR": "1"}
    env["TERM"] = "xterm"
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"   # a pty does not answer cursor position requests
    (tmp_path / "fix_prices_now.py").write_text(
        "import __main__\nfrom pyliveupdate.update import Redefine, UpdateManager\n"
        "UpdateManager.apply_update(Redefine('__main__', None, {'__main__.compute': lambda a, b=2: -1}))\n")
    term = Terminal([sys.executable, "-m", "pyliveupdate_controller.repl", "-l",
                     "127.0.0.1:%d" % port], env, cwd=str(tmp_path))
    try:
        term.expect("process %d" % app.pid)
        term.send("import __main__\n")
        term.expect(">>> ")
        term.send("__main__.comp\t")           # completed from the target's names
        time.sleep(1)
        term.send("(3)\n")
        term.expect("app.py] 7")
        # Live output arrives while a line is half typed; the line is not broken.
        term.send("FD.debug('__main__.compute', rate=5)\n")
        term.expect("Update 1 applied")
        term.send("40 +")
        term.expect("parameters")               # printed above the prompt meanwhile
        term.send(" 2\n")
        term.expect("app.py] 42")
        term.send("LU.revert(1)\n")
        term.expect("Update 1 reverted")
        term.send("patch('fix_pri\t")           # a file name inside patch('
        time.sleep(1)
        term.send("')\n")
        term.expect("Update 2 applied")
        app.wait_for_line(lambda l: l.endswith(" -1"), start=len(app.stdout))
        # Ctrl-C interrupts the command in every process and says where.
        term.send("import time\nwhile True: time.sleep(0.05)\n\n")
        time.sleep(1.5)
        term.send("\x03")
        term.expect("interrupted the command in 1 process(es): %d" % app.pid)
        term.expect("interrupted by the operator")
        term.send("def twice(x):\n")
        term.expect("...")
        term.send("    return x * 2\n")
        term.expect("...")                     # still open: a blank line ends it
        term.send("\n")
        term.expect(">>> ")
        term.send("twice(21)\n")
        term.expect("app.py] 42")
        term.send("1/0\n")
        term.expect("ZeroDivisionError: division by zero")
        term.send("exit\n")
        assert term.proc.wait(20) == 0
    finally:
        term.close()
    history = (tmp_path / "state" / "pyliveupdate" / "history").read_text()
    assert "twice(21)" in history
    assert (tmp_path / "state" / "pyliveupdate" / "history").stat().st_mode & 0o077 == 0
    assert app.alive()


def test_plain_console_when_stdin_is_not_a_terminal(targets, token, tmp_path):
    port = free_port()
    app = targets("app.py", port, token)
    proc = subprocess.Popen([sys.executable, "-m", "pyliveupdate_controller.repl", "-l",
                             "127.0.0.1:%d" % port, "--wait", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYLU_TOKEN=token,
                                                XDG_STATE_HOME=str(tmp_path / "state")))
    out, _ = proc.communicate("import __main__\nfor i in (1, 2):\n    print(__main__.compute(i))\n\n"
                              "exit\n", timeout=60)
    assert proc.returncode == 0, out
    assert "app.py] 3" in out and "app.py] 5" in out, out
    assert app.alive()
