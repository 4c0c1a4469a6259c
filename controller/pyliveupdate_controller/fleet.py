"""The fleet's desired state: which updates are active, what created them, whom they are for.

The controller keeps *definitions*, not history. A definition is a command that created
updates (its source, its id block) with a *selector*: the processes it is meant for.
By default that is the instances (stub identity.py: one run of a program on one host,
its master's later workers included) whose processes were selected, whole; when use()
picked only some processes of an instance, those processes alone. sticky=True adds the
program (host + command line of the instance's root), so a restarted program gets it too.

A process that connects is brought to the desired state by one sync (plan()): the
active definitions it matches and lacks are run there (with their ids, the time to live
left, and the ids of the block that are no longer active reverted at once), what it has
that is no longer meant for it is reverted, what was reverted there while it was away
and is still active is re-applied. A definition is never sent when none of its updates
is active (failed everywhere, reverted, expired), and never twice to one process
(`executed` has its seq, inherited by forked children).

Pure logic: no sockets, no threads; server.py calls it under its command lock.
"""
import time

LIVE = ("applied", "pending", "disabled")


class Identity:
    """Who a connected process is, from its hello (older stubs: each its own instance)."""

    __slots__ = ("pid", "host", "instance", "program_key", "program")

    def __init__(self, hello):
        self.pid = hello.get("pid")
        self.host = hello.get("host", "?")
        self.program = hello.get("program", "?")
        self.instance = hello.get("instance") or "%s/%s" % (self.host, self.pid)
        self.program_key = hello.get("program_key") or "%s/%s" % (self.host, self.program)

    @property
    def key(self):
        return (self.instance, self.pid)


def _root_pid(instance):
    """The pid of an instance's root process ("host/root pid/root start"), or None."""
    parts = instance.split("/")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Selector:
    """Which processes a definition is meant for."""

    def __init__(self, instances=(), processes=(), programs=(), excluded=()):
        self.instances = set(instances)                      # whole instances
        self.processes = {tuple(p) for p in processes}       # (instance, pid) one by one
        self.programs = set(programs)                        # program keys, for sticky
        self.excluded = {tuple(p) for p in excluded}         # reverted there by hand

    @classmethod
    def for_selection(cls, chosen, everyone):
        """Whole instances whose connected processes were all chosen; an instance whose
        workers were all chosen but not its master (a prefork server's usual selection):
        the instance without its master, so workers forked later match; else the
        processes one by one."""
        members = {}
        for ident in everyone:
            members.setdefault(ident.instance, set()).add(ident.pid)
        picked = {}
        for ident in chosen:
            picked.setdefault(ident.instance, set()).add(ident.pid)
        sel = cls(programs={i.program_key for i in chosen})
        for instance, pids in picked.items():
            connected = members.get(instance, set())
            root = _root_pid(instance)
            if pids >= connected:
                sel.instances.add(instance)
            elif root in connected and root not in pids and pids >= connected - {root}:
                sel.instances.add(instance)
                sel.excluded.add((instance, root))
            else:
                sel.processes.update((instance, pid) for pid in pids)
        return sel

    def matches(self, ident, sticky=False):
        if ident.key in self.excluded:
            return False
        return (ident.instance in self.instances or ident.key in self.processes
                or (sticky and ident.program_key in self.programs))

    def same_program(self, ident):
        return ident.program_key in self.programs

    def to_json(self):
        return {"instances": sorted(self.instances), "processes": sorted(map(list, self.processes)),
                "programs": sorted(self.programs), "excluded": sorted(map(list, self.excluded))}

    @classmethod
    def from_json(cls, obj):
        obj = obj if isinstance(obj, dict) else {}
        return cls(obj.get("instances") or (), obj.get("processes") or (),
                   obj.get("programs") or (), obj.get("excluded") or ())

    def describe(self):
        parts = []
        if self.instances:
            parts.append("%d instance(s)" % len(self.instances))
        if self.processes:
            parts.append("pid %s" % ",".join(str(p) for _, p in sorted(self.processes)))
        return " + ".join(parts) or "nobody"


