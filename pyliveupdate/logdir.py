"""Where logs live and how they are named: one policy for the recorder and the readers.

Directory: the argument, else ``$PYLU_LOG_DIR``, else ``/tmp/pylu-<uid>``. The default is
per user and its name is not a Python identifier: a directory named like a package (the
old ``/tmp/pyliveupdate``) became a namespace portion that shadowed the package for any
script living in its parent. A directory must be private (0700, ours, not a symlink);
when the wanted one is not, the log goes to the first safe fallback,
``$XDG_RUNTIME_DIR/pylu-logs`` or ``~/.cache/pylu-logs``.

Files: ``pylu-<pid>-<start_ns>.pylog`` for a process's first segment, then
``pylu-<pid>-<start_ns>.<n>.pylog`` (n = 1, 2, ...) when the recorder rotates. A process's
segments, in order, are one log; the oldest may have been deleted by the disk budget.

Stdlib only: the target side imports this.
"""
import os
import re
import stat
from dataclasses import dataclass, field

ENV_VAR = "PYLU_LOG_DIR"
FALLBACK_NAME = "pylu-logs"
LOG_SUFFIX = ".pylog"
# Where the original PyLiveUpdate and our earlier releases wrote: named in hints only.
LEGACY_PATHS = ("/tmp/pyliveupdate.log", "/tmp/pyliveupdate")

_SEGMENT = re.compile(r"pylu-(\d+)-(\d+)(?:\.(\d+))?\.pylog\Z")


def default_dir():
    """``/tmp/pylu-<uid>``: the same for every process of a user, whatever its environment."""
    return "/tmp/pylu-%d" % os.geteuid()


def wanted_dir(directory=None):
    """The directory asked for: the argument, ``$PYLU_LOG_DIR``, or the default."""
    return os.path.abspath(directory or os.environ.get(ENV_VAR) or default_dir())


def fallback_dirs(create_parents=False):
    """Per-user places used when the wanted directory is unsafe, in order."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        yield os.path.join(runtime, FALLBACK_NAME)
    cache = os.path.join(os.path.expanduser("~"), ".cache")
    if create_parents:
        try:
            os.makedirs(cache, 0o700, exist_ok=True)
        except OSError:
            pass
    yield os.path.join(cache, FALLBACK_NAME)


def check_private_dir(path):
    """Create `path` (0700) if missing; return None if it is safe, else why not."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        return "cannot create it: %s" % e.strerror
    try:
        st = os.lstat(path)
    except OSError as e:
        return "cannot stat it: %s" % e.strerror
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.geteuid():
        return "it is owned by uid %d, not by us (uid %d)" % (st.st_uid, os.geteuid())
    if st.st_mode & 0o022:
        return "it is writable by group or others (mode %o)" % stat.S_IMODE(st.st_mode)
    return None


def choose_directory(directory=None):
    """Return (directory, refusals): the first safe place (created if missing), and why
    earlier ones were refused. LookupError when there is none."""
    refusals = []
    for candidate in [wanted_dir(directory), *fallback_dirs(create_parents=True)]:
        why = check_private_dir(candidate)
        if why is None:
            return candidate, refusals
        refusals.append("refusing log directory %s: %s" % (candidate, why))
    raise LookupError("no safe log directory: " + "; ".join(refusals))


def reading_dirs():
    """Where a reader looks by default: the wanted directory, then the fallbacks the
    recorder may have used. Nothing is created."""
    places = [wanted_dir()]
    places.extend(p for p in fallback_dirs() if p not in places)
    return places


# ---- naming and grouping -------------------------------------------------------------

def segment_name(pid, start_ns, n=0):
    """File name of segment `n` of the log of process `pid` started at `start_ns`."""
    return "pylu-%d-%d%s%s" % (pid, start_ns, ".%d" % n if n else "", LOG_SUFFIX)


def parse_segment_name(name):
    """(pid, start_ns, n) of a log file name, or None for any other name."""
    m = _SEGMENT.match(os.path.basename(name))
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass
class LogGroup:
    """One process's log: its segment files in order (a lone file is one segment)."""
    segments: list = field(default_factory=list)      # paths, oldest first
    numbers: list = field(default_factory=list)       # segment numbers (0 = first)
    pid: int | None = None
    start_ns: int | None = None

    @property
    def path(self):
        return self.segments[0]

    @property
    def missing(self):
        """Segment numbers absent before or between the kept ones (deleted by rotation)."""
        if not self.numbers:
            return []
        kept = set(self.numbers)
        return [n for n in range(self.numbers[-1]) if n not in kept]


def group_logs(paths):
    """Group log files by process (pid and start time in the name), segments in order.
    Files with other names are each a log of their own. Groups come in path order of
    their first segment."""
    groups = {}
    singles = []
    for path in paths:
        parsed = parse_segment_name(path)
        if parsed is None:
            singles.append(LogGroup([path], [0]))
            continue
        pid, start_ns, n = parsed
        key = (os.path.dirname(path), pid, start_ns)
        group = groups.setdefault(key, LogGroup(pid=pid, start_ns=start_ns))
        group.segments.append(path)
        group.numbers.append(n)
    for group in groups.values():
        order = sorted(range(len(group.numbers)), key=group.numbers.__getitem__)
        group.segments = [group.segments[i] for i in order]
        group.numbers = [group.numbers[i] for i in order]
    return sorted([*groups.values(), *singles], key=lambda g: g.path)


def list_logs(directory):
    """The logs in `directory`, grouped per process (see `group_logs`)."""
    names = [n for n in os.listdir(directory) if n.endswith(LOG_SUFFIX)]
    return group_logs([os.path.join(directory, n) for n in names])
