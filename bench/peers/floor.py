"""The floor: a no-op C sys.monitoring callback on the events a case needs.

``build()`` compiles ``noop_callback.c`` for the running interpreter (the parent does
this once; children find it through PYLU_BENCH_NOOP_DIR). The tool id is the first
free of 4 and 3, as ours takes.
"""
import os
import subprocess
import sys
import sysconfig

from peers import Unavailable

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_DIR = "PYLU_BENCH_NOOP_DIR"


def build(out_dir):
    """Compile the no-op callback module into out_dir (once per interpreter)."""
    target = os.path.join(out_dir, "pylu_bench_noop" + sysconfig.get_config_var("EXT_SUFFIX"))
    source = os.path.join(HERE, "noop_callback.c")
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(source):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    cmd = cc + ["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
                "-I", sysconfig.get_paths()["include"], source, "-o", target]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("building the no-op callback failed:\n%s" % done.stderr)
    return out_dir


def _noop():
    directory = os.environ.get(ENV_DIR)
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        from pylu_bench_noop import noop
    except ImportError as exc:
        raise Unavailable("no-op callback not built: %s" % exc)
    return noop


class _Floor(object):
    """Register the no-op callback for EVENTS, locally on the hot code or globally."""

    EVENTS = ("PY_START", "PY_RESUME", "PY_RETURN", "PY_YIELD")
    LOCAL = True

    def __init__(self, workload):
        if not hasattr(sys, "monitoring"):
            raise Unavailable("sys.monitoring needs Python 3.12+")
        self.workload = workload
        self.noop = _noop()
        self.mon = sys.monitoring
        self.tool = None

    def start(self):
        mon = self.mon
        for tool in (4, 3):
            if mon.get_tool(tool) is None:
                mon.use_tool_id(tool, "pylu-bench-floor")
                self.tool = tool
                break
        else:
            raise Unavailable("tool ids 3 and 4 are both taken")
        mask = 0
        for name in self.EVENTS:
            event = getattr(mon.events, name)
            mon.register_callback(self.tool, event, self.noop)
            mask |= event
        if self.LOCAL:
            mon.set_local_events(self.tool, self.workload.hot.__code__, mask)
        else:
            mon.set_events(self.tool, mask)

    def stop(self):
        mon = self.mon
        mon.set_events(self.tool, 0)
        mon.set_local_events(self.tool, self.workload.hot.__code__, 0)
        for name in self.EVENTS:
            mon.register_callback(self.tool, getattr(mon.events, name), None)
        mon.free_tool_id(self.tool)
        return {"tool_id": self.tool}


class FloorFuncOne(_Floor):
    pass


class FloorFuncAll(_Floor):
    LOCAL = False


class FloorLinesOne(_Floor):
    EVENTS = _Floor.EVENTS + ("LINE",)
