"""Tell waiting updates when a module has been imported (after its code ran).

A finder at the head of ``sys.meta_path`` answers None for every module nobody waits for
(one set lookup per first import). For a module someone waits for, it finds the spec
with the finders after it and wraps that spec's loader's ``exec_module`` (on the loader
instance, which the spec owns), so the callback runs right after the module's code, in
the importing thread, before the importer uses it. A module whose loader cannot be
wrapped is noticed at the next import of anything (or at the next wait()).
"""
import sys
import threading

__all__ = ["wait_for", "forget", "installed"]

_lock = threading.RLock()
_names = {}          # module name -> [callback(module)]
_prefixes = {}       # package name -> [callback(module)] for the package and everything below
_local = threading.local()
_in_flight = set()   # modules whose wrapped loader will tell us itself


def _wanted(name):
    if name in _names:
        return True
    if _prefixes:
        head = name
        while head:
            if head in _prefixes:
                return True
            head = head.rpartition(".")[0]
    return False


def _callbacks(name):
    with _lock:
        found = list(_names.pop(name, ()))
        head = name
        while head:
            found += _prefixes.get(head, ())
            head = head.rpartition(".")[0]
        return found


def _arrived(name, module):
    for callback in _callbacks(name):
        try:
            callback(module)
        except BaseException:  # noqa: BLE001 - never into the importer
            pass


def _initialized(name):
    """In sys.modules and done running its code (an import in progress puts the module
    there first, with __spec__._initializing set)."""
    module = sys.modules.get(name)
    if module is None or name in _in_flight:
        return False
    try:
        spec = vars(module).get("__spec__")
    except TypeError:
        return True
    return not getattr(spec, "_initializing", False)


def _sweep():
    """Modules waited for by name that were imported without us seeing them."""
    with _lock:
        done = [n for n in _names if _initialized(n)]
    for name in done:
        _arrived(name, sys.modules[name])


class _PostImportFinder:
    """Finds nothing itself: it wraps the loader of the modules waited for."""

    def find_spec(self, name, path=None, target=None):
        if not _wanted(name):
            # The one cost every import pays: a set lookup, and while modules are waited
            # for by name, a check that none slipped in unseen (loaders we cannot wrap).
            if _names and not getattr(_local, "busy", False):
                for waited in list(_names):
                    if waited in sys.modules and _initialized(waited):
                        _local.busy = True
                        try:
                            _sweep()
                        finally:
                            _local.busy = False
                        break
            return None
        if getattr(_local, "busy", False):
            return None
        _local.busy = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        finally:
            _local.busy = False
        if spec is not None:
            _wrap(spec, name)
        return spec

    def invalidate_caches(self):
        pass


def _wrap(spec, name):
    loader = spec.loader
    if loader is None or isinstance(loader, type) or not hasattr(loader, "__dict__") \
            or "exec_module" in vars(loader) or not hasattr(loader, "exec_module"):
        return
    original = loader.exec_module

    def exec_module(module):
        try:
            original(module)
        finally:
            vars(loader).pop("exec_module", None)
            _in_flight.discard(name)
        _arrived(name, module)
    _in_flight.add(name)
    loader.exec_module = exec_module


_finder = _PostImportFinder()


def installed():
    return _finder in sys.meta_path


def _install():
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def wait_for(name, callback, below=False):
    """callback(module) once ``name`` is imported (below=True: ``name`` and every
    module under it, each time one is imported, until forget())."""
    with _lock:
        table = _prefixes if below else _names
        table.setdefault(name, []).append(callback)
        _install()
    if not below and _initialized(name):
        _sweep()


def forget(callback):
    """Stop waiting with ``callback`` (for whatever it waited)."""
    with _lock:
        for table in (_names, _prefixes):
            for name in list(table):
                table[name] = [c for c in table[name] if c != callback]
                if not table[name]:
                    del table[name]
