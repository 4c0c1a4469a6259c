"""pytest plugin loaded into a package's own test run (tests/support_realcode.py starts it).

Configured by $PYLU_REALCODE (JSON): mode, source, package (import name), out (a JSON file
this plugin writes), logdir.  When collection has imported the package and its tests,
the mode's update is applied; when the session ends, what it saw is written out:

    outcomes  {test id: [phase:outcome, ...]}      every mode
    counts    {"file:line:name": [calls, slices]}  cprofile (its calls are slices; functions
              only: module and class bodies are listed as "bodies"), instrument
    engine    engine.status(), handler reports, update descriptions, notes
"""
import json
import os
import random
import re
import sys
import traceback

import pytest

CONFIG = json.loads(os.environ["PYLU_REALCODE"])
MODE = CONFIG["mode"]
PACKAGE = CONFIG["package"]
_state = {"outcomes": {}, "errors": []}


def _package_dir():
    module = sys.modules[PACKAGE]
    return os.path.dirname(os.path.abspath(module.__file__)) + os.sep


def _package_files():
    """The files of the package's modules (its tests may live beside them as top-level
    modules of their own: they are not the package's code)."""
    return {os.path.abspath(m.__file__) for name, m in list(sys.modules.items())
            if (name == PACKAGE or name.startswith(PACKAGE + "."))
            and getattr(m, "__file__", None)}


def _key(code):
    return "%s:%d:%s" % (code.co_filename, code.co_firstlineno, code.co_name)


# --- modes -------------------------------------------------------------------------

_GENERATOR_FLAGS = 0x20 | 0x80 | 0x200     # generator, coroutine, async generator
_REFERENCE_TOOL = 3
_CO_OPTIMIZED = 0x1                         # every function; no module or class body


def _start_cprofile():
    import cProfile
    # cProfile counts every resumption of a generator as a call; handlers count frames.
    # A second, independent reference counts generator frames started (PY_START).
    mon = sys.monitoring
    starts = _state["starts"] = {}

    def py_start(code, offset):
        if not code.co_flags & _GENERATOR_FLAGS:
            return mon.DISABLE
        starts[code] = starts.get(code, 0) + 1
    mon.use_tool_id(_REFERENCE_TOOL, "realcode reference")
    mon.register_callback(_REFERENCE_TOOL, mon.events.PY_START, py_start)
    mon.set_events(_REFERENCE_TOOL, mon.events.PY_START)
    prof = cProfile.Profile()
    prof.enable()
    _state["profile"] = prof


def _finish_cprofile():
    prof = _state.pop("profile")
    prof.disable()
    mon = sys.monitoring
    mon.set_events(_REFERENCE_TOOL, 0)
    mon.register_callback(_REFERENCE_TOOL, mon.events.PY_START, None)
    mon.free_tool_id(_REFERENCE_TOOL)
    where = _package_dir()
    frames = _state["generator_frames"] = {}
    for code, n in _state.pop("starts").items():
        if code.co_filename.startswith(where):
            frames[_key(code)] = frames.get(_key(code), 0) + n
    counts = _state["counts"] = {}
    # per code object: pstats merges codes of one file, line and name (two generator
    # expressions on one line) and keeps only the last
    bodies = _state["bodies"] = set()
    for entry in prof.getstats():
        code = entry.code
        if not isinstance(code, str) and code.co_filename.startswith(where):
            if not code.co_flags & _CO_OPTIMIZED:
                bodies.add(_key(code))     # a module or class body: not a function
                continue
            c = counts.setdefault(_key(code), [0, 0])
            c[0] += entry.callcount
            c[1] += entry.callcount


def _apply(update):
    from pyliveupdate.update import UpdateManager
    if not UpdateManager.apply_update(update):
        raise RuntimeError("update not applied: %s" % update.status)
    return update


def _all_updates():
    """Every update of this run (ids count up from 1 in a fresh process)."""
    from pyliveupdate.update import UpdateManager
    found, uid = [], 1
    while (u := UpdateManager.get(uid)) is not None:
        found.append(u)
        uid += 1
    return found


def _start_funcprofiler():
    from pyliveupdate import FuncProfiler, recording
    recording.ensure_started(CONFIG["logdir"])
    source = CONFIG["source"]
    try:
        FuncProfiler.profile([PACKAGE + ".**"], source=source)
    except TypeError:
        # FuncProfiler.profile() has no source= yet (issue 16 item 4): the same update,
        # its source chosen before it is applied
        update = FuncProfiler(PACKAGE + ".**")
        setattr(update, "source" if hasattr(update, "source") else "_source", source)
        _apply(update)


def _finish_funcprofiler():
    from pyliveupdate import recording
    _state["recorder"] = dict(recording.stats())
    recording.stop()


_OWN = os.path.dirname(os.path.abspath(__import__("pyliveupdate").__file__)) + os.sep


def _target_code():
    """The frame a handler was called for: the first frame above it that is not ours."""
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(_OWN)
                             or f.f_code.co_filename == __file__):
        f = f.f_back
    return f.f_code


