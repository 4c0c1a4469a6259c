"""UpdateStub: the part of pyliveupdate that lives in the program and dials the controller.

    from pyliveupdate import UpdateStub
    UpdateStub().start()

A daemon thread dials the controller (argument, $PYLU_CONTROLLER, or 127.0.0.1:50050),
authenticates both ways (pyliveupdate.protocol), then runs the controller's commands in
a namespace of its own that holds the predefined modifications. While no controller is
there it retries with exponential backoff; it never listens on a port. Forked children
(prefork servers) start their own connection.

On connecting it says who it is (pid, program, the instance it belongs to: identity.py)
and what it holds (state.py); the controller answers with a sync that brings it to the
desired state. start() waits for that first sync, bounded, so a worker spawned after a
patch serves patched code from its first request. Keepalives both ways notice a peer
that froze or vanished (protocol.py); changes nobody asked for (a handler switched off,
a pending update applied on import, a time to live ended) are sent as events.
"""
import atexit
import collections
import os
import queue
import random
import socket
import sys
import threading
import time
import weakref

from . import command, identity, output, protocol, state
from ._engine import handoff_release, handoff_wait_readable

DEFAULT_CONTROLLER = "127.0.0.1:50050"
STREAM_QUEUE_MAX = 10000
DEFAULT_SYNC_WAIT = 1.0
STREAM_BATCH_BYTES = 1 << 20       # of output text per message, well under the frame limit
STATE_POLL_INTERVAL = 1.0
STOP_WAIT = 10.0                   # for the command in progress when the stub stops
EXIT_REPLY_WAIT = 2.0              # at interpreter exit: for the reply of a command in progress
# Changes of an update's status that no command made: reported as events.
_SPONTANEOUS = {("applied", "disabled"): "disabled", ("applied", "reverted"): "expired",
                ("disabled", "reverted"): "expired", ("pending", "applied"): "applied",
                ("pending", "failed"): "failed"}

_started = weakref.WeakSet()
_hooks_installed = False


