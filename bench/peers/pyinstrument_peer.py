"""pyinstrument: a statistical profiler (1 ms interval), for reference: it samples,
so it sees where time goes but counts no calls."""
from peers import Unavailable


class Pyinstrument(object):
    def __init__(self, workload):
        try:
            from pyinstrument import Profiler
        except ImportError as exc:
            raise Unavailable("pyinstrument not installed: %s" % exc)
        self.profiler = Profiler(interval=0.001)

    def start(self):
        self.profiler.start()

    def stop(self):
        session = self.profiler.stop()
        return {"samples": session.sample_count}