def _start_instrument():
    from pyliveupdate.update import Instrument
    counts = _state.setdefault("counts", {})

    def begin():
        counts.setdefault(_key(_target_code()), [0, 0])[0] += 1

    def end():
        counts.setdefault(_key(_target_code()), [0, 0])[1] += 1

    update = _apply(Instrument(PACKAGE + ".**", {"func_begin": begin, "func_end": end},
                               source=CONFIG["source"]))
    # these handlers must see every call, however much of the run they take: no budget
    from pyliveupdate import engine
    engine.set_time_budget(update.id, None)


def _module_functions():
    """(module name, function name, function) for every module-level function defined in
    the package's modules."""
    import types
    where = _package_dir()
    for name, module in sorted(sys.modules.items()):
        if module is None or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        for attr, value in sorted(vars(module).items()):
            if (type(value) is types.FunctionType and value.__module__ == name
                    and value.__code__.co_filename.startswith(where)
                    and value.__name__ == attr
                    and value.__code__.co_qualname == attr):   # a def at module level, not
                # a wrapper a decorator factory made and renamed (pyparsing's pep8 synonyms)
                yield name, attr, value


def _own_source_twin(func):
    """The function compiled again from its own source, at its own file and lines, in a
    copy of its module's namespace; None if its source does not give back a function."""
    import inspect
    import textwrap
    import types
    import __future__
    lines, first = inspect.getsourcelines(func)
    src = "\n" * (first - 1) + textwrap.dedent("".join(lines))
    namespace = dict(func.__globals__)
    # The module's __future__ imports (annotations: names defined later stay unevaluated).
    future = 0
    for feature in __future__.all_feature_names:
        future |= getattr(__future__, feature).compiler_flag
    exec(compile(src, func.__code__.co_filename, "exec", func.__code__.co_flags & future,
                 dont_inherit=True), namespace)
    twin = namespace.get(func.__name__)
    return twin if type(twin) is types.FunctionType else None


def _start_redefine(then_revert):
    from pyliveupdate.update import Redefine, UpdateManager
    by_module, skipped = {}, []
    for modname, name, func in _module_functions():
        try:
            twin = _own_source_twin(func)
        except (OSError, TypeError, SyntaxError) as e:
            twin = None
            skipped.append("%s.%s: %s" % (modname, name, e))
        if twin is None:
            skipped.append("%s.%s: its source does not make a plain function" % (modname, name))
            continue
        by_module.setdefault(modname, {})["%s.%s" % (modname, name)] = twin
    _state["redefine_skipped"] = skipped
    _state["redefined"] = sum(len(v) for v in by_module.values())
    for modname, defs in sorted(by_module.items()):
        _apply(Redefine(modname, None, defs))
    if then_revert:
        for update in reversed(_all_updates()):
            if not UpdateManager.revert_update(update.id):
                raise RuntimeError("update %s not reverted: %s" % (update.id, update.status))


MODES = {
    "plain": (None, None),
    "cprofile": (_start_cprofile, _finish_cprofile),
    "funcprofiler": (_start_funcprofiler, _finish_funcprofiler),
    "instrument": (_start_instrument, None),
    "redefine": (lambda: _start_redefine(False), None),
    "redefine-reverted": (lambda: _start_redefine(True), None),
}


# --- pytest hooks ------------------------------------------------------------------

def pytest_collection_finish(session):
    # every mode runs the same tests in the same order from the same random state, so
    # runs can be compared call for call (some suites draw unseeded random inputs)
    random.seed(20240601)
    start, _ = MODES[MODE]
    if start is None:
        return
    try:
        start()
    except Exception:
        _state["errors"].append("applying %s: %s" % (MODE, traceback.format_exc()))
        raise


def pytest_runtest_logreport(report):
    context = getattr(report, "context", None)
    label = "%s:%s" % (report.when, report.outcome)
    if hasattr(report, "wasxfail"):
        label += ":xfail"
    if context is not None:
        label += ":" + str(getattr(context, "msg", "") or "") + str(getattr(context, "kwargs", ""))
    # a subtest's parameters may print an address: not part of the outcome
    label = re.sub(r" at 0x[0-9a-f]+", " at 0x", label)
    _state["outcomes"].setdefault(report.nodeid, []).append(label)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _, finish = MODES[MODE]
    if finish is not None:
        try:
            finish()
        except Exception:
            _state["errors"].append("finishing %s: %s" % (MODE, traceback.format_exc()))
    out = {"outcomes": {k: sorted(v) for k, v in _state["outcomes"].items()},
           "counts": _state.get("counts"), "errors": _state["errors"],
           "recorder": _state.get("recorder"),
           "redefined": _state.get("redefined"),
           "redefine_skipped": _state.get("redefine_skipped"),
           "generator_frames": _state.get("generator_frames"),
           "bodies": sorted(_state.get("bodies", ())),
           "package_files": sorted(_package_files())}
    if MODE not in ("plain", "cprofile"):
        from pyliveupdate import engine
        status = engine.status()
        out["engine"] = {k: status[k] for k in ("sources", "frame_source_refusal",
                                                "handler_errors", "dispatch_errors",
                                                "matcher_errors", "reports")}
        out["updates"] = [{"id": u.id, "status": u.status,
                           "notes": list(getattr(u, "notes", []) or []),
                           "handlers": engine.handler_report(u.id)}
                          for u in _all_updates()]
    with open(CONFIG["out"], "w") as f:
        json.dump(out, f)