class Definition:
    """A command that created updates base .. base+used-1."""

    def __init__(self, seq, src, filename, base, used, selector, sticky=False):
        self.seq, self.src, self.filename = seq, src, filename
        self.base, self.used = base, used
        self.selector = selector
        self.sticky = sticky
        self.inactive = {}        # id -> "reverted" | "expired" | "failed"
        self.expires = {}         # id -> time.monotonic() deadline

    @property
    def ids(self):
        return range(self.base, self.base + self.used)

    def active_ids(self, now=None):
        now = time.monotonic() if now is None else now
        return [i for i in self.ids if i not in self.inactive
                and not (i in self.expires and self.expires[i] <= now)]

    def define(self):
        """What a stub keeps with the updates (so a new controller can learn it)."""
        return {"selector": self.selector.to_json(), "sticky": self.sticky}

    def exec_message(self, now=None):
        """The replay of this definition: same source, same ids."""
        now = time.monotonic() if now is None else now
        active = set(self.active_ids(now))
        msg = {"op": "exec", "src": self.src, "filename": self.filename, "base": self.base,
               "seq": self.seq, "echo": False, "define": self.define(),
               "skip": [i for i in self.ids if i not in active]}
        ttl = [[i, round(self.expires[i] - now, 3)] for i in sorted(active) if i in self.expires]
        if ttl:
            msg["ttl"] = ttl
        return msg

    def label(self):
        return str(self.base) if self.used <= 1 else "%d-%d" % (self.base, self.base + self.used - 1)


