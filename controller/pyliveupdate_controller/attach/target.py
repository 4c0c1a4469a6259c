"""What the process behind a pid is, and whether we may attach to it, before touching it.

Everything here reads /proc and files; nothing stops, signals or writes to the process.
A `Refusal` says why not and what to change. The checks, in order: the process exists
and is not us; it runs (not stopped, not traced, not a zombie); we may trace it (same
user or CAP_SYS_PTRACE, and kernel.yama.ptrace_scope); it shares our mount namespace;
it is CPython (libpython mapped, or an executable with the CPython runtime); its exact
version, read from its memory (``Py_Version``), is 3.12 or newer with the GIL.
"""
import os
import pwd
import re

from .elf import ElfError, ElfFile

CAP_SYS_PTRACE = 19
YAMA_PATH = "/proc/sys/kernel/yama/ptrace_scope"
_LIBPYTHON = re.compile(r"/libpython(\d+)\.(\d+)(t?)d?\.so")
_LEVELS = {0xA: "a", 0xB: "b", 0xC: "rc", 0xF: ""}


class Refusal(Exception):
    """pylu-attach will not touch this process; the message says why and what to do."""


class Target:
    """A process inspected by `inspect`: ids, executable, CPython object and version."""

    def __init__(self, pid):
        self.pid = pid
        self.status = _read_status(pid)
        self.uids = [int(x) for x in self.status["Uid"].split()]    # real, effective, saved, fs
        self.gids = [int(x) for x in self.status["Gid"].split()]
        self.exe = _readlink("/proc/%d/exe" % pid)
        self.python_object = None   # the file holding the CPython runtime (libpython or exe)
        self.load_base = 0
        self.version = None         # (major, minor, micro, "rc1"...)
        self.free_threaded = False

    @property
    def user(self):
        return _user_name(self.uids[1])

    @property
    def version_text(self):
        major, minor, micro, level = self.version
        return "%d.%d.%d%s" % (major, minor, micro, level)

    def environ(self):
        """The process's environment at exec (empty if unreadable)."""
        try:
            with open("/proc/%d/environ" % self.pid, "rb") as f:
                raw = f.read()
        except OSError:
            return {}
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}

    def cmdline(self):
        try:
            with open("/proc/%d/cmdline" % self.pid, "rb") as f:
                return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        except OSError:
            return []

    def describe(self):
        return "pid %d (%s, Python %s, user %s)" % (self.pid, os.path.basename(self.exe or "?"),
                                                    self.version_text, self.user)


def inspect(pid, yama_path=YAMA_PATH):
    """Return a Target for pid, or raise Refusal with the reason."""
    if not isinstance(pid, int) or pid <= 0:
        raise Refusal("%r is not a process id" % (pid,))
    if pid == os.getpid():
        raise Refusal("pylu-attach cannot attach to itself")
    try:
        target = Target(pid)
    except FileNotFoundError:
        raise Refusal("there is no process %d" % pid)
    except (OSError, KeyError, ValueError) as e:
        raise Refusal("cannot read /proc/%d/status: %s" % (pid, e))
    _check_state(target)
    check_permission(target, _our_ids(), _has_ptrace_capability(), read_yama_scope(yama_path))
    _check_namespace(target)
    _find_python(target)
    _check_version(target)
    return target


# --- state and permission ------------------------------------------------------------------

def _check_state(target):
    state = target.status.get("State", "?").split()[0]
    name = target.status.get("Name", "?")
    if state == "Z" or state == "X":
        raise Refusal("process %d (%s) has exited" % (target.pid, name))
    tracer = int(target.status.get("TracerPid", "0"))
    if tracer:
        raise Refusal("process %d (%s) is already being traced by pid %d (%s): a debugger or "
                      "profiler is attached; detach it first"
                      % (target.pid, name, tracer, _process_name(tracer)))
    if state == "T":
        raise Refusal("process %d (%s) is stopped (SIGSTOP/SIGTSTP); it could not reach a safe "
                      "point. Continue it first: kill -CONT %d" % (target.pid, name, target.pid))


def _our_ids():
    return os.getuid(), os.getgid()


def _has_ptrace_capability():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    except (OSError, ValueError):
        pass
    return False


