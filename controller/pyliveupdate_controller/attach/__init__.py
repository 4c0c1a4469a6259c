"""Attach to a running CPython process that never imported pyliveupdate (pylu-attach).

    from pyliveupdate_controller.attach import attach
    attached = attach(1234, controller="127.0.0.1:50050")

1. `target.inspect`: is it CPython >= 3.12, may we trace it (refusals say why); nothing
   touches the process.
2. A private hand-off directory with the launch code and the parameters (controller,
   token, and this environment's pyliveupdate when its C core fits the target's Python).
3. The target runs the launch code at a safe point: `inject_remote_exec` (3.14+, PEP 768)
   or `inject_gdb` (3.12/3.13). The code starts a thread and returns; that thread loads
   pyliveupdate (the target's own if its environment has it), starts the stub, and
   answers with what it did.
"""
import os
import sys
import time

import pyliveupdate
from pyliveupdate import protocol

from . import inject_gdb, inject_remote_exec
from .handoff import Handoff
from .target import Refusal, inspect

__all__ = ["attach", "Attached", "AttachError", "Refusal", "children_of"]

ANSWER_TIMEOUT = 30.0


class AttachError(RuntimeError):
    """The attach was tried and failed; the message says why."""


class Attached:
    """What an attach did: the target, how it was reached, the target's answer."""

    def __init__(self, target, how, answer, seconds):
        self.target, self.how, self.answer, self.seconds = target, how, answer, seconds

    def lines(self):
        a = self.answer
        stub = ("stub started, dialing %s" % a.get("controller") if a.get("stub") == "started"
                else "a stub was already running here (dialing %s); left as it is" % a.get("controller"))
        if a.get("stub") == "started":
            stub += (" (connected)" if a.get("connected")
                     else " (not connected yet: is a controller listening there?)")
        source = ("from the process's own environment" if a.get("package") == "target"
                  else "from the attaching environment, loaded for the stub only")
        return ["%s: %s" % (self.target.describe(), stub),
                "  pyliveupdate %s %s: %s" % (a.get("version", "?"), source, a.get("package_path")),
                "  reached %s in %.2f s" % (self.how, self.seconds)]


def attach(pid, controller=None, token=None, tls=None, timeout=10.0, connect_wait=3.0,
           say=lambda text: None):
    """Start a stub in process pid. Raises Refusal (nothing was touched) or AttachError."""
    started = time.monotonic()
    target = inspect(pid)
    say("%s may be attached to" % target.describe())
    address = controller or os.environ.get("PYLU_CONTROLLER") or "127.0.0.1:50050"
    protocol.parse_address(address)
    try:
        secret = protocol.load_token(token).decode("utf-8")
    except (protocol.TokenError, UnicodeDecodeError) as e:
        raise Refusal("no usable token: %s" % e)
    params = {"controller": address, "token": secret, "tls": tls,
              "connect_wait": float(connect_wait), "fallback": _fallback_package(target)}
    handoff = Handoff(uid=target.uids[3], gid=target.gids[3])
    keep = False
    try:
        try:
            if target.version[:2] >= (3, 14):
                how = inject_remote_exec.inject(target, handoff, params, timeout, say)
            else:
                how = inject_gdb.inject(target, handoff, params, timeout, say)
        except inject_remote_exec.RemoteExecError as e:
            keep = e.scheduled   # it runs later, finds no parameters and removes the directory
            raise AttachError(str(e))
        except inject_gdb.InjectError as e:
            raise AttachError(str(e))
        say("waiting for the process's answer")
        answer = handoff.wait_result(connect_wait + ANSWER_TIMEOUT,
                                     alive=lambda: os.path.exists("/proc/%d" % pid))
        if answer is None and not os.path.exists("/proc/%d" % pid):
            raise AttachError("process %d ended while starting the stub (see its stderr)" % pid)
        if answer is None:
            raise AttachError("the code ran in process %d but it did not answer within %g s"
                              % (pid, connect_wait + ANSWER_TIMEOUT))
        if not answer.get("ok"):
            raise AttachError("process %d: %s" % (pid, answer.get("error") or "failed"))
        return Attached(target, how, answer, time.monotonic() - started)
    finally:
        if not keep:
            handoff.remove()


def _fallback_package(target):
    """This environment's pyliveupdate, offered when its C core fits the target's Python."""
    if tuple(target.version[:2]) != sys.version_info[:2] or target.free_threaded:
        return None
    return os.path.dirname(os.path.abspath(pyliveupdate.__file__))


def children_of(pid):
    """Pids whose parent is pid (gunicorn workers, multiprocessing children)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)
