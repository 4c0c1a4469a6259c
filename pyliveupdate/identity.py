"""Which running instance of which program this process belongs to.

The controller aims an update at an *instance*: the processes of one run of a program
on one host, the workers its master forks or re-spawns later included, and nothing else.
An instance is named after its root process: "<host>/<root pid>/<root start time>"
(the start time, in clock ticks since boot from /proc, keeps a reused pid from being
taken for the old process). The root is, in this order:

1. $PYLU_INSTANCE when set: the operator groups processes by hand (inherited by exec);
2. the parent's instance, for a process forked from one that ran a stub (fork hook):
   gunicorn --preload, Celery prefork, our own forks;
3. the parent, when it is this process's master: a multiprocessing parent (uvicorn
   --workers spawns them), a parent this process was forked from without exec (same
   stack address: ASLR picks a new one at every exec; gunicorn without --preload, even
   when setproctitle renames master and workers), or a parent with the same command
   line (Django's autoreloader re-runs it);
4. else this process itself.

The *program* key (host and the root's command line) is what a restart keeps: an update
given sticky=True follows it to the next instance.
"""
import hashlib
import os
import socket
import sys


def program_from_path(path):
    """A program's name from the path it was started as: its file name, or for a package
    run with `python -m` (or a worker multiprocessing spawned from one) the package."""
    parts = path.rstrip("/").rsplit("/", 2)
    if parts[-1] == "__main__.py" and len(parts) > 1 and parts[-2]:
        return parts[-2]
    return parts[-1]


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _cmdline(pid):
    raw = _read("/proc/%d/cmdline" % pid)
    if raw is None:
        return list(sys.orig_argv) if pid == os.getpid() else None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _stat_field(pid, number):
    """Field `number` (1-based, as in proc(5)) of /proc/PID/stat, or 0."""
    raw = _read("/proc/%d/stat" % pid)
    if raw is None:
        return 0
    fields = raw[raw.rfind(b")") + 2:].split()   # fields from number 3 on
    try:
        return int(fields[number - 3])
    except (IndexError, ValueError):
        return 0


def _start_ticks(pid):
    return _stat_field(pid, 22)


def _forked_without_exec(pid):
    """True when this process is an un-exec'd fork of pid: it kept pid's stack address."""
    if (_read("/proc/sys/kernel/randomize_va_space") or b"0").strip() == b"0":
        return False    # without ASLR every exec of one binary gets the same address
    mine = _stat_field(os.getpid(), 28)
    return mine != 0 and mine == _stat_field(pid, 28)


def _master_of_this_process():
    """The parent's pid when it is this worker's master, else None."""
    ppid = os.getppid()
    if ppid <= 1:
        return None
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        try:
            parent = mp.parent_process()
        except Exception:  # noqa: BLE001 - an odd multiprocessing state is not ours to fix
            parent = None
        if parent is not None and parent.pid == ppid:
            return ppid
    if _forked_without_exec(ppid):
        return ppid
    mine = _cmdline(os.getpid())
    if mine and mine == _cmdline(ppid):
        return ppid
    return None


class Identity:
    __slots__ = ("host", "instance", "root", "program_key", "program_argv")

    def __init__(self, host, instance, root, program_argv):
        self.host = host
        self.instance = instance
        self.root = root
        self.program_argv = program_argv
        digest = hashlib.sha256("\0".join([host] + list(program_argv)).encode("utf-8", "replace"))
        self.program_key = digest.hexdigest()[:16]

    def fields(self):
        """The hello's identity fields."""
        return {"instance": self.instance, "root": self.root, "program_key": self.program_key}


def current(inherited=None):
    """This process's Identity; `inherited` is the parent's, for a forked child."""
    host = socket.gethostname()
    explicit = os.environ.get("PYLU_INSTANCE")
    if explicit:
        return Identity(host, "%s/%s" % (host, explicit), os.getpid(), ["PYLU_INSTANCE=" + explicit])
    if inherited is not None:
        return inherited
    root = _master_of_this_process() or os.getpid()
    argv = _cmdline(root) or list(sys.orig_argv)
    return Identity(host, "%s/%d/%d" % (host, root, _start_ticks(root)), root, argv)
