"""Run Python source in a CPython 3.14+ process with PEP 768's sys.remote_exec.

``sys.remote_exec(pid, script)`` (documented in the 3.14 `sys` module) returns at once;
the target's main thread runs the script at its next eval-breaker check, as it runs
signal handlers. It must be called by an interpreter of the target's major.minor
version, so we run the target's own executable for it. Nothing tells when the script
ran; our script takes (deletes) the parameter file when it runs, which we watch. If that
does not happen in time we withdraw the parameters: when the script runs later, it
finds none and does nothing.

Targets that opted out (PYTHON_DISABLE_REMOTE_DEBUG, ``-X disable-remote-debug``, or a
build --without-remote-debug) are refused with that reason.
"""
import os
import shutil
import subprocess
import time

CALLER = "import sys; sys.remote_exec(int(sys.argv[1]), sys.argv[2])"


class RemoteExecError(RuntimeError):
    def __init__(self, message, scheduled=False):
        super().__init__(message)
        self.scheduled = scheduled   # the script may still run later (and then does nothing)


def opted_out(target):
    """Why target disabled remote debugging, or None."""
    if target.environ().get("PYTHON_DISABLE_REMOTE_DEBUG"):
        return "its environment sets PYTHON_DISABLE_REMOTE_DEBUG"
    args = target.cmdline()
    for i, arg in enumerate(args):
        option = arg[2:] if arg.startswith("-X") and len(arg) > 2 else (
            args[i + 1] if arg == "-X" and i + 1 < len(args) else "")
        if option.replace("_", "-") == "disable-remote-debug":
            return "it was started with -X %s" % option
    return None


def caller_for(target):
    """An interpreter of the target's major.minor to call sys.remote_exec from."""
    exe = target.exe or ""
    if os.path.basename(exe).startswith("python") and os.access(exe, os.X_OK):
        return exe
    found = shutil.which("python%d.%d" % tuple(target.version[:2]))
    if found is None:
        raise RemoteExecError("cannot find a python%d.%d to call sys.remote_exec with (the "
                              "process's executable %s is not a Python interpreter)"
                              % (target.version[0], target.version[1], exe))
    return found


def inject(target, handoff, params, timeout, say=lambda text: None):
    why = opted_out(target)
    if why:
        raise RemoteExecError("process %d refuses remote execution: %s" % (target.pid, why))
    script = handoff.write_entry_script()
    handoff.offer(params)
    caller = caller_for(target)
    done = subprocess.run([caller, "-I", "-c", CALLER, str(target.pid), script],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        handoff.withdraw()
        last = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
        raise RemoteExecError("sys.remote_exec(%d) failed: %s" % (target.pid, last))
    say("sys.remote_exec scheduled the script (%s)" % caller)
    deadline = time.monotonic() + timeout
    while not handoff.taken():
        if time.monotonic() >= deadline and handoff.withdraw():
            raise RemoteExecError(
                "the main thread of process %d did not reach a safe point within %g s (it is "
                "blocked outside Python code); the request was withdrawn: when the script runs "
                "later it does nothing" % (target.pid, timeout), scheduled=True)
        if not os.path.exists("/proc/%d" % target.pid):
            raise RemoteExecError("process %d exited" % target.pid)
        time.sleep(0.01)
    return "sys.remote_exec"
