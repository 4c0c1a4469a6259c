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
    return {key: stats.get(key) for key in ("events", "dropped", "bytes_written", "clock")}


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
    """Arguments and return value of the hot function, rate-limited to RATE lines a
    second (the same budget and gate as hand_print), written to our log.

    Through ``pyliveupdate.FuncDebugger`` once it exists; until then through the same
    public engine API it is built on (func_begin/func_end handlers writing TEXT records),
    and the row says which.
    """

    def __init__(self, workload):
        self.workload = workload
        self.engine, self.recording, self._engine = _import_engine()
        self.lines = 0

    def start(self):
        import time
        from peers.hand_print import RATE
        self.recording.ensure_started()
        hot = self.workload.hot
        code = hot.__code__
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        qualname = hot.__qualname__
        gate = [0.0]
        monotonic = time.monotonic
        text = self._engine.recorder_text
        interval = 1.0 / RATE
        bench = self

        def on_begin(frame):
            now = monotonic()
            if now >= gate[0]:
                gate[0] = now + interval
                args = frame.f_locals
                text(1, "%s called %s" % (qualname, ", ".join(
                    "%s=%r" % (n, args.get(n)) for n in names)))
                bench.lines += 1

        def on_end(frame, retval, exc):
            now = monotonic()
            if now >= gate[0]:
                gate[0] = now + interval
                text(1, "%s returned %r" % (qualname, retval) if exc is None
                     else "%s raised %r" % (qualname, exc))
                bench.lines += 1

        req = self.engine.Request(on_func_begin=on_begin, on_func_end=on_end)
        self.engine.arm(UPDATE_ID, code, req, module=hot.__module__, qualname=qualname,
                        source="monitoring")

    def stop(self):
        report = self.engine.handler_report(UPDATE_ID)
        self.engine.disarm(UPDATE_ID)
        info = _recorder_report(self._engine)
        info.update({"lines": self.lines, "via": "engine handlers (FuncDebugger not landed)",
                     "handler_errors": report.get("errors"),
                     "handler_disabled": report.get("disabled")})
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
