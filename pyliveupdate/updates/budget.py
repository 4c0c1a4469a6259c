"""The time budget of an update's handlers: on by default.

Rule: an update's handlers may spend at most ``share`` of the wall time since the update
was applied, plus ``allowance_s`` (default: 5 % + 0.5 s, summed over all threads); past
that they are switched off and reported (engine: "time budget of ... exceeded").

Why this rule: what hurts a server is the share of its time a handler takes, on a hot
path as much as in one slow call. A share bounds the slowdown of the whole program
whatever the call rate; the allowance lets a handler start (imports, first output)
and lets rare slow calls pass; a handler that sleeps 1 s per request is off after its
first call. A per-call ceiling would pass a cheap handler on a hot path that halves
the throughput, and stop an occasional slow one that costs nothing on average.

The engine checks a total (``HandlerStats.budget_ns``, in C, after every handler call);
one thread ("pyliveupdate-budget", running only while such updates are applied) raises
each total to the rule's value twice a second. An update whose budget someone set by
hand (``engine.set_time_budget``) is left alone from then on.
"""
import os
import threading
import time

from .validation import UpdateError

__all__ = ["Budget", "DEFAULT", "budget_rule", "track", "untrack"]

REFRESH_S = 0.5


class Budget:
    """handlers may spend ``share`` of the wall time since apply, plus ``allowance_s``."""

    def __init__(self, share=0.05, allowance_s=0.5):
        if not (isinstance(share, (int, float)) and 0 < share <= 1):
            raise UpdateError("a budget's share must be a fraction in (0, 1], got %r" % (share,))
        if not (isinstance(allowance_s, (int, float)) and allowance_s >= 0):
            raise UpdateError("a budget's allowance must be seconds >= 0, got %r"
                              % (allowance_s,))
        self.share, self.allowance_s = share, allowance_s

    def limit_ns(self, elapsed_s):
        return int((self.allowance_s + self.share * elapsed_s) * 1e9)

    def __repr__(self):
        return "%g%% of the time since applied + %gs" % (self.share * 100, self.allowance_s)


DEFAULT = Budget()


def budget_rule(budget):
    """budget= of an update -> a Budget, a fixed total in seconds (float), or None (off)."""
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0:
        return float(budget)
    raise UpdateError("budget must be None (no budget), seconds of handler time in total, "
                      "or a Budget(share, allowance_s), got %r" % (budget,))


_lock = threading.Lock()
_tracked = {}        # update id -> (stats, Budget, monotonic start, budget_ns last set)
_thread = [None]


def track(update_id, rule):
    """Give an applied update's handlers their budget (rule from budget_rule())."""
    from .. import engine
    stats = engine.handler_stats(update_id)
    if rule is None:
        untrack(update_id)
        stats.budget_ns = None
        return
    if isinstance(rule, float):
        untrack(update_id)
        stats.budget_ns = int(rule * 1e9)
        return
    start = time.monotonic() - stats.time_ns / 1e9 / rule.share   # re-apply: time spent counts
    limit = rule.limit_ns(time.monotonic() - start)
    stats.budget_ns = limit
    with _lock:
        _tracked[update_id] = (stats, rule, start, limit)
        if _thread[0] is None or not _thread[0].is_alive():
            _thread[0] = threading.Thread(target=_refresh, name="pyliveupdate-budget",
                                          daemon=True)
            _thread[0].start()


def untrack(update_id):
    with _lock:
        _tracked.pop(update_id, None)


def _refresh():
    while True:
        time.sleep(REFRESH_S)
        now = time.monotonic()
        with _lock:
            if not _tracked:
                _thread[0] = None
                return
            for uid, (stats, rule, start, last) in list(_tracked.items()):
                if stats.budget_ns != last or stats.disabled:
                    del _tracked[uid]          # set by hand, or already off
                    continue
                limit = rule.limit_ns(now - start)
                stats.budget_ns = limit
                _tracked[uid] = (stats, rule, start, limit)


def _after_fork():
    _thread[0] = None
    if _tracked:
        _thread[0] = threading.Thread(target=_refresh, name="pyliveupdate-budget", daemon=True)
        _thread[0].start()


os.register_at_fork(after_in_child=_after_fork)
