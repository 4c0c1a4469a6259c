"""Where debugger and handler output goes, and how much of it.

Every line goes to three places, as the original tool did and better:
the program's stderr, the recording log (when the recorder runs) and the controller's
live stream (when a stub is connected). Each update has a rate limit (a token bucket,
default DEFAULT_RATE lines per second with bursts of DEFAULT_BURST); lines over the
limit are dropped, counted, and reported in every sink: one notice per update at most
every NOTICE_INTERVAL seconds (with the next line that gets through, or when
report_drops() runs: the stub calls it every second).

The lines of one call pass or drop together: a debugger admits them with a *group* (the
call's frame); the first line of a group takes a place in the limit, the later ones
follow its decision, and `last=True` closes the group. So with rate=3 a call's
parameters line is never printed without its return value line, or the reverse.

An update whose handlers do nothing but print (the debuggers) also registers a *gate*
(its engine HandlerStats): while its limit is spent, the gate is closed until the next
line is due, and the engine skips those handlers in C instead of building lines that
would be dropped. Skipped calls are counted and reported with the drops.
"""
import os
import sys
import threading
import time

from ._engine import TEXT_DEBUG, TEXT_ENGINE, TEXT_HANDLER  # noqa: F401  (kinds.h, one place)

DEFAULT_RATE = 200.0
DEFAULT_BURST = 400.0
# The rate limit counts lines; this bounds their size, so a handler printing megabytes
# cannot flood the program's stderr, the log or the controller.
MAX_LINE = 64 * 1024
NOTICE_INTERVAL = 1.0      # seconds between two drop notices of one update
MAX_OPEN_GROUPS = 4096     # calls in flight remembered per update (oldest forgotten)

_lock = threading.Lock()
_buckets = {}          # update id -> _Bucket
_limits = {}           # update id -> (rate, burst)
_default = [DEFAULT_RATE, DEFAULT_BURST]
_gates = {}            # update id -> engine HandlerStats (gate_until_ns, skipped)
_streams = []          # callables(update_id, kind, text) -> None; the connected stub(s)
_to_stderr = [True]


class _Bucket:
    __slots__ = ("rate", "burst", "tokens", "stamp", "dropped", "unreported", "emitted",
                 "gate", "skipped_reported", "groups", "noticed")

    def __init__(self, rate, burst, gate=None):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()
        self.dropped = self.unreported = self.emitted = 0
        self.groups = {}        # group key (a call in flight) -> admitted?
        self.noticed = 0.0      # when the last drop notice went out
        self.attach(gate)

    def attach(self, gate):
        """Gate this bucket's update; skips before now are not reported as new."""
        self.gate = gate
        self.skipped_reported = gate.skipped if gate is not None else 0

    def close_gate(self):
        """Skip the update's handlers until the next token is due (not while an admitted
        call is in flight: its last line would be skipped with the handlers)."""
        if self.gate is not None and not any(self.groups.values()):
            wait = (1.0 - self.tokens) / self.rate
            self.gate.gate_until_ns = time.monotonic_ns() + max(1, int(wait * 1e9))

    def skipped(self):
        return self.gate.skipped if self.gate is not None else 0

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def set_rate_limit(per_second, update_id=None, burst=None):
    """Lines per second for one update (or, with update_id=None, the default for all)."""
    per_second = float(per_second)
    if per_second <= 0:
        raise ValueError("the rate limit must be positive (lines per second)")
    burst = float(burst) if burst is not None else max(1.0, per_second * 2)
    with _lock:
        if update_id is None:
            _default[:] = [per_second, burst]
        else:
            _limits[update_id] = (per_second, burst)
            bucket = _buckets.get(update_id)
            if bucket is not None:
                bucket.rate, bucket.burst = per_second, burst
                bucket.tokens = min(bucket.tokens, burst)


def set_gate(update_id, gate):
    """Let the update's rate limit close `gate` (its engine HandlerStats) while the limit
    is spent. Only for updates whose handlers do nothing but emit lines."""
    with _lock:
        _gates[update_id] = gate
        bucket = _buckets.get(update_id)
        if bucket is not None:
            bucket.attach(gate)


def send_to_stderr(enabled):
    """Turn the copy on the program's stderr on or off (log and stream are unaffected)."""
    _to_stderr[0] = bool(enabled)


def add_stream(callback):
    with _lock:
        _streams.append(callback)


def remove_stream(callback):
    with _lock:
        if callback in _streams:
            _streams.remove(callback)


def _bucket(update_id):  # with _lock held
    bucket = _buckets.get(update_id)
    if bucket is None:
        rate, burst = _limits.get(update_id, _default)
        bucket = _buckets[update_id] = _Bucket(rate, burst, _gates.get(update_id))
    return bucket


def _take(bucket):  # with _lock held
    if bucket.take():
        return True
    bucket.dropped += 1
    bucket.unreported += 1
    bucket.close_gate()
    return False


