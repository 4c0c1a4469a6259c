"""Runs the controller's commands inside the program: the stub's namespace and executor.

A command is Python source. It runs in a namespace of its own (never the program's
builtins) that holds the predefined modifications (FP, LP, FD, LD, VD, LU, ...), with
this thread's prints captured for the reply; the value of a final expression is echoed
as in the Python console. Errors are returned as errors, with the traceback of the
command only. Updates created by a command get ids from the block the controller gave,
so an id means the same update in every process.
"""
import ast
import builtins
import contextlib
import io
import linecache
import os
import sys
import threading
import time
import traceback

from . import introspect, state

MAX_OUTPUT = 4 * 1024 * 1024
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _ThreadRouter:
    """Stands in for sys.stdout/sys.stderr: the capturing thread's writes go to its
    buffer, every other thread's writes go to the stream that was there before."""
    # Slots, not an instance dict: program threads write through this object while the
    # stub swaps it in and out (on 3.12 the dict-based version was seen, rarely, with
    # no attributes at all in a program thread, and __getattr__ then recursed).
    __slots__ = ("_pylu_original", "_pylu_captures")

    def __init__(self, original, captures):
        self._pylu_original = original
        self._pylu_captures = captures

    def write(self, text):
        buf = self._pylu_captures.get(threading.get_ident())
        if buf is not None:
            return buf.write(text)
        return self._pylu_original.write(text)

    def flush(self):
        if threading.get_ident() not in self._pylu_captures:
            return self._pylu_original.flush()
        return None

    def __getattr__(self, name):
        if name.startswith("_pylu_"):
            raise AttributeError(name)
        return getattr(self._pylu_original, name)


def uncaptured(stream):
    """The stream a command's capture stands in for (the program's own), else stream."""
    return stream._pylu_original if isinstance(stream, _ThreadRouter) else stream


class _Capture:
    """Per-thread capture of sys.stdout and sys.stderr."""
    _lock = threading.Lock()
    _captures = {}
    # Every router ever installed stays alive: CPython 3.12's print() holds only a
    # borrowed reference to sys.stdout while it writes, so a router freed when a command
    # ends could be written to afterwards (seen as a crash of the program's print()).
    # There is one router per stream the program had, so this stays tiny.
    _routers = {}
    _retired = []

    @classmethod
    @contextlib.contextmanager
    def this_thread(cls):
        buf = io.StringIO()
        with cls._lock:
            for name in ("stdout", "stderr"):
                current = getattr(sys, name)
                if not isinstance(current, _ThreadRouter):
                    router = cls._routers.get(id(current))
                    if router is None or router._pylu_original is not current:
                        if router is not None:
                            cls._retired.append(router)
                        router = cls._routers[id(current)] = _ThreadRouter(current, cls._captures)
                    setattr(sys, name, router)
            cls._captures[threading.get_ident()] = buf
        try:
            yield buf
        finally:
            with cls._lock:
                cls._captures.pop(threading.get_ident(), None)
                if not cls._captures:
                    for name in ("stdout", "stderr"):
                        current = getattr(sys, name)
                        if isinstance(current, _ThreadRouter):
                            setattr(sys, name, current._pylu_original)


def _predefined_names():
    """The names a command can use without importing anything."""
    from . import modifications
    names = dict(modifications.predefined())
    names["show"] = introspect.show
    return names


