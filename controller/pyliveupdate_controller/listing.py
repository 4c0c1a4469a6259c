"""Listings for the console: short by default ("… N more"), one line per thing."""
FIRST = 3          # items shown of a long list
WHAT_WIDTH = 70    # characters of a definition's source shown in a listing
REPLY_LINES = 40   # lines of one process's reply shown before "… N more lines"
LINE_CHARS = 400   # characters of one line shown before "… N more characters"


def more(items, first=FIRST):
    """'a, b, c … 7 more' of a sequence of strings."""
    items = list(items)
    shown = ", ".join(items[:first])
    return shown + (" … %d more" % (len(items) - first) if len(items) > first else "")


def what(definition):
    """A definition in one short line: its patch file, or its first line of source."""
    name = definition.filename or ""
    if name.startswith("<patch ") and name.endswith(">"):
        text = "patch(%r)" % name[len("<patch "):-1]
    else:
        lines = (definition.src or "<source not known here>").strip().splitlines() or [""]
        text = lines[0] + (" …" if len(lines) > 1 else "")
    if len(text) > WHAT_WIDTH:
        text = text[:WHAT_WIDTH - 1] + "…"
    return text + (" [sticky]" if definition.sticky else "")


def update_rows(rows, process_count, labels=None):
    """Lines of LU.ls(): per update its state at the controller, in how many connected
    processes it is applied / pending / failed / disabled, and why where it is not applied.
    labels: {id: 'FuncProfiler shop.**'} as processes report them, shown where one
    command made several updates."""
    labels = labels or {}
    lines = ["%d process(es) connected" % process_count]
    for uid, status, definition, where in rows:
        counts = ", ".join("%s in %d" % (s, len(where[s])) for s in sorted(where)) or "in no process"
        line = "%d  %-8s  %s  %s" % (uid, status, counts, what(definition))
        if len(definition.ids) > 1 and uid in labels:
            line += "  → %s" % labels[uid]
        lines.append(line)
        for s in sorted(where):
            if s == "applied":
                continue
            by_reason = {}
            for pid, reason in where[s]:
                by_reason.setdefault(reason or "", []).append(str(pid))
            for reason, pids in sorted(by_reason.items()):
                lines.append("     %s in pid %s%s" % (s, more(pids), ": " + reason if reason else ""))
    return lines


def process_updates(states):
    """The updates column of procs(): '1,2 applied; 3 pending'."""
    by_status = {}
    for uid, s in sorted(states.items()):
        if s != "reverted":
            by_status.setdefault(s, []).append(str(uid))
    if not by_status:
        return "-"
    return "; ".join("%s %s" % (more(ids, 6).replace(", ", ","), s)
                     for s, ids in sorted(by_status.items(), key=lambda kv: kv[0] != "applied"))


def clip(text, lines=REPLY_LINES, chars=LINE_CHARS):
    """(lines to show, whether anything was left out) of one reply's text: the first
    `lines` lines, each cut at `chars` characters, with what was left out counted."""
    rows = text.splitlines()
    cut = False
    shown = []
    for row in rows[:lines]:
        if len(row) > chars:
            row = "%s … %d more characters" % (row[:chars], len(row) - chars)
            cut = True
        shown.append(row)
    if len(rows) > lines:
        shown.append("… %d more lines" % (len(rows) - lines))
        cut = True
    return shown, cut