class DesiredState:
    def __init__(self):
        self.definitions = {}     # seq -> Definition
        self.noted = set()        # (instance, seq) told "did not get" already

    # --- what exists ----------------------------------------------------------------

    def owner(self, uid):
        for d in self.definitions.values():
            if d.base <= uid < d.base + d.used:
                return d
        return None

    def active(self, now=None):
        """Definitions with at least one active update, oldest first."""
        return sorted((d for d in self.definitions.values() if d.active_ids(now)),
                      key=lambda d: d.base)

    def known_ids(self):
        return {i for d in self.definitions.values() for i in d.ids}

    # --- learning ---------------------------------------------------------------------

    def add_command(self, seq, src, filename, base, used, selector, sticky, states_by_proc):
        """A command ran; replies' update states (one {id: status} per process that
        answered) tell which of its ids are in effect. Returns the Definition or None."""
        if not used:
            return None
        d = Definition(seq, src, filename, base, used, selector, sticky)
        self.definitions[seq] = d
        live = {i for states in states_by_proc for i, s in states.items() if s in LIVE}
        for i in d.ids:
            if i not in live:
                d.inactive[i] = "failed"    # never sent: no process holds it in effect
        return d

    def learn(self, ident, hello, states, ttl, now=None):
        """A process's hello: definitions it holds that this controller does not know
        (a new controller learns the active set from the processes)."""
        now = time.monotonic() if now is None else now
        for row in hello.get("definitions") or ():
            if not isinstance(row, dict) or row.get("seq") in self.definitions:
                continue
            try:
                base, used = int(row["base"]), int(row["used"])
            except (KeyError, TypeError, ValueError):
                continue
            define = row.get("define") if isinstance(row.get("define"), dict) else {}
            d = Definition(row.get("seq"), row.get("src"), row.get("filename") or "<controller>",
                           base, used, Selector.from_json(define.get("selector")),
                           bool(define.get("sticky")))
            self.definitions[d.seq] = d
            for i in d.ids:
                if states.get(i) not in LIVE:
                    d.inactive[i] = states.get(i) or "reverted"
        self.note_ttl(ttl, now)

    def note_ttl(self, ttl, now=None):
        now = time.monotonic() if now is None else now
        for uid, left in ttl.items():
            d = self.owner(uid)
            if d is not None and uid not in d.expires:
                d.expires[uid] = now + float(left)

    def observe(self, results, everyone, reverted=()):
        """After a command: per process (ident, states before, states after). A process
        where an update was reverted leaves the selector; where it was applied again,
        it rejoins. An update in effect in no connected process is inactive, also one the
        command named to revert (`reverted`) when no selected process lived to answer."""
        live_anywhere = {uid for _, after in everyone for uid, s in after.items() if s in LIVE}
        for ident, before, after in results:
            for uid, status in after.items():
                d = self.owner(uid)
                if d is None:
                    continue
                was = before.get(uid)
                if was in LIVE and status == "reverted":
                    d.selector.excluded.add(ident.key)
                elif status in LIVE and was not in LIVE:
                    d.selector.excluded.discard(ident.key)
                    d.inactive.pop(uid, None)
        gone = {uid for _, _, after in results for uid, s in after.items() if s == "reverted"}
        for uid in (gone | set(reverted)) - live_anywhere:
            d = self.owner(uid)
            if d is not None and uid in d.ids:
                d.inactive.setdefault(uid, "reverted")    # an expiry stays one
                d.selector.excluded.clear()

    def event(self, uid, kind):
        """An event from a process: an update that expired is inactive everywhere."""
        d = self.owner(uid)
        if d is not None and kind == "expired":
            d.inactive[uid] = "expired"

    # --- bringing a process to the desired state -------------------------------------

    def plan(self, ident, states, executed, now=None):
        """The sync message for a process, and notes for the operator:
        ({"op": "sync", "revert": [...], "reapply": [...], "run": [exec...]}, [notes])."""
        now = time.monotonic() if now is None else now
        revert, reapply, run, missed, restarts = [], [], [], [], []
        for d in sorted(self.definitions.values(), key=lambda d: d.base):
            active = d.active_ids(now)
            wanted = bool(active) and d.selector.matches(ident, d.sticky)
            held = {i: states[i] for i in d.ids if i in states}
            if wanted:
                if not held and d.seq not in executed:
                    if d.src is not None:
                        run.append(d.exec_message(now))
                    else:
                        missed.append("update(s) %s: this controller has not got their "
                                      "source (learned without it)" % d.label())
                else:
                    reapply.extend(i for i in active if held.get(i) == "reverted")
            elif active and not held and d.selector.same_program(ident) \
                    and (ident.instance, d.seq) not in self.noted:
                self.noted.add((ident.instance, d.seq))
                restarts.extend(active)
            keep = set(active) if wanted else set()
            revert.extend(i for i, s in held.items() if s in LIVE and i not in keep)
        notes = list(missed)
        if restarts:
            ids = ", ".join(map(str, restarts))
            notes.append("a new run of %s: it did not get active update(s) %s of its previous "
                         "run (sticky=True makes an update follow a program across restarts); "
                         "to apply them to this run: deploy([%s], to=%s)"
                         % (ident.program, ids, ids, ident.pid))
        return {"op": "sync", "revert": sorted(revert), "reapply": sorted(reapply),
                "run": run}, notes

    def deploy(self, ids, idents):
        """Add the instances of idents to the selectors of the definitions of ids.
        Returns the definitions touched; raises ValueError naming unknown/inactive ids."""
        touched, bad = [], []
        for uid in ids:
            d = self.owner(uid)
            if d is None or uid not in d.active_ids():
                bad.append(uid)
            elif d not in touched:
                touched.append(d)
        if bad:
            raise ValueError("not an active update: %s (see LU.ls())" % ", ".join(map(str, bad)))
        for d in touched:
            for ident in idents:
                d.selector.instances.add(ident.instance)
                d.selector.excluded.discard(ident.key)
        return touched

    # --- listing ------------------------------------------------------------------------

    def summary(self, processes, all_=False, now=None):
        """Rows (id, controller status, what, {status: [(pid, reason)]}) for LU.ls()."""
        now = time.monotonic() if now is None else now
        rows = []
        for d in sorted(self.definitions.values(), key=lambda d: d.base):
            active = set(d.active_ids(now))
            for uid in d.ids:
                status = "active" if uid in active else d.inactive.get(uid, "expired")
                if status != "active" and not all_:
                    continue
                where = {}
                for ident, states, reasons in processes:
                    s = states.get(uid)
                    if s is not None:
                        where.setdefault(s, []).append((ident.pid, reasons.get(uid)))
                rows.append((uid, status, d, where))
        return rows
