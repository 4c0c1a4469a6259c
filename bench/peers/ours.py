"""pyliveupdate applied through its public Python API (docs/DESIGN.md sections 2 and 4).

Each class is one row of the table. The recorder writes to PYLU_LOG_DIR (the bench
gives every run a fresh private directory) and ``stop()`` reports what the recorder
says about the run: events recorded, records dropped, bytes on disk.
"""
import gc
import sys
import types

from peers import Unavailable

UPDATE_ID = 9001  # any id; the bench applies one update per process


def _import_engine():
    try:
        from pyliveupdate import engine, recording, _engine
    except ImportError as exc:
        raise Unavailable("pyliveupdate engine not importable: %s" % exc)
    missing = [name for name in ("arm", "disarm", "Request", "status")
               if not hasattr(engine, name)]
    if not hasattr(recording, "ensure_started"):
        missing.append("recording.ensure_started")
    if missing:
        raise Unavailable("pyliveupdate.engine lacks %s (not landed yet)" % ", ".join(missing))
    return engine, recording, _engine


def _recorder_report(_engine):
    try:
        _engine.recorder_flush()
        stats = dict(_engine.recorder_stats())
    except Exception as exc:  # report, don't hide: the row still has its timing
        return {"recorder_error": "%s: %s" % (type(exc).__name__, exc)}
    return {key: stats.get(key) for key in ("events", "dropped", "bytes_written", "clock",
                                            "flusher_cpu_ns", "ring_bytes_peak")}


class _Armed(object):
    """Arm one Request on a set of code objects with one event source."""

    SOURCE = "monitoring"

    def __init__(self, workload):
        self.workload = workload
        self.engine, self.recording, self._engine = _import_engine()

    def request(self):
        raise NotImplementedError

    def targets(self):
        """(code, module, qualname) triples to arm."""
        hot = self.workload.hot
        return [(hot.__code__, hot.__module__, hot.__qualname__)]

    def start(self):
        if self.SOURCE == "frame":
            refusal = self.engine.frame_source_refusal()
            if refusal:
                raise Unavailable(refusal)
        self.recording.ensure_started()
        req = self.request()
        for code, module, qualname in self.targets():
            try:
                self.engine.arm(UPDATE_ID, code, req, module=module, qualname=qualname,
                                source=self.SOURCE)
            except (ValueError, RuntimeError, NotImplementedError) as exc:
                raise Unavailable("engine.arm(source=%r) refused: %s" % (self.SOURCE, exc))
        self.check_source()

    def check_source(self):
        if self.SOURCE != "frame":
            return
        status = self.engine.status()
        if not status.get("frame_hook_installed"):
            raise Unavailable("frame source not used (status: sources=%s, hook=%s)" % (
                status.get("sources"), status.get("frame_hook_installed")))

    def stop(self):
        self.engine.disarm(UPDATE_ID)
        info = _recorder_report(self._engine)
        info["armed_codes"] = len(self.targets_cache) if hasattr(self, "targets_cache") else 1
        return info


class FuncTimingOne(_Armed):
    def request(self):
        return self.engine.Request(func_timing=True)


class FuncTimingOneFrame(FuncTimingOne):
    SOURCE = "frame"


def _module_of(code, modules_by_file):
    return modules_by_file.get(code.co_filename, "?")


def _ours(filename):
    """Code of pyliveupdate itself or of this bench harness: not "the program"."""
    return filename.startswith(_OWN_DIRS)


def _own_dirs():
    import os
    import pyliveupdate
    here = os.path.dirname(os.path.abspath(__file__))
    return (os.path.dirname(pyliveupdate.__file__) + os.sep, here + os.sep,
            os.path.join(os.path.dirname(here), "child.py"))


_OWN_DIRS = ()


class FuncTimingAll(FuncTimingOne):
    """Every Python function in the process (what cProfile sees), plus any code object
    created later (through engine.watch), e.g. templates Jinja2 compiles on first use.
    pyliveupdate's own code and the bench harness's are left out (profiling the
    profiler would also re-enter the engine: its matcher would be asked about the
    engine's own code while the engine iterates its tables)."""

    def targets(self):
        global _OWN_DIRS
        _OWN_DIRS = _own_dirs()
        modules_by_file = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if path:
                modules_by_file[path] = name
        seen = {}
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType):
                code = obj.__code__
                if code not in seen and not _ours(code.co_filename):
                    seen[code] = (code, getattr(obj, "__module__", None) or
                                  _module_of(code, modules_by_file), obj.__qualname__)
        self.targets_cache = list(seen.values())
        self.modules_by_file = modules_by_file
        return self.targets_cache

    def start(self):
        _Armed.start(self)
        if hasattr(self.engine, "watch"):
            req = self.request()
            by_file = self.modules_by_file

            def matcher(code):
                if _ours(code.co_filename):
                    return None
                return req, _module_of(code, by_file), getattr(code, "co_qualname", code.co_name)

            self.engine.watch(UPDATE_ID + 1, matcher, source=self.SOURCE)

    def stop(self):
        if hasattr(self.engine, "unwatch"):
            self.engine.unwatch(UPDATE_ID + 1)
        return FuncTimingOne.stop(self)


class FuncTimingAllFrame(FuncTimingAll):
    SOURCE = "frame"


class LineTimingOne(_Armed):
    def request(self):
        return self.engine.Request(timing_lines=frozenset(self.workload.hot_lines()))


class FuncDebugOne(object):
    """``FuncDebugger.debug(pattern, rate=RATE)`` on the hot function: arguments and
    return value of each call, rate-limited to RATE lines a second (hand_print's
    budget), to stderr and to our log."""

    def __init__(self, workload):
        self.workload = workload
        self.engine, self.recording, self._engine = _import_engine()
        try:
            from pyliveupdate import FuncDebugger, output
        except ImportError as exc:
            raise Unavailable("pyliveupdate.FuncDebugger not importable: %s" % exc)
        self.debugger, self.output = FuncDebugger, output

    def start(self):
        import contextlib
        import io
        from peers.hand_print import RATE
        self.recording.ensure_started()
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            self.debugger.debug(self.workload.hot_pattern, rate=RATE)
        self.said = said.getvalue().strip()

    def stop(self):
        info = _recorder_report(self._engine)
        stats = self.output.stats()
        info.update({"said": self.said, "output": stats if isinstance(stats, dict) else str(stats)})
        return info


class IdleStub(object):
    """The stub started and connected to a live controller (PYLU_BENCH_CONTROLLER,
    started by run.py), nothing applied: what a program pays for being ready."""

    def __init__(self, workload):
        try:
            from pyliveupdate import UpdateStub
        except ImportError as exc:
            raise Unavailable("pyliveupdate.UpdateStub not importable: %s" % exc)
        self.stub_class = UpdateStub
        self.stub = None

    def start(self):
        import os
        address = os.environ.get("PYLU_BENCH_CONTROLLER")
        self.stub = self.stub_class(controller=address or "127.0.0.1:9",
                                    token=os.environ.get("PYLU_TOKEN"))
        self.stub.start()
        self.connected = bool(address) and self.stub.connected.wait(10)
        if address and not self.connected:
            raise Unavailable("the stub did not connect to the bench's controller in 10 s")

    def stop(self):
        connected_at_end = self.stub.connected.is_set()
        self.stub.stop()
        return {"connected": connected_at_end}