class CommandRunner:
    def __init__(self):
        self._namespace = None
        self._lock = threading.Lock()
        self.executed = set()  # controller sequence numbers of commands run here (fork-inherited)
        self.definitions = state.Definitions()
        self._running = None   # thread ident of the command running now

    def after_fork(self):
        self._lock = threading.Lock()
        _Capture._lock = threading.Lock()
        _Capture._captures.clear()
        _Deadline.after_fork()

    def interrupt(self):
        """Interrupt the command running now, if any (the operator's Ctrl-C)."""
        tid = self._running
        if tid is not None:
            _set_async_exc(tid, CommandInterrupted)

    def running_in_this_thread(self):
        """Whether the caller is a command this runner is running."""
        return self._running == threading.get_ident()

    def idle(self):
        """No command is running (a moment's answer, for the state poll)."""
        return not self._lock.locked()

    @property
    def namespace(self):
        if self._namespace is None:
            ns = {"__name__": "__pylu__", "__builtins__": builtins}
            try:
                ns.update(_predefined_names())
            except Exception as e:  # noqa: BLE001 - keep the channel usable
                ns["__pylu_setup_error__"] = repr(e)
            self._namespace = ns
        return self._namespace

    def handle(self, msg):
        op = msg.get("op")
        if op == "exec":
            return self.run(msg)
        if op == "sync":
            return self.sync(msg)
        if op == "ping":
            return {"op": "pong", "updates": self.update_state()}
        if op == "complete":
            text = msg.get("text")
            if not isinstance(text, str):
                return {"op": "result", "ok": False, "error": "complete: no text"}
            return {"op": "completions", "matches": introspect.complete(text, self.namespace)}
        return {"op": "result", "ok": False, "output": "",
                "error": "unknown operation %r (controller newer than this stub?)" % (op,)}

    def run(self, msg):
        src = msg.get("src")
        if not isinstance(src, str):
            return {"op": "result", "ok": False, "output": "", "error": "exec: no source"}
        base = msg.get("base")
        seq = msg.get("seq")
        filename = msg.get("filename") or "<controller>"
        # Keep the source, so tracebacks and show()/inspect can print code defined by a
        # command or a patch file (such names start with '<', and linecache keeps them).
        if filename.startswith("<"):
            linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        limit = msg.get("timeout")
        limit = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        with self._lock:
            self._running = threading.get_ident()
            try:
                ok, text, error, used = self._execute(src, filename, base, msg.get("echo", True),
                                                      limit)
            finally:
                self._running = None
                _set_async_exc(threading.get_ident(), None)   # an interrupt that came late
            if isinstance(seq, (str, int)):
                self.executed.add(seq)
            try:
                used = self._settle(msg, ok, used)
            except Exception as e:  # noqa: BLE001 - the command's own outcome comes first
                error = (error + "\n" if error else "") + "internal error after the command: %r" % (e,)
        if len(text) > MAX_OUTPUT:
            text = text[:MAX_OUTPUT] + "\n[... output truncated at %d bytes]\n" % MAX_OUTPUT
        return {"op": "result", "ok": ok, "output": text, "error": error, "used": used,
                "updates": self.update_state()}

    def _settle(self, msg, ok, used):
        """After a command: a failed one gives its ids back; a replayed one drops what the
        controller no longer has active and keeps the time to live the others have left.
        The definition of what it created is kept. Returns the ids it still uses."""
        base = msg.get("base")
        if not ok:
            used = state.discard_unapplied(base, used)
        else:
            skip = [i for i in msg.get("skip") or () if isinstance(i, int)]
            if skip:
                state.revert_quietly(skip)
            ttl = msg.get("ttl")
            if isinstance(ttl, list):
                state.shorten_ttl({int(i): s for i, s in ttl})
        self.definitions.record(msg, used)
        return used

    def sync(self, msg):
        """Bring this process to the controller's desired state: revert, re-apply, then
        run the definitions it lacks (each as a replayed exec). One reply for all."""
        with self._lock, _Capture.this_thread() as buf:
            manager = state.update_manager()
            for uid in msg.get("revert") or ():
                manager.revert_update(uid)
            for uid in msg.get("reapply") or ():
                manager.apply_update(uid)
            text = buf.getvalue()
        results = []
        for item in msg.get("run") or ():
            if isinstance(item, dict):
                reply = self.run(item)
                error = (reply.get("error") or "").strip().splitlines()
                results.append({"seq": item.get("seq"), "ok": reply["ok"], "used": reply.get("used"),
                                "error": error[-1] if error else None})
        return {"op": "synced", "ok": all(r["ok"] for r in results), "output": text[-4096:],
                "results": results, "updates": self.update_state()}

    def _execute(self, src, filename, base, echo=True, limit=None):
        ns = self.namespace
        used = 0
        with _Capture.this_thread() as buf:
            try:
                tree = compile(src, filename, "exec", ast.PyCF_ONLY_AST)
                with _id_block(base) as block:
                    try:
                        with _Deadline(limit):
                            _run_tree(tree, filename, ns, echo)
                    finally:
                        used = block.used
                return True, buf.getvalue(), None, used
            except SystemExit:
                return False, buf.getvalue(), "SystemExit: commands may not exit the program", used
            except BaseException as e:  # noqa: BLE001 - report, never propagate
                return False, buf.getvalue(), _format_error(e, filename), used

    def update_state(self):
        return state.report()


