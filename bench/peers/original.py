"""The original PyLiveUpdate 0.3.1, applied in-process through its own API, on the
Python it supports (3.9): ``FuncProfiler.profile(pattern)`` and
``LineProfiler.profile(pattern, lines)`` from ``pyliveupdatescripts``, exactly what its
controller sends to the target. Its log server (``pylu-controller -l``) is started by
the bench when port 9020 is free, so its remote logging sends as in real use; every
profiled call also writes a line to stderr, as the original always does.
"""
import contextlib
import io

from peers import Unavailable


class _Original(object):
    def __init__(self, workload):
        self.workload = workload
        try:
            import pyliveupdatescripts
        except Exception as exc:  # it fails on 3.10+ and on protobuf 4+ at import
            raise Unavailable("pyliveupdatescripts does not import: %s: %s"
                              % (type(exc).__name__, exc))
        self.scripts = pyliveupdatescripts

    def apply(self):
        raise NotImplementedError

    def start(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.apply()
        said = out.getvalue().strip()
        if "applied" not in said or "not applied" in said:
            raise Unavailable("its update was not applied: %r" % said)
        self.said = said

    def stop(self):
        return {"said": self.said}


class OriginalFuncProfiler(_Original):
    def apply(self):
        self.scripts.FP.profile(self.workload.hot_pattern)


class OriginalLineProfiler(_Original):
    def apply(self):
        self.scripts.LP.profile(self.workload.hot_pattern, self.workload.hot_lines())
