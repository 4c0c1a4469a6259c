"""UpdateStub: the part of pyliveupdate that lives in the program and dials the controller.

    from pyliveupdate import UpdateStub
    UpdateStub().start()

A daemon thread dials the controller (argument, $PYLU_CONTROLLER, or 127.0.0.1:50050),
authenticates both ways (pyliveupdate.protocol), then runs the controller's commands in
a namespace of its own that holds the predefined modifications. While no controller is
there it retries with exponential backoff; it never listens on a port. Forked children
(prefork servers) start their own connection.
"""
import collections
import os
import random
import socket
import sys
import threading
import time
import weakref

from . import command, output, protocol

DEFAULT_CONTROLLER = "127.0.0.1:50050"
STREAM_QUEUE_MAX = 10000

_started = weakref.WeakSet()
_fork_hook_installed = False


class UpdateStub:
    """Connects this process to a pylu-controller.

    controller: "HOST:PORT" (default $PYLU_CONTROLLER or 127.0.0.1:50050).
    token:      the shared secret (default $PYLU_TOKEN or ~/.config/pyliveupdate/token).
    tls:        None/False (plain TCP), True (TLS, identity proven by the token), or the
                path of a CA file to verify the controller's certificate ($PYLU_TLS=1 or
                $PYLU_TLS_CA enable it from the environment).
    retry_max:  longest pause between connection attempts, in seconds.
    """

    def __init__(self, controller=None, token=None, tls=None, retry_max=2.0, name=None):
        address = controller or os.environ.get("PYLU_CONTROLLER") or DEFAULT_CONTROLLER
        self.address = protocol.parse_address(address)
        self._token_arg = token
        if tls is None:
            tls = os.environ.get("PYLU_TLS_CA") or os.environ.get("PYLU_TLS") in ("1", "true", "yes")
        self.tls = tls
        self.retry_max = float(retry_max)
        self.name = name
        self.runner = command.CommandRunner()
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

    # --- life cycle ---------------------------------------------------------

    def start(self):
        """Start the background thread (idempotent). Returns self."""
        if self._thread is not None and self._thread.is_alive():
            return self
        _install_fork_hook()
        import encodings.idna  # noqa: F401  (getaddrinfo needs it; importing it in a forked child can fail)
        # Import what commands use now, in the caller's thread: a prefork server that forks
        # while the stub thread is half-way through an import leaves the child a partially
        # initialised module ("cannot import name ... partially initialized module").
        from . import engine, modifications, recording, update  # noqa: F401
        _started.add(self)
        self._thread = threading.Thread(target=self._run, name="pyliveupdate-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """Disconnect and end the thread (tests, orderly shutdown, LU.detach). Called from
        a command, the connection ends right after that command's reply is sent."""
        self._stop.set()
        _started.discard(self)
        channel = self._channel
        if channel is not None and threading.current_thread() is not self._thread:
            try:
                channel.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._queue_cv:
            self._queue_cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _after_fork_in_child(self):
        if self._channel is not None:
            try:  # our copy of the parent's socket: close it, but never shut it down
                self._channel.sock.close()
            except OSError:
                pass
        self._reset_runtime()
        self.runner.after_fork()
        self.start()

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
                delay = self.retry_max
            except OSError:
                pass  # no controller yet: try again later
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
        sock.settimeout(None)
        self._channel = channel
        channel.send(self.hello())
        writer = threading.Thread(target=self._write_stream, args=(channel,),
                                  name="pyliveupdate-stub-out", daemon=True)
        output.add_stream(self._on_output)
        writer.start()
        self.connected.set()
        while self._current(stop):
            msg = channel.recv()
            try:
                reply = self.runner.handle(msg)
            except BaseException as e:  # noqa: BLE001 - answer rather than drop the link
                reply = {"op": "result", "ok": False, "output": "",
                         "error": "internal error in the stub: %r" % (e,)}
            if reply is not None:
                reply.setdefault("id", msg.get("id"))
                channel.send(reply)

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
        return {
            "op": "hello",
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "host": socket.gethostname(),
            "argv": list(sys.argv),
            "program": self.name or _program_name(),
            "python": sys.version.split()[0],
            "started": self._started_at,
            "executed": sorted(self.runner.executed),
            "updates": self.runner.update_state(),
        }

    # --- live output stream -------------------------------------------------

    def _on_output(self, update_id, kind, text):
        with self._queue_cv:
            if len(self._queue) >= STREAM_QUEUE_MAX:
                self._queue_dropped += 1
                return
            self._queue.append((update_id, kind, text))
            self._queue_cv.notify()

    def _write_stream(self, channel):
        while self._channel is channel and not self._stop.is_set():
            with self._queue_cv:
                if not self._queue:
                    self._queue_cv.wait(1.0)
                batch = list(self._queue)
                self._queue.clear()
                dropped, self._queue_dropped = self._queue_dropped, 0
            if not batch:
                output.report_drops()
            if dropped:
                batch.append((None, output.TEXT_ENGINE, "[pyliveupdate] %d line(s) of output "
                              "dropped: the controller did not keep up" % dropped))
            if not batch:
                continue
            try:
                channel.send({"op": "out", "lines": batch})
            except (OSError, protocol.ProtocolError):
                return


def _program_name():
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else "")
    return os.path.basename(path) or "python"


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


def _install_fork_hook():
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_restart_in_child)
        _fork_hook_installed = True


def _restart_in_child():
    for stub in list(_started):
        try:
            stub._after_fork_in_child()
        except Exception as e:  # noqa: BLE001 - never break the program's fork
            sys.stderr.write("[pyliveupdate] stub not restarted after fork: %s\n" % e)
