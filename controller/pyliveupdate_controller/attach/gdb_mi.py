"""A small client of gdb's machine interface (GDB/MI 3): commands with timeouts, stops.

gdb runs in its own session (a Ctrl-C at the terminal reaches pylu-attach, which then
leaves the target cleanly, never gdb), without init files or debuginfod (no network),
in asynchronous mode so a running target can be interrupted.
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import time

TRACE = bool(os.environ.get("PYLU_ATTACH_TRACE"))   # time every gdb command, on stderr
MIN_VERSION = (8, 0)   # since 8.0, interrupting sends SIGINT to the target, not its process group


class GdbError(RuntimeError):
    """gdb answered ^error, died, or did not answer in time."""


class Gdb:
    def __init__(self, path=None):
        self.path = path or shutil.which("gdb")
        if self.path is None:
            raise GdbError("gdb is not installed")
        self.proc = subprocess.Popen(
            [self.path, "--interpreter=mi3", "--nx", "--quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
            # a sanitizer runtime preloaded for our tests is not gdb's business
            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        self._buf = b""
        self._token = 0
        self.pending = []       # async records seen while waiting for something else
        self.console = []       # console stream text of the last command

    # --- raw I/O ----------------------------------------------------------------------

    def _readline(self, deadline):
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise GdbError("gdb exited (status %s)" % self.proc.poll())
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def command(self, text, timeout=30.0):
        """Send one MI command; return its result record as (class, results dict)."""
        self._token += 1
        token = str(self._token)
        try:
            self.proc.stdin.write(("%s%s\n" % (token, text)).encode())
            self.proc.stdin.flush()
        except OSError as e:
            raise GdbError("gdb is gone: %s" % e)
        deadline = time.monotonic() + timeout
        self.console = []
        while True:
            line = self._readline(deadline)
            if line is None:
                raise GdbError("gdb did not answer %r within %g s" % (text, timeout))
            if line.startswith(token + "^"):
                if TRACE:
                    sys.stderr.write("pylu-attach: gdb %.3f s  %s\n"
                                     % (time.monotonic() - deadline + timeout, text[:100]))
                cls, results = parse_record(line[len(token) + 1:])
                if cls == "error":
                    raise GdbError(results.get("msg", line))
                return cls, results
            self._note(line)

    def console_command(self, text, timeout=30.0):
        return self.command("-interpreter-exec console %s" % quote(text), timeout)

    def evaluate(self, expression, timeout=30.0):
        """The value of a C expression in the inferior, as gdb prints it."""
        return self.command("-data-evaluate-expression %s" % quote(expression), timeout)[1]["value"]

    def _note(self, line):
        if line.startswith("~"):
            self.console.append(parse_cstring(line[1:])[0])
        elif line[:1] in ("*", "="):
            self.pending.append(line)

    def resume(self):
        """-exec-continue, forgetting stops reported before (the attach's own stop)."""
        self.pending = [line for line in self.pending if not line.startswith("*stopped")]
        self.command("-exec-continue")

    def wait_stopped(self, timeout):
        """Wait for the next *stopped record; return its results, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                line = self.pending.pop(0)
                if line.startswith("*stopped"):
                    return parse_record(line[1:])[1]
            line = self._readline(deadline)
            if line is None:
                return None
            self._note(line)

    def version(self):
        self.console_command("show version")
        text = "".join(self.console)
        for word in text.split():
            parts = word.split(".")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return int(parts[0]), int(parts[1])
        return None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"-gdb-exit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


# --- MI syntax ----------------------------------------------------------------------------

def quote(text):
    """An MI c-string holding text."""
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r", "e": "\x1b", "a": "\a"}


def parse_cstring(text, i=0):
    """(value, index after it) of the c-string starting at text[i] == '"'."""
    assert text[i] == '"'
    out = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "01234567":
                j = i + 1
                while j < len(text) and j < i + 4 and text[j] in "01234567":
                    j += 1
                out.append(chr(int(text[i + 1:j], 8)))
                i = j
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise ValueError("unterminated c-string in %r" % text)


def _parse_value(text, i):
    c = text[i]
    if c == '"':
        return parse_cstring(text, i)
    closing = "}" if c == "{" else "]"
    if c not in "{[":
        raise ValueError("bad MI value at %d in %r" % (i, text))
    i += 1
    items, named = [], {}
    while text[i] != closing:
        if text[i] in '"{[':
            value, i = _parse_value(text, i)
            items.append(value)
        else:
            eq = text.index("=", i)
            name = text[i:eq]
            value, i = _parse_value(text, eq + 1)
            named.setdefault(name, value)
            items.append(value)
        if text[i] == ",":
            i += 1
    if c == "{":
        return named, i + 1
    return items, i + 1


def parse_record(text):
    """'class,name=value,...' -> (class, {name: value}); values are str, dict or list."""
    cls, _, rest = text.partition(",")
    results = {}
    if rest:
        results, _ = _parse_value("{" + rest + "}", 0)
    return cls, results
