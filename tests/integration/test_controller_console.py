"""The interactive console on a real terminal (pty): multi-line input, completion from
the target, errors, history, exit."""
import os
import pty
import select
import subprocess
import sys
import time

from support_controller import LocalController, free_port, targets, token  # noqa: F401


class Terminal:
    def __init__(self, argv, env):
        self.fd, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     env=dict(os.environ, **env), start_new_session=True)
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


def test_interactive_session(targets, token, tmp_path):
    port = free_port()
    app = targets("app.py", port, token)
    env = {"PYLU_TOKEN": token, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "dumb", "NO_COLOR": "1"}
    term = Terminal([sys.executable, "-m", "pyliveupdate_controller.repl", "-l",
                     "127.0.0.1:%d" % port], env)
    try:
        term.expect("process %d" % app.pid)
        term.send("import __main__\n")
        term.expect(">>> ")
        term.send("__main__.comp\t")           # completed from the target's names
        term.expect("__main__.compute")
        term.send("(3)\n")
        term.expect("app.py] 7")
        term.send("def twice(x):\n")
        term.expect("... ")
        term.send("    return x * 2\n")
        term.expect("... ")                     # still open: a blank line ends it
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