def _run_tree(tree, filename, ns, echo=True):
    body = tree.body
    last = body[-1] if echo and body and isinstance(body[-1], ast.Expr) else None
    if last is not None:
        body = body[:-1]
    if body:
        exec(compile(ast.Module(body=body, type_ignores=[]), filename, "exec"), ns)
    if last is not None:
        value = eval(compile(ast.Expression(body=last.value), filename, "eval"), ns)
        if value is not None:
            ns["_"] = value
            print(repr(value))


class CommandTimeout(BaseException):
    """Raised inside a command that outlived the controller's wait for it (a
    BaseException, so the command's own `except Exception` does not swallow it)."""

    def __str__(self):
        return "the command ran longer than the controller waits for it, and was interrupted"


class CommandInterrupted(BaseException):
    """Raised inside a command the operator interrupted (Ctrl-C at the controller)."""

    def __str__(self):
        return "interrupted by the operator"


class _Deadline:
    """Interrupts this thread's command once `limit` seconds have passed, so a command
    stuck in a Python loop (a patch that never finishes importing) does not leave the
    stub deaf. Code blocked inside one C call is interrupted when that call returns.

    One watchdog thread serves every command (started on first use, again after a
    fork): a thread per command would come and go with every command the stub runs."""

    _cv = threading.Condition()
    _pending = {}            # id(deadline) -> (monotonic deadline, thread ident)
    _thread = None

    def __init__(self, limit):
        self.limit = limit

    def __enter__(self):
        if self.limit is None:
            return self
        cls = _Deadline
        with cls._cv:
            cls._pending[id(self)] = (time.monotonic() + self.limit, threading.get_ident())
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._watch, name="pyliveupdate-deadline",
                                               daemon=True)
                cls._thread.start()
            cls._cv.notify()
        return self

    def __exit__(self, *exc_info):
        if self.limit is None:
            return False
        with _Deadline._cv:
            if _Deadline._pending.pop(id(self), None) is None:
                # It fired: an interruption not yet delivered must not land later.
                _set_async_exc(threading.get_ident(), None)
        return False

    @classmethod
    def _watch(cls):
        with cls._cv:
            while cls._thread is threading.current_thread():  # until stop()
                now = time.monotonic()
                for key, (due, tid) in list(cls._pending.items()):
                    if due <= now:
                        del cls._pending[key]
                        _set_async_exc(tid, CommandTimeout)
                soonest = min((due for due, _ in cls._pending.values()), default=None)
                cls._cv.wait(None if soonest is None else max(0.0, soonest - now))

    @classmethod
    def after_fork(cls):
        cls._cv = threading.Condition()
        cls._pending = {}
        cls._thread = None

    @classmethod
    def stop(cls):
        """End the watchdog thread (detach); a later command starts it again."""
        with cls._cv:
            thread, cls._thread = cls._thread, None
            cls._cv.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)


def stop_helper_thread():
    """End the command-deadline thread (pyliveupdate.detach)."""
    _Deadline.stop()


def _set_async_exc(tid, exc):
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                               None if exc is None else ctypes.py_object(exc))


class _NoBlock:
    used = 0


@contextlib.contextmanager
def _id_block(base):
    if base is None:
        yield _NoBlock()
        return
    block_of = None
    try:
        from .update import UpdateManager
        block_of = UpdateManager.id_block
    except (ImportError, AttributeError):
        pass
    if block_of is None:
        yield _NoBlock()
        return
    with block_of(int(base)) as block:
        yield block


def _format_error(exc, filename):
    if isinstance(exc, SyntaxError):
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    te = traceback.TracebackException.from_exception(exc)
    # Hide this module's frames: the operator wants the frames of the command. Refused
    # input (our ValueErrors: UpdateError, ...) is explained by its message, so the
    # library's own frames are noise there too.
    refused = isinstance(exc, ValueError) and type(exc).__module__.startswith(__package__ + ".")
    frames = [f for f in te.stack if f.filename != __file__
              and not (refused and (f.filename.startswith(_PACKAGE_DIR)
                                    or f.filename == contextlib.__file__))]
    te.stack = traceback.StackSummary.from_list(frames)
    return "".join(te.format()).rstrip()
