"""What a test needs to see of a process from inside: our threads, tool ids, frame hook.

Imported by the fixture programs (never by pyliveupdate); stdlib only."""
import ctypes
import os
import sys
import threading


def frame_hook_installed():
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
    current = api._PyInterpreterState_GetEvalFrameFunc(api.PyInterpreterState_Get())
    return current != ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value


def state():
    """One line: OS threads, Python thread names, sys.monitoring tools, hook, modules."""
    names = sorted(t.name for t in threading.enumerate())
    tools = [sys.monitoring.get_tool(i) for i in range(6)]
    return ("tasks=%d threads=%s tools=%s hook=%s imported=%s"
            % (len(os.listdir("/proc/self/task")), ",".join(names),
               ",".join(str(t) for t in tools), frame_hook_installed(),
               "pyliveupdate" in sys.modules))
