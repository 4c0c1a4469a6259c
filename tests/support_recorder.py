"""Helpers for the recorder and reader tests: run a child Python, read a log back."""
import os
import subprocess
import sys
import textwrap
from collections import Counter

from pyliveupdate import _reader
from pyliveupdate._reader import (EV_CALL, EV_LINE, EV_LINE_MARK, EV_RESUME,  # noqa: F401
                                  EV_RETURN, EV_UNWIND, EV_YIELD)


def private_dir(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return str(path)


def run_child(code, *, env=None, timeout=60, **kwargs):
    """Run `code` (dedented) in a fresh interpreter; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, **kwargs)


class Log:
    """Everything in one log, read through the tuple iterator."""

    def __init__(self, path):
        self.reader = _reader.LogReader(path)
        self.items = list(self.reader)
        self.events = [i for i in self.items if i[0] == "event"]
        self.metas = [i for i in self.items if i[0] != "event"]
        self.error = self.reader.error
        self.complete = self.reader.complete
        self.header = self.reader.header

    def events_per_thread(self):
        return Counter(e[2] for e in self.events)

    def drops_per_thread(self):
        drops = {}
        for m in self.metas:
            if m[0] == "drop":
                drops[m[1]] = m[2]   # cumulative: the last one counts
        return drops

    def threads(self):
        return {m[1]: (m[2], m[3]) for m in self.metas if m[0] == "thread"}

    def codes(self):
        return {m[1]: m[2:] for m in self.metas if m[0] == "code"}


def logs_in(directory):
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.endswith(".pylog"))