class UpdateStub:
    """Connects this process to a pylu-controller.

    controller: "HOST:PORT" (default $PYLU_CONTROLLER or 127.0.0.1:50050).
    token:      the shared secret (default $PYLU_TOKEN or ~/.config/pyliveupdate/token).
    tls:        None/False (plain TCP), True (TLS, identity proven by the token), or the
                path of a CA file to verify the controller's certificate ($PYLU_TLS=1 or
                $PYLU_TLS_CA enable it from the environment).
    retry_max:  longest pause between connection attempts, in seconds.
    sync_wait:  how long start() waits for the first sync with the controller, so the
                program runs with the active updates from its start (default 1 s or
                $PYLU_SYNC_WAIT; 0: do not wait). It never waits when no controller
                answers, nor in a forked child (which inherits its parent's updates).
    """

    def __init__(self, controller=None, token=None, tls=None, retry_max=2.0, name=None,
                 sync_wait=None):
        address = controller or os.environ.get("PYLU_CONTROLLER") or DEFAULT_CONTROLLER
        self.address = protocol.parse_address(address)
        self._token_arg = token
        if tls is None:
            tls = os.environ.get("PYLU_TLS_CA") or os.environ.get("PYLU_TLS") in ("1", "true", "yes")
        self.tls = tls
        self.retry_max = float(retry_max)
        self.name = name
        if sync_wait is None:
            sync_wait = float(os.environ.get("PYLU_SYNC_WAIT") or DEFAULT_SYNC_WAIT)
        self.sync_wait = max(0.0, float(sync_wait))
        self.runner = command.CommandRunner()
        self.identity = None
        self._reset_runtime()

    def _reset_runtime(self):
        self._stop = threading.Event()
        self._thread = None
        self._channel = None
        self._queue = collections.deque()
        self._queue_cv = threading.Condition()
        self._queue_dropped = 0
        self._started_at = time.time()
        self.connected = threading.Event()
        # Set by the first sync, or by the first attempt that found no controller.
        self.first_sync = threading.Event()
        self._events = collections.deque(maxlen=1000)
        self._reported = {}          # update id -> status the controller last heard of
        self._answering = 0          # messages taken whose reply is not out yet
        self._last_poll = 0.0
    # --- life cycle ---------------------------------------------------------

    def start(self, wait=True):
        """Start the background thread (idempotent) and wait for the first sync (at most
        sync_wait seconds; wait=False: return at once). Returns self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        _install_process_hooks()
        import encodings.idna  # noqa: F401  (getaddrinfo needs it; importing it in a forked child can fail)
        # Import what commands use now, in the caller's thread: a prefork server that forks
        # while the stub thread is half-way through an import leaves the child a partially
        # initialised module ("cannot import name ... partially initialized module").
        from . import engine, modifications, recording, update  # noqa: F401
        _started.add(self)
        self.identity = identity.current(self.identity)
        _subscribe_update_events()
        self._thread = threading.Thread(target=self._run, name="pyliveupdate-stub", daemon=True)
        self._thread.start()
        if wait and self.sync_wait:
            self.first_sync.wait(self.sync_wait)
        return self

    def stop(self, timeout=5.0):
        """Disconnect and end the thread (orderly shutdown, detach). The updates stay as
        they are; start() connects again. Called from a command, the connection ends
        right after that command's reply is sent."""
        self._stop.set()
        _started.discard(self)
        channel = self._channel
        if channel is not None and not self.runner.running_in_this_thread():
            try:
                channel.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._queue_cv:
            self._queue_cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread() \
                and not self.runner.running_in_this_thread():
            self._thread.join(timeout)

    def _after_fork_in_child(self):
        if self._channel is not None:
            try:  # our copy of the parent's socket: close it, but never shut it down
                self._channel.sock.close()
            except OSError:
                pass
        self._reset_runtime()
        self.runner.after_fork()
        self.start(wait=False)  # the child holds what its parent held: nothing to wait for

    # --- connection loop ----------------------------------------------------

    def _current(self, stop):
        # A fork inside a command leaves this loop running in the child, next to the
        # child's own new connection (a new _stop): the old loop must end and leave the
        # new connection alone.
        return stop is self._stop and not stop.is_set()

    def _run(self):
        delay = 0.05
        token = None
        warned = set()
        stop = self._stop
        while self._current(stop):
            try:
                if token is None:
                    token = protocol.load_token(self._token_arg)
                sock = self._dial()
            except protocol.TokenError as e:
                self._warn_once(warned, "token", "cannot authenticate: %s" % e)
                self.first_sync.set()
                delay = self.retry_max
            except OSError:
                self.first_sync.set()   # no controller answers: start() must not wait
            except Exception as e:  # noqa: BLE001 - the thread must outlive any surprise
                self._warn_once(warned, type(e), "cannot connect: %r" % e)
            else:
                try:
                    delay = 0.05
                    self._serve(sock, token, stop)
                except protocol.AuthError as e:
                    self._warn_once(warned, "auth", "controller at %s:%d rejected: %s"
                                    % (self.address[0], self.address[1], e))
                    delay = max(self.retry_max, 5.0)  # a wrong token will not fix itself soon
                except (OSError, EOFError, protocol.ProtocolError):
                    pass
                except BaseException as e:  # noqa: BLE001 - SystemExit or a stray async
                    # exception must not end the stub's thread: it would never reconnect
                    self._warn_once(warned, type(e), "connection failed: %r" % e)
                finally:
                    self.first_sync.set()
                    if stop is self._stop:
                        self._disconnect()
            stop.wait(delay * (0.75 + random.random() / 2))
            delay = min(self.retry_max, delay * 2)

    def _warn_once(self, warned, key, message):
        if key not in warned:
            warned.add(key)
            sys.stderr.write("[pyliveupdate] %s\n" % message)

    def _dial(self):
        sock = socket.create_connection(self.address, timeout=protocol.HANDSHAKE_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = _tls_context(self.tls).wrap_socket(sock, server_hostname=self.address[0])
        except BaseException:
            sock.close()
            raise
        return sock

    def _serve(self, sock, token, stop):
        channel = protocol.client_handshake(sock, token)
        channel.start_liveness()
        channel.wait_readable = handoff_wait_readable
        self._channel = channel
        hello = self.hello()
        self._reported = state.status_map(hello["updates"])
        channel.send(hello)
        writer = threading.Thread(target=self._write_stream, args=(channel,),
                                  name="pyliveupdate-stub-out", daemon=True)
        output.add_stream(self._on_output)
        writer.start()
        self.connected.set()
        # This thread only reads, so keepalives and interrupts are heard while a command
        # runs; commands run one at a time, in order, in the executor thread.
        inbox = queue.SimpleQueue()
        executor = threading.Thread(target=self._execute_loop, args=(channel, inbox, stop),
                                    name="pyliveupdate-stub-run", daemon=True)
        executor.start()
        try:
            while self._current(stop):
                msg = channel.recv()
                op = msg.get("op")
                if op == "ka":
                    handoff_release()
                    continue
                if op == "interrupt":
                    self.runner.interrupt()
                    handoff_release()
                    continue
                inbox.put(msg)          # the executor releases the GIL lender when answered
        finally:
            handoff_release()
            inbox.put(None)
            if stop.is_set() and stop is self._stop:
                # An orderly stop: the command in progress (perhaps the one that called
                # stop()) still gets to send its reply before the link is closed.
                executor.join(STOP_WAIT)

    def _execute_loop(self, channel, inbox, stop):
        while True:
            msg = inbox.get()
            if msg is None or not self._current(stop):
                return
            op = msg.get("op")
            self._answering += 1        # until the reply is out (a command may end the program)
            try:
                if op in ("exec", "sync"):
                    self._note_changes()    # what changed by itself before this command
                try:
                    reply = self.runner.handle(msg)
                except BaseException as e:  # noqa: BLE001 - answer rather than drop the link
                    reply = {"op": "result", "ok": False, "output": "",
                             "error": "internal error in the stub: %r" % (e,)}
                if stop is not self._stop:
                    return              # forked inside the command: this is the child
                if reply is not None:
                    reply.setdefault("id", msg.get("id"))
                    self._send_reply(channel, reply)
                if stop.is_set():       # stop() called by the command: leave after its reply
                    channel.close()
                    return
            except (OSError, protocol.ProtocolError, ValueError):
                return                  # the link is gone; the reader reconnects
            finally:
                self._answering -= 1
                handoff_release()
                if op == "sync":
                    self.first_sync.set()

    def _note_changes(self):
        """Report status changes nobody asked for (between commands: a revert then is
        an expiry)."""
        try:
            updates = self.runner.update_state()
        except Exception:  # noqa: BLE001 - reporting never stops a command
            return
        current = state.status_map(updates)
        reasons = {row[0]: row[2] for row in updates["states"]}
        events = [[uid, kind, reasons.get(uid)] for uid, kind in _changes(self._reported, current)]
        self._reported = current
        if events and self._channel is not None:
            # Sent from here, so the controller hears of them before the command's reply.
            self._channel.send({"op": "event", "events": events, "updates": updates})

    def _send_reply(self, channel, reply):
        if isinstance(reply.get("updates"), dict):
            # No command switches handlers off or applies pending updates: if the reply
            # shows that, it happened by itself and is reported as such. (A revert may be
            # the command's: only the poll, between commands, calls that an expiry.)
            current = state.status_map(reply["updates"])
            reasons = {row[0]: row[2] for row in reply["updates"]["states"]}
            for uid, kind in _changes(self._reported, current):
                if kind != "expired":
                    self._on_update_event(kind, uid, reasons.get(uid))
            self._reported = current
        try:
            channel.send(reply)
        except protocol.MessageTooLarge as e:
            channel.send({"op": reply.get("op"), "id": reply.get("id"), "ok": False,
                          "output": "", "error": "the reply was not sent: %s" % e})

    def _disconnect(self):
        output.remove_stream(self._on_output)
        self.connected.clear()
        channel, self._channel = self._channel, None
        with self._queue_cv:
            self._queue.clear()
            self._queue_cv.notify_all()
        if channel is not None:
            channel.close()

    def hello(self):
        updates = self.runner.update_state()
        return {
            "op": "hello",
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "host": socket.gethostname(),
            "argv": list(sys.argv),
            "program": self.name or _program_name(),
            "python": sys.version.split()[0],
            "started": self._started_at,
            **self.identity.fields(),
            "executed": sorted(self.runner.executed),
            "updates": updates,
            "definitions": self.runner.definitions.held(updates["known"]),
        }

    # --- live output stream -------------------------------------------------

    def _on_output(self, update_id, kind, text):
        with self._queue_cv:
            if len(self._queue) >= STREAM_QUEUE_MAX:
                self._queue_dropped += 1
                return
            self._queue.append((update_id, kind, text))
            self._queue_cv.notify()

    def _on_update_event(self, kind, update_id, text):
        with self._queue_cv:
            self._events.append((update_id, kind, text))
            self._queue_cv.notify()

    def _write_stream(self, channel):
        """Live output, events and keepalives, in this connection's own thread (the
        connection thread may be busy in a command for a long time)."""
        try:
            while self._channel is channel and not self._stop.is_set():
                with self._queue_cv:
                    if not self._queue and not self._events:
                        self._queue_cv.wait(1.0)
                    batch = list(self._queue)
                    self._queue.clear()
                    events = list(self._events)
                    self._events.clear()
                    dropped, self._queue_dropped = self._queue_dropped, 0
                if not batch:
                    output.report_drops()
                if dropped:
                    batch.append((None, output.TEXT_ENGINE, "[pyliveupdate] %d line(s) of output "
                                  "dropped: the controller did not keep up" % dropped))
                for part in _batches(batch):
                    channel.send({"op": "out", "lines": part})
                self._send_events(channel, events)
                if channel.keepalive_due():
                    channel.send_keepalive()
        except (OSError, protocol.ProtocolError, ValueError):
            return

    def _send_events(self, channel, events):
        """Events the updates layer published, and status changes seen by polling (a
        handler switched off by the engine, a time to live that ended)."""
        now = time.monotonic()
        if not events and now - self._last_poll < STATE_POLL_INTERVAL:
            return
        self._last_poll = now
        # A command in progress reports its own changes in its reply.
        if not self.runner.idle():
            if not events:
                return
            updates = None
        else:
            updates = self.runner.update_state()
            current = state.status_map(updates)
            reasons = {row[0]: row[2] for row in updates["states"]}
            told = {(uid, kind) for uid, kind, _ in events}
            events.extend((uid, kind, reasons.get(uid)) for uid, kind in
                          _changes(self._reported, current) if (uid, kind) not in told)
            self._reported = current
        if events:
            channel.send({"op": "event", "events": [list(e) for e in events], "updates": updates})


def _changes(before, after):
    """(id, event kind) of the status changes that no command makes."""
    for uid, status in after.items():
        kind = _SPONTANEOUS.get((before.get(uid), status))
        if kind is not None:
            yield uid, kind


def _batches(lines):
    """Lists of lines of at most STREAM_BATCH_BYTES of text each (a line is at most
    output.MAX_LINE)."""
    part, size = [], 0
    for line in lines:
        n = len(line[2])
        if part and size + n > STREAM_BATCH_BYTES:
            yield part
            part, size = [], 0
        part.append(line)
        size += n
    if part:
        yield part


def _program_name():
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name and name.endswith(".__main__"):   # python -m gunicorn: the package, not __main__.py
        return name[:-len(".__main__")]
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return identity.program_from_path(os.path.abspath(path) if path else "") or "python"


def _tls_context(tls):
    import ssl
    if isinstance(tls, str):
        context = ssl.create_default_context(cafile=tls)
        context.check_hostname = False  # the address may be an IP; the CA pins the peer
    else:
        # Encryption only: the controller's identity is proven by the token handshake,
        # which a man in the middle cannot complete.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


_events_subscribed = False


def _subscribe_update_events():
    """Hear the updates layer's events (pyliveupdate.updates.events) where it has them;
    without it the state poll alone finds the changes."""
    global _events_subscribed
    if _events_subscribed:
        return
    _events_subscribed = True
    try:
        from .updates import events
    except ImportError:
        return
    events.subscribe(_dispatch_update_event)


def _dispatch_update_event(kind, update_id, text):
    for stub in list(_started):
        try:
            stub._on_update_event(kind, update_id, text)
        except Exception:  # noqa: BLE001 - never break the program thread that published it
            pass


def _install_process_hooks():
    global _hooks_installed
    if not _hooks_installed:
        os.register_at_fork(after_in_child=_restart_in_child)
        atexit.register(_send_last_replies)
        _hooks_installed = True


def _send_last_replies():
    """At interpreter exit: a command that ended the program (it let the main thread
    finish, or called sys.exit elsewhere) still gets its reply out, bounded."""
    deadline = time.monotonic() + EXIT_REPLY_WAIT
    while any(stub._answering for stub in list(_started)) and time.monotonic() < deadline:
        time.sleep(0.005)


def _restart_in_child():
    for stub in list(_started):
        try:
            stub._after_fork_in_child()
        except Exception as e:  # noqa: BLE001 - never break the program's fork
            sys.stderr.write("[pyliveupdate] stub not restarted after fork: %s\n" % e)
