"""Run Python source in a CPython 3.12/3.13 process through gdb, only at a safe point.

Never at an arbitrary instruction. With every thread stopped by the attach, we look for
a thread that is, right now, a place where CPython itself could call into Python:

1. *Parked*: nobody holds the GIL, and the thread sits in a blocking system call
   (sleep, recv, accept, poll, ...; read from /proc/PID/task/TID/syscall) called from
   CPython or an extension, not from inside the C library (so it holds no malloc or
   stdio lock). It released the GIL around that call; taking it back with
   PyGILState_Ensure is what any C callback does there (a process blocked in
   time.sleep or socket.recv forever is reached at once).
2. *At the eval breaker*: otherwise a thread runs Python (or C holding the GIL). We ask
   every thread to stop at its next eval-breaker check, by setting the flag CPython
   sets for a pending call (a memory write, no function call; the flag is harmless on
   its own), and break at `_Py_HandlePending`: where CPython runs signal handlers and
   pending calls, with the GIL held and the frame consistent.

At that point the call runs with the other threads running too (scheduler-locking off),
so locks held elsewhere are released as usual and a thread the code starts can run.
The code itself only starts a thread (see _pyliveupdate_launch.attach). While no safe
point comes (a thread holds the GIL inside a long C call), we re-check every few
hundred milliseconds until the timeout, then detach having changed nothing.
"""
import os
import platform
import re
import signal
import time

from .gdb_mi import MIN_VERSION, Gdb, GdbError, quote

SAFE_POINT = "_Py_HandlePending"
CALL_TIMEOUT = 120.0

# Per version: is the GIL free, and how to raise the eval breaker without a call.
#  3.12: one word per interpreter (internal/pycore_ceval_state.h `eval_breaker`);
#        _Py_HandlePending recomputes it, so a spurious 1 costs one check.
#  3.13: one word per thread (cpython/pystate.h `PyThreadState.eval_breaker`); bit 2 is
#        _PY_CALLS_TO_DO_BIT (internal/pycore_ceval.h); with no call queued, handling it
#        does nothing.
_INTERP = "_PyRuntime.interpreters.main"
# "types" are evaluated before attaching: gdb reads the debug information they need then,
# not while the process is stopped.
VERSIONS = {
    (3, 12): {"gil_locked": _INTERP + "->ceval.gil->locked._value",
              "arm_interp": _INTERP + "->ceval.eval_breaker._value = 1",
              "types": ["sizeof(%s->ceval.eval_breaker._value)" % _INTERP,
                        "sizeof(%s->ceval.gil->locked._value)" % _INTERP]},
    (3, 13): {"gil_locked": _INTERP + "->ceval.gil->locked",
              "arm_thread": "((PyThreadState *) %s)->eval_breaker |= 4",
              "types": ["sizeof(((PyThreadState *) 0)->eval_breaker)",
                        "sizeof(((PyThreadState *) 0)->next)",
                        "sizeof(%s->threads.head)" % _INTERP,
                        "sizeof(%s->ceval.gil->locked)" % _INTERP]},
}

# Blocking system calls a thread may be parked in (CPython releases the GIL around them).
_BLOCKING = {
    "x86_64": {0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
               20: "writev", 23: "select", 34: "pause", 35: "nanosleep", 42: "connect",
               43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
               61: "wait4", 128: "rt_sigtimedwait", 230: "clock_nanosleep", 232: "epoll_wait",
               247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait", 288: "accept4",
               299: "recvmmsg", 307: "sendmmsg", 441: "epoll_pwait2"},
    "aarch64": {22: "epoll_pwait", 63: "read", 64: "write", 65: "readv", 66: "writev",
                67: "pread64", 68: "pwrite64", 72: "pselect6", 73: "ppoll", 95: "waitid",
                101: "nanosleep", 115: "clock_nanosleep", 137: "rt_sigtimedwait", 202: "accept",
                203: "connect", 206: "sendto", 207: "recvfrom", 211: "sendmsg", 212: "recvmsg",
                242: "accept4", 243: "recvmmsg", 260: "wait4", 269: "sendmmsg", 441: "epoll_pwait2"},
}
_SYSTEM_LIBS = re.compile(r"/(libc|libpthread|ld-linux[^/]*|ld)[-.][^/]*$")


class InjectError(RuntimeError):
    """Injection failed; the message says why. The target was left as it was."""


class NoDebugger(InjectError):
    pass


def apt_hint(version):
    return ("Debian/Ubuntu: apt-get install python%d.%d-dbg (or set DEBUGINFOD_URLS); "
            "Fedora/RHEL: dnf debuginfo-install python3; or run the program on Python 3.14+, "
            "which pylu-attach reaches without gdb" % version[:2])