def admit(update_id, group=None, last=False):
    """Take one line's place in the update's rate limit *before* the line is built.

    Debuggers call it first, so a closed limit costs a bucket check, not the formatting
    of values; the line is then sent with ``emit(..., admitted=True)``. Lines given one
    `group` (a call's frame) share the decision of its first line; `last` closes it.
    """
    try:
        with _lock:
            bucket = _bucket(update_id)
            if group is None:
                return _take(bucket)
            decided = bucket.groups.pop(group, None) if last else bucket.groups.get(group)
            if decided is not None:
                if not decided:
                    bucket.dropped += 1
                    bucket.unreported += 1
                return decided
            decided = _take(bucket)
            if not last:
                if len(bucket.groups) >= MAX_OPEN_GROUPS:
                    del bucket.groups[next(iter(bucket.groups))]
                bucket.groups[group] = decided
            return decided
    except Exception:  # noqa: BLE001 - output must never break the program
        return False


def emit(update_id, text, kind=TEXT_DEBUG, admitted=False):
    """Send one line of output of an update to every sink, within its rate limit.

    Never raises: this runs inside the program's own threads.
    """
    try:
        if len(text) > MAX_LINE:
            text = "%s [... %d characters cut]" % (text[:MAX_LINE], len(text) - MAX_LINE)
        with _lock:
            bucket = _bucket(update_id)
            if not admitted and not _take(bucket):
                return False
            bucket.emitted += 1
            notice = _take_notice(update_id, bucket)
            streams = list(_streams)
        if notice:
            _deliver(update_id, TEXT_ENGINE, notice, streams)
        _deliver(update_id, kind, text, streams)
        return True
    except Exception:  # noqa: BLE001 - output must never break the program
        return False


def _take_notice(update_id, bucket, force=False):
    """The drop notice due for bucket, or None (at most one per NOTICE_INTERVAL)."""
    if not bucket.unreported:
        return None
    now = time.monotonic()
    if not force and now - bucket.noticed < NOTICE_INTERVAL:
        return None
    bucket.noticed = now
    n, bucket.unreported = bucket.unreported, 0
    skipped = bucket.skipped() - bucket.skipped_reported
    bucket.skipped_reported += skipped
    return ("[pyliveupdate] update %s: %d line%s of output dropped by the rate limit "
            "(%g lines/s; %d dropped in all)%s" % (
                update_id, n, "" if n == 1 else "s", bucket.rate, bucket.dropped,
                "; its handlers were skipped %d times while the limit was spent" % skipped
                if skipped else ""))


def report_drops():
    """Report drops that no later line has reported yet. Returns how many were reported."""
    with _lock:
        notices = [(uid, _take_notice(uid, b)) for uid, b in _buckets.items() if b.unreported]
        notices = [(uid, n) for uid, n in notices if n]
        streams = list(_streams)
    for uid, notice in notices:
        _deliver(uid, TEXT_ENGINE, notice, streams)
    return len(notices)


def stats():
    """{update id: {"emitted": n, "dropped": n, "skipped": n, "rate": r}}; skipped: handler
    calls not made while the limit was spent (gated updates only)."""
    with _lock:
        return {uid: {"emitted": b.emitted, "dropped": b.dropped, "skipped": b.skipped(),
                      "rate": b.rate}
                for uid, b in _buckets.items()}


def forget(update_id):
    """Reports the update's last drops, then drops its bucket (on revert)."""
    with _lock:
        bucket = _buckets.pop(update_id, None)
        _limits.pop(update_id, None)
        gate = _gates.pop(update_id, None)
        if gate is not None:
            gate.gate_until_ns = 0
        notice = _take_notice(update_id, bucket, force=True) if bucket else None
        streams = list(_streams)
    if notice:
        _deliver(update_id, TEXT_ENGINE, notice, streams)


def _deliver(update_id, kind, text, streams):
    if _to_stderr[0]:
        try:
            # The program's stderr even in a thread running a controller command (whose
            # sys.stderr is captured into the reply): the streams carry it to the controller
            # already, so a capture would show the line there twice. No stub, no capture.
            command = sys.modules.get(__package__ + ".command")
            err = command.uncaptured(sys.stderr) if command is not None else sys.stderr
            if err is not None:
                err.write(text + "\n")
                err.flush()
        except Exception:  # noqa: BLE001
            pass
    _to_log(kind, text)
    for stream in streams:
        try:
            stream(update_id, kind, text)
        except Exception:  # noqa: BLE001
            pass


def _reinit_after_fork():
    # Another thread may have held the lock when the program forked.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reinit_after_fork)


def _to_log(kind, text):
    engine = sys.modules.get("pyliveupdate._engine")
    if engine is None:
        return
    try:
        active = getattr(engine, "recorder_active", None)
        if active is not None and active():
            engine.recorder_text(kind, text)
    except Exception:  # noqa: BLE001
        pass
