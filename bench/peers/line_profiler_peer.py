"""line_profiler 5.x through its LineProfiler API: the hot function's lines timed.

This is what ``kernprof -l`` does for an ``@profile``-decorated function, without the
decorator: ``add_function`` on the function object, then ``enable_by_count``.
"""
from peers import Unavailable


class LineProfilerPeer(object):
    def __init__(self, workload):
        try:
            from line_profiler import LineProfiler
        except ImportError as exc:
            raise Unavailable("line_profiler not installed: %s" % exc)
        self.workload = workload
        self.profiler = LineProfiler()

    def start(self):
        self.profiler.add_function(self.workload.hot)
        self.profiler.enable_by_count()

    def stop(self):
        self.profiler.disable_by_count()
        stats = self.profiler.get_stats()
        hits = sum(nhits for timings in stats.timings.values() for _, nhits, _ in timings)
        return {"line_hits": hits}