def inject(target, handoff, params, timeout, say=lambda text: None):
    """Make target run handoff's code at a safe point; return how ("parked"/"eval breaker")."""
    exprs = VERSIONS.get(tuple(target.version[:2]))
    if exprs is None:
        raise InjectError("no gdb recipe for Python %s" % target.version_text)
    try:
        gdb = Gdb()
    except GdbError:
        raise NoDebugger("gdb is needed to attach to Python %d.%d and is not installed: "
                         "apt-get install gdb (Debian/Ubuntu), dnf install gdb (Fedora)"
                         % target.version[:2])
    try:
        version = gdb.version()
        if version is not None and version < MIN_VERSION:
            raise NoDebugger("gdb %d.%d is too old (need %d.%d or newer)" % (version + MIN_VERSION))
        _configure(gdb)
        _check_symbols(gdb, target, exprs)
        say("gdb %s sees the symbols of %s" % (".".join(map(str, version or ())), target.python_object))
        return _Session(gdb, target, exprs, handoff, params, say).run(timeout)
    finally:
        gdb.close()


def _configure(gdb):
    for setting in ("mi-async on", "pagination off", "confirm off", "auto-solib-add off",
                    "width 0", "print thread-events off"):
        gdb.command("-gdb-set " + setting)
    try:
        gdb.console_command("set debuginfod enabled %s"
                            % ("on" if os.environ.get("DEBUGINFOD_URLS") else "off"))
    except GdbError:
        pass  # gdb without debuginfod support
    # Signals reach the program as usual while we wait; SIGINT keeps stopping (that is
    # how we interrupt) and is never passed on.
    gdb.console_command("handle all nostop noprint pass")


def _check_symbols(gdb, target, exprs):
    """Before attaching (the target keeps running): load CPython's symbols where the
    process has them mapped, and check gdb sees what we need. Reading them takes most
    of a second; done here, the process is not stopped meanwhile."""
    if _is_libpython(target):
        gdb.console_command("add-symbol-file %s -o %#x" % (target.python_object, target.load_base),
                            timeout=120)
    else:
        gdb.command("-file-exec-and-symbols %s" % quote(target.python_object), timeout=120)
    missing = []
    for what in ["&" + SAFE_POINT, "&PyRun_SimpleStringFlags", "&PyGILState_Ensure",
                 "&PyGILState_Release"] + exprs["types"]:
        try:
            gdb.evaluate(what)
        except GdbError:
            missing.append(what)
    # Other libraries' separate debug files (libc's: hundreds of ms) would be read while
    # the process is stopped; CPython's are loaded already.
    gdb.console_command("set debug-file-directory")
    if missing:
        raise InjectError("%s has no debug symbols that gdb can read (missing: %s), and "
                          "Python %d.%d can only be reached through them. Install them: %s"
                          % (target.python_object, ", ".join(missing), target.version[0],
                             target.version[1], apt_hint(target.version)))


