"""Start pyliveupdate's stub in a Python process that never imported it.

Two callers, no third-party code, and nothing imported from pyliveupdate before it is
chosen:

* ``pylu-attach`` copies this file next to a parameter file and makes the target run
  ``attach(params_path)`` at a safe point (PEP 768's ``sys.remote_exec`` on 3.14, a
  debugger-driven call on 3.12/3.13). That call happens in whatever thread reached the
  safe point, so it only starts a thread and returns; the imports, the stub and the
  report to pylu-attach happen in that new thread.
* ``pylu-run`` puts this directory on PYTHONPATH; its ``sitecustomize`` calls
  ``autostart()`` before the program's own code runs.

The pyliveupdate of the process's own environment is used when it has one. Otherwise the
one given by the caller is loaded from its own directory (``sys.path`` is not touched, so
nothing else of the caller's environment becomes importable), if its C core was built for
this interpreter.
"""
import os
import sys

PACKAGE = "pyliveupdate"
ATTACH_THREAD = "pyliveupdate-attach"


class LaunchError(Exception):
    """The stub cannot be started in this process; the message says why."""


# --- which pyliveupdate ------------------------------------------------------------------

def own_package_spec():
    """The spec of the pyliveupdate this process's environment would import, or None.

    Asks the import system's finders directly: nothing is imported or executed."""
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(PACKAGE, None)
        except Exception:  # noqa: BLE001 - a broken finder must not stop the search
            continue
        if spec is not None:
            return spec
    return None


def core_mismatch(package_dir):
    """Why the C core in package_dir cannot load in this interpreter, or None if it can."""
    import importlib.machinery
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    try:
        cores = [n for n in os.listdir(package_dir) if n.startswith("_engine.")]
    except OSError as e:
        return "cannot read %s: %s" % (package_dir, e.strerror or e)
    if any(n.endswith(s) for n in cores for s in suffixes):
        return None
    built = ", ".join(sorted(c[len("_engine"):] for c in cores)) or "nothing (not built)"
    return ("its C core is built for %s; this Python %d.%d loads %s"
            % (built, sys.version_info[0], sys.version_info[1], suffixes[0]))


def load_package(fallback_dir=None):
    """Import pyliveupdate; return (module, where) with where "target" or "attacher".

    fallback_dir: the package directory to load when this environment has none."""
    module = sys.modules.get(PACKAGE)
    if module is not None:
        return module, "target"
    if own_package_spec() is not None:
        import importlib
        return importlib.import_module(PACKAGE), "target"
    if not fallback_dir:
        raise LaunchError("this process's environment has no pyliveupdate (install it there, "
                          "or attach from an environment of the same Python version)")
    why = core_mismatch(fallback_dir)
    if why is not None:
        raise LaunchError("this process's environment has no pyliveupdate, and the attaching "
                          "one (%s) cannot be loaded here: %s" % (fallback_dir, why))
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        PACKAGE, os.path.join(fallback_dir, "__init__.py"),
        submodule_search_locations=[fallback_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(PACKAGE, None)
        raise
    return module, "attacher"


# --- the stub ------------------------------------------------------------------------------

def running_stub():
    """The stub already started in this process (pylu-run, the program itself), or None."""
    stub_module = sys.modules.get(PACKAGE + ".stub")
    for stub in list(getattr(stub_module, "_started", ()) or ()):
        thread = getattr(stub, "_thread", None)
        if thread is not None and thread.is_alive():
            return stub
    return None


def start_stub(options, fallback_dir=None):
    """Start the stub unless one runs; return a dict describing what was done."""
    module, where = load_package(fallback_dir)
    info = {"package": where, "package_path": os.path.dirname(module.__file__),
            "version": getattr(module, "__version__", "?")}
    stub = running_stub()
    if stub is not None:
        info.update(stub="already running",
                    controller="%s:%d" % tuple(stub.address[:2]))
        return info, stub
    from pyliveupdate.stub import UpdateStub
    stub = UpdateStub(controller=options.get("controller"), token=options.get("token"),
                      tls=options.get("tls"), retry_max=options.get("retry_max", 2.0))
    stub.start()
    info.update(stub="started", controller="%s:%d" % tuple(stub.address[:2]))
    return info, stub


# --- pylu-attach ---------------------------------------------------------------------------

def attach(params_path):
    """Entry of pylu-attach, called in the thread that reached a safe point.

    Starts a thread that does the work and returns at once; never raises (an exception
    escaping here would be printed by the program, and SystemExit would end it)."""
    try:
        params = _read_params(params_path)
    except FileNotFoundError:
        _remove_withdrawn(os.path.dirname(params_path))
        return
    except BaseException:  # noqa: BLE001 - unreadable: pylu-attach reports that no answer came
        return
    try:
        if "threading" not in sys.modules and not _on_main_thread():
            # Importing threading first from another thread makes it take that thread for
            # the main one (3.12); ask pylu-attach for the main thread instead.
            _write_result(params["result"], {"retry": "main thread"})
            return
        import threading
        threading.Thread(target=_attach_in_thread, args=(params,), name=ATTACH_THREAD,
                         daemon=True).start()
    except BaseException as e:  # noqa: BLE001
        _write_result(params["result"], {"ok": False, "error": "cannot start: %r" % (e,)})


def _on_main_thread():
    import _thread
    main_ident = getattr(_thread, "_get_main_thread_ident", None)  # 3.13+
    if main_ident is not None:
        return _thread.get_ident() == main_ident()
    return _thread.get_native_id() == os.getpid()


def _remove_withdrawn(directory):
    """pylu-attach gave up and withdrew its parameters (3.14 runs the script later):
    leave nothing behind."""
    if not os.path.basename(directory).startswith("pylu-attach-"):
        return
    try:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    except OSError:
        pass


def _read_params(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    os.unlink(path)   # it holds the token
    params = eval(text, {"__builtins__": {}})  # a dict literal written by pylu-attach
    if not isinstance(params, dict):
        raise ValueError("bad parameters")
    return params


def _attach_in_thread(params):
    result = {"ok": False, "pid": os.getpid(), "python": sys.version.split()[0]}
    try:
        info, stub = start_stub(params, params.get("fallback"))
        result.update(info, ok=True)
        wait = float(params.get("connect_wait") or 0)
        result["connected"] = bool(wait and stub.connected.wait(wait))
    except LaunchError as e:
        result["error"] = str(e)
    except BaseException as e:  # noqa: BLE001 - reported to pylu-attach, never raised here
        import traceback
        result["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
    _write_result(params["result"], result)


def _write_result(path, result):
    import json
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(result, f)
        os.rename(tmp, path)
    except OSError:
        pass  # pylu-attach reports that no answer came


# --- pylu-run ------------------------------------------------------------------------------

def autostart():
    """Entry of pylu-run's sitecustomize: start the stub with the options in the environment.

    Silent in interpreters older than 3.12 (a subprocess of another version); says once on
    stderr why the stub could not start anywhere else."""
    if os.environ.get("PYLU_RUN") != "1" or sys.version_info < (3, 12):
        return
    try:
        start_stub({}, os.environ.get("PYLU_RUN_PACKAGE") or None)
    except LaunchError as e:
        sys.stderr.write("[pyliveupdate] pylu-run: stub not started in %s: %s\n"
                         % (sys.executable, e))
    except Exception as e:  # noqa: BLE001 - never stop the program from starting
        sys.stderr.write("[pyliveupdate] pylu-run: stub not started: %r\n" % (e,))