def read_yama_scope(path=YAMA_PATH):
    """kernel.yama.ptrace_scope, or None when Yama is not in the kernel."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def check_permission(target, our_ids, has_cap, yama_scope):
    """Raise Refusal unless the kernel will let us (gdb, or sys.remote_exec) trace target.

    The kernel's rule (ptrace(2), "Ptrace access mode checking"): our real uid and gid
    equal every uid and gid of the target, or we hold CAP_SYS_PTRACE; Yama then
    restricts further by ptrace_scope."""
    uid, gid = our_ids
    pid, name = target.pid, target.status.get("Name", "?")
    same_user = all(u == uid for u in target.uids[:3]) and all(g == gid for g in target.gids[:3])
    if yama_scope == 3:
        raise Refusal("kernel.yama.ptrace_scope is 3: attaching to processes is disabled on "
                      "this machine until reboot (nobody, root included, may ptrace)")
    if not same_user and not has_cap:
        if uid == 0:
            raise Refusal("process %d (%s) belongs to user %s and you are root without "
                          "CAP_SYS_PTRACE (a container?): grant it (docker run --cap-add=SYS_PTRACE, "
                          "Kubernetes securityContext.capabilities.add: [SYS_PTRACE])"
                          % (pid, name, target.user))
        raise Refusal("process %d (%s) belongs to user %s, not to you (%s): run pylu-attach as "
                      "that user, or as root" % (pid, name, target.user, _user_name(uid)))
    if yama_scope == 2 and not has_cap:
        raise Refusal("kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may "
                      "attach; run pylu-attach as root (or: sysctl kernel.yama.ptrace_scope=1)")
    if yama_scope == 1 and not has_cap:
        raise Refusal("kernel.yama.ptrace_scope is 1: a process may only be attached to by its "
                      "ancestors; run pylu-attach as root (CAP_SYS_PTRACE), or allow it with: "
                      "sudo sysctl kernel.yama.ptrace_scope=0")


def _check_namespace(target):
    for ns in ("mnt", "pid"):
        ours = _readlink("/proc/self/ns/" + ns)
        theirs = _readlink("/proc/%d/ns/%s" % (target.pid, ns))
        if ours and theirs and ours != theirs:
            raise Refusal("process %d runs in another %s namespace (a container?): run "
                          "pylu-attach inside it (docker exec / kubectl exec), where the "
                          "process, its files and the controller's address look the same"
                          % (target.pid, "mount" if ns == "mnt" else "pid"))


# --- CPython and its version ---------------------------------------------------------------

def _find_python(target):
    mapped = _mapped_files(target.pid)
    for path, base in mapped.items():
        m = _LIBPYTHON.search(path)
        if m:
            target.python_object, target.load_base = path, base
            target.free_threaded = m.group(3) == "t"
            if (int(m.group(1)), int(m.group(2))) < (3, 11):
                raise Refusal("process %d runs Python %s.%s; pyliveupdate needs CPython 3.12 or "
                              "newer" % (target.pid, m.group(1), m.group(2)))
            return
    exe = target.exe
    if exe and exe in mapped and _has_symbol(exe, "Py_Version"):
        target.python_object, target.load_base = exe, mapped[exe]
        target.free_threaded = os.path.basename(exe).endswith("t")
        return
    if exe and (_has_symbol(exe, "Py_Initialize") or _has_symbol(exe, "Py_Main")):
        raise Refusal("process %d runs a Python older than 3.11 (%s); pyliveupdate needs "
                      "CPython 3.12 or newer" % (target.pid, exe))
    raise Refusal("process %d (%s) is not a CPython process: no libpython is loaded and its "
                  "executable has no CPython runtime" % (target.pid, exe or "?"))


def _check_version(target):
    with ElfFile(target.python_object) as elf:
        offset = elf.symbol("Py_Version")
        first = elf.first_load_vaddr()
        fixed = elf.type == 2   # ET_EXEC: loaded at its link address
    if offset is None:
        raise Refusal("process %d: %s has no Py_Version (Python older than 3.11?); "
                      "pyliveupdate needs CPython 3.12 or newer" % (target.pid, target.python_object))
    address = offset if fixed else target.load_base - first + offset
    try:
        with open("/proc/%d/mem" % target.pid, "rb", buffering=0) as mem:
            mem.seek(address)
            raw = mem.read(4)
    except PermissionError as e:
        raise Refusal("the kernel refuses to let us read process %d's memory (%s), so it would "
                      "refuse ptrace too: the process may be non-dumpable (setuid, "
                      "prctl(PR_SET_DUMPABLE, 0)) or a security module (seccomp, AppArmor, "
                      "SELinux) forbids ptrace" % (target.pid, e.strerror))
    except OSError as e:
        raise Refusal("cannot read process %d's memory: %s" % (target.pid, e.strerror or e))
    if len(raw) != 4:
        raise Refusal("cannot read Py_Version in process %d" % target.pid)
    target.version = decode_version(int.from_bytes(raw, "little"))
    if target.version[:2] < (3, 12):
        raise Refusal("process %d runs Python %s; pyliveupdate needs CPython 3.12 or newer"
                      % (target.pid, target.version_text))
    if target.free_threaded:
        raise Refusal("process %d runs a free-threaded CPython (%s), which pylu-attach does "
                      "not support yet" % (target.pid, target.python_object))


def decode_version(hexversion):
    """PY_VERSION_HEX -> (major, minor, micro, "a1"/"b2"/"rc1"/"")."""
    level = _LEVELS.get(hexversion >> 4 & 0xF, "?")
    serial = hexversion & 0xF
    return (hexversion >> 24 & 0xFF, hexversion >> 16 & 0xFF, hexversion >> 8 & 0xFF,
            level + (str(serial) if level else ""))


# --- /proc helpers --------------------------------------------------------------------------

def _read_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _mapped_files(pid):
    """{path: load address} of every file mapped from offset 0."""
    out = {}
    try:
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6 or not parts[5].startswith("/"):
                    continue
                path = parts[5].rstrip("\n")
                if path.endswith(" (deleted)"):
                    path = path[:-len(" (deleted)")]
                start = int(parts[0].split("-")[0], 16)
                if int(parts[2], 16) == 0 and (path not in out or start < out[path]):
                    out[path] = start
    except OSError as e:
        raise Refusal("cannot read /proc/%d/maps: %s (not allowed to trace it?)" % (pid, e.strerror))
    return out


def _has_symbol(path, name):
    try:
        with ElfFile(path) as elf:
            return elf.symbol(name) is not None
    except (OSError, ElfError):
        return False


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "uid %d" % uid


def _process_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"