class _Session:
    def __init__(self, gdb, target, exprs, handoff, params, say):
        self.gdb, self.target, self.exprs = gdb, target, exprs
        self.handoff, self.params, self.say = handoff, params, say
        self.breakpoint = None
        self.running = False      # the target runs (between -exec-continue and a stop)
        self.main_only = False
        self.system_ranges = _system_ranges(target.pid)
        self.blocking = _BLOCKING.get(platform.machine(), {})

    def run(self, timeout):
        gdb, pid = self.gdb, self.target.pid
        try:
            gdb.command("-target-attach %d" % pid, timeout=60)
        except GdbError as e:
            raise InjectError("gdb could not attach to process %d: %s" % (pid, e))
        self.say("attached (the process is stopped)")
        try:
            deadline = time.monotonic() + timeout
            while True:
                thread, how = self._parked_thread(), "parked in a blocking call"
                if thread is None:
                    thread, how = self._wait_for_eval_breaker(deadline), "at the eval breaker"
                if thread is None:
                    raise InjectError("no safe point within %g s: %s" % (timeout, self._blockers()))
                self.handoff.offer(self.params)
                self._call(thread)
                answer = self.handoff.result()
                if answer and answer.get("retry") == "main thread":
                    self.main_only = True
                    continue
                self.say("ran the launch code in thread %s (%s); detaching" % (thread, how))
                return how
        finally:
            self._detach()

    # --- finding a safe point ---------------------------------------------------------

    def _gil_free(self):
        try:
            return self.gdb.evaluate(self.exprs["gil_locked"]).strip() == "0"
        except GdbError:
            return False

    def _threads(self):
        threads = self.gdb.command("-thread-info")[1].get("threads", [])
        out = []
        for t in threads:
            m = re.search(r"LWP (\d+)", t.get("target-id", ""))
            if m:
                out.append((t["id"], int(m.group(1))))
        out.sort(key=lambda t: t[1] != self.target.pid)   # the main thread first
        return out

    def _parked_thread(self):
        if not self._gil_free():
            return None
        for gid, lwp in self._threads():
            if self.main_only and lwp != self.target.pid:
                continue
            if self._syscall(lwp) not in self.blocking:
                continue
            caller = self._caller_address(gid)
            if caller is not None and not any(lo <= caller < hi for lo, hi in self.system_ranges):
                return gid
        return None

    def _syscall(self, lwp):
        try:
            with open("/proc/%d/task/%d/syscall" % (self.target.pid, lwp)) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _caller_address(self, gid):
        try:
            frames = self.gdb.command("-stack-list-frames --thread %s 1 1" % gid)[1]["stack"]
            return int(frames[0]["addr"], 16)
        except (GdbError, KeyError, IndexError, ValueError):
            return None

    def _arm_eval_breaker(self):
        if "arm_interp" in self.exprs:
            self.gdb.evaluate(self.exprs["arm_interp"])
            return
        tstate = self.gdb.evaluate("(long) %s->threads.head" % _INTERP)
        for _ in range(100000):
            if int(tstate) == 0:
                break
            self.gdb.evaluate(self.exprs["arm_thread"] % tstate)
            tstate = self.gdb.evaluate("(long) ((PyThreadState *) %s)->next" % tstate)

    def _wait_for_eval_breaker(self, deadline):
        gdb = self.gdb
        if self.breakpoint is None:
            where = ("-p %s " % self._threads()[0][0]) if self.main_only else ""
            self.breakpoint = gdb.command("-break-insert %s%s" % (where, SAFE_POINT))[1]["bkpt"]["number"]
        wait = 0.1
        while time.monotonic() < deadline:
            self._arm_eval_breaker()
            gdb.resume()
            self.running = True
            stop = gdb.wait_stopped(min(wait, max(0.0, deadline - time.monotonic())))
            if stop is None:
                stop = self._interrupt()
            self.running = False
            reason = stop.get("reason", "")
            if reason.startswith("exited"):
                raise InjectError("process %d exited" % self.target.pid)
            if reason == "breakpoint-hit":
                self._remove_breakpoint()
                return stop.get("thread-id")
            thread = self._parked_thread()
            if thread is not None:
                self._remove_breakpoint()
                return thread
            wait = min(wait * 2, 1.0)
        return None

    def _interrupt(self):
        self.gdb.command("-exec-interrupt")
        stop = self.gdb.wait_stopped(30)
        if stop is None:
            raise InjectError("process %d did not stop when asked" % self.target.pid)
        return stop

    def _remove_breakpoint(self):
        if self.breakpoint is not None:
            number, self.breakpoint = self.breakpoint, None
            self.gdb.command("-break-delete %s" % number)

    def _blockers(self):
        """What each thread is doing, for the timeout message."""
        parts = []
        for gid, lwp in self._threads():
            nr = self._syscall(lwp)
            try:
                frame = self.gdb.command("-stack-list-frames --thread %s 0 0" % gid)[1]["stack"][0]
                where = frame.get("func") or frame.get("addr")
            except (GdbError, KeyError, IndexError):
                where = "?"
            blocked = self.blocking.get(nr) if nr is not None and nr >= 0 else None
            parts.append("thread %d in %s%s" % (lwp, where, " (%s)" % blocked if blocked else ""))
        gil = ("the GIL is free" if self._gil_free()
               else "a thread holds the GIL without reaching the eval loop")
        return "%s; %s. Nothing was changed." % (gil, ", ".join(parts))

    # --- the call ---------------------------------------------------------------------

    def _call(self, thread):
        """Ensure the GIL, run the code, release: in thread, which is at a safe point.

        Ctrl-C is held back meanwhile: leaving half-way would leave the thread inside
        our call with no way back."""
        gdb = self.gdb
        gdb.command("-thread-select %s" % thread)
        gdb.console_command("set scheduler-locking off")
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            gdb.evaluate("$pylu_gil = (int) PyGILState_Ensure()", timeout=CALL_TIMEOUT)
            try:
                gdb.evaluate("(int) PyRun_SimpleStringFlags(%s, 0)"
                             % c_string(self.handoff.inline_code()), timeout=CALL_TIMEOUT)
            finally:
                gdb.evaluate("(void) PyGILState_Release($pylu_gil)", timeout=CALL_TIMEOUT)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _detach(self):
        try:
            if self.running:     # left while waiting (Ctrl-C, an error): stop it first
                self.running = False
                self._interrupt()
        except GdbError:
            pass
        try:
            self._remove_breakpoint()
        except GdbError:
            pass
        try:
            self.gdb.command("-target-detach", timeout=30)
        except GdbError:
            pass


def _is_libpython(target):
    return "libpython" in os.path.basename(target.python_object)


def c_string(text):
    """A C string literal holding text (ASCII)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append("\\%03o" % (ord(ch) & 0xFF))
    out.append('"')
    return "".join(out)


def _system_ranges(pid):
    """Address ranges of the C library and the dynamic loader in pid."""
    ranges = []
    try:
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and _SYSTEM_LIBS.search(parts[5].strip()):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    ranges.append((lo, hi))
    except OSError:
        pass
    return ranges
