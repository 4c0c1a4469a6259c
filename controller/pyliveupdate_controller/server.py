"""The controller's listener: authenticated sessions with stubs, commands, update ids.

One Server accepts any number of stubs. A command is broadcast to the selected
processes and their replies are collected. The server hands out update ids: each
command runs in every process inside an id block starting at the next free id, and the
next free id advances by the most ids any process used, so update N is the same update
everywhere. Commands that created updates are kept; a process that connects later
replays the ones it has not run (with their id blocks), then reverts the updates that
are no longer active anywhere.
"""
import itertools
import secrets
import socket
import ssl
import sys
import threading
import time

from pyliveupdate import protocol

COMMAND_TIMEOUT = 60.0
INTERRUPT_GRACE = 1.0


class Process:
    """One connected stub."""

    def __init__(self, server, channel, peer, number):
        self.server = server
        self.channel = channel
        self.peer = peer
        self.number = number
        self.info = {}
        self.connected_at = time.time()
        self.updates = {"active": [], "known": []}
        self.executed = set()
        self.alive = True
        self._pending = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def pid(self):
        return self.info.get("pid")

    @property
    def label(self):
        return "%s %s %s" % (self.pid, self.info.get("host", "?"), self.info.get("program", "?"))

    def send_request(self, msg):
        """Send msg; returns a waiter whose .wait(timeout) gives the reply dict."""
        waiter = _Waiter()
        with self._lock:
            if not self.alive:
                waiter.set({"op": "result", "ok": False, "output": "",
                            "error": "process disconnected"})
                return waiter
            rid = next(self._ids)
            self._pending[rid] = waiter
        try:
            self.channel.send(dict(msg, id=rid))
        except (OSError, protocol.ProtocolError) as e:
            self._fail_pending("connection lost: %s" % e)
        return waiter

    def request(self, msg, timeout=COMMAND_TIMEOUT):
        return self.send_request(msg).wait(timeout)

    def _deliver(self, msg):
        with self._lock:
            waiter = self._pending.pop(msg.get("id"), None)
        if waiter is not None:
            waiter.set(msg)

    def _fail_pending(self, reason):
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter.set({"op": "result", "ok": False, "output": "", "error": reason})

    def close(self):
        self.channel.close()


class _Waiter:
    def __init__(self):
        self._event = threading.Event()
        self.value = None

    def set(self, value):
        self.value = value
        self._event.set()

    def wait(self, timeout):
        if not self._event.wait(timeout):
            return {"op": "result", "ok": False, "output": "",
                    "error": "no reply within %g s (the command may still be running)" % timeout}
        return self.value


class Command:
    def __init__(self, seq, src, filename, base, echo=True):
        self.seq, self.src, self.filename, self.base = seq, src, filename, base
        self.echo = echo
        self.used = 0

    def message(self):
        return {"op": "exec", "src": self.src, "filename": self.filename, "base": self.base,
                "seq": self.seq, "echo": self.echo}


class Server:
    """Listens for stubs. Callbacks (all optional, called from server threads):

    on_output(process, update_id, kind, text)   a line of live debug output
    on_event(text)                              connections, disconnections, catch-up
    """

    def __init__(self, host="127.0.0.1", port=50050, token=None, ssl_context=None,
                 on_output=None, on_event=None, command_timeout=COMMAND_TIMEOUT):
        self.host, self.port = host, port
        self.token = protocol.load_token(token)
        self.ssl_context = ssl_context
        self.on_output = on_output or (lambda *a: None)
        self.on_event = on_event or (lambda text: None)
        self.command_timeout = command_timeout
        self.next_id = 1
        self.active_ids = set()     # applied in some process, as last reported
        self.reverted_ids = set()   # seen applied, then reverted everywhere
        self.history = []
        self._seq = itertools.count(1)
        self._run_id = secrets.token_hex(6)  # command sequence numbers are per controller run
        self._numbers = itertools.count(1)
        self._processes = []
        self._lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sock = None
        self._closing = False
        self.selection = None  # None = every process; else a set of Process

    # --- listening ----------------------------------------------------------

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="pylu-accept", daemon=True).start()
        return self

    def close(self):
        self._closing = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        for proc in self.processes(all_=True):
            proc.close()

    def _accept_loop(self):
        while not self._closing:
            try:
                conn, peer = self._sock.accept()
            except OSError:
                if self._closing:
                    return
                time.sleep(0.05)
                continue
            threading.Thread(target=self._session, args=(conn, peer),
                             name="pylu-session", daemon=True).start()

    def _session(self, conn, peer):
        where = "%s:%s" % peer[:2]
        proc = None
        try:
            conn.settimeout(protocol.HANDSHAKE_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            channel = protocol.server_handshake(conn, self.token)
            hello = channel.recv()
            if hello.get("op") != "hello":
                raise protocol.ProtocolError("expected hello, got %r" % hello.get("op"))
            conn.settimeout(None)
            proc = Process(self, channel, peer, next(self._numbers))
            proc.info = hello
            proc.executed = set(hello.get("executed") or ())
            proc.updates = hello.get("updates") or proc.updates
            reader = threading.Thread(target=self._read_loop, args=(proc,),
                                      name="pylu-read", daemon=True)
            reader.start()
            self._admit(proc)
            reader.join()
        except (protocol.ProtocolError, ssl.SSLError, OSError, EOFError, ValueError) as e:
            if not self._closing:
                self.on_event("connection from %s closed: %s" % (where, _reason(e)))
            try:
                conn.close()
            except OSError:
                pass
        finally:
            if proc is not None:
                self._remove(proc)

    def _read_loop(self, proc):
        reason = "disconnected"
        try:
            while True:
                msg = proc.channel.recv()
                if msg.get("op") == "out":
                    for item in msg.get("lines") or ():
                        if isinstance(item, list) and len(item) == 3:
                            self.on_output(proc, item[0], item[1], str(item[2]))
                else:
                    if isinstance(msg.get("updates"), dict):
                        proc.updates = msg["updates"]
                    proc._deliver(msg)
        except EOFError:
            pass
        except (protocol.ProtocolError, OSError, ssl.SSLError) as e:
            reason = "connection closed: %s" % _reason(e)
        proc._fail_pending(reason)
        proc.close()
        if not self._closing:
            self.on_event("process %s left (%s)" % (proc.label, reason))

    def _admit(self, proc):
        """Bring a new process up to date, then include it in broadcasts."""
        with self._command_lock:
            notes = self._catch_up(proc)
            with self._lock:
                self._processes.append(proc)
                self._changed.notify_all()
        self.on_event("process %s connected from %s:%s%s"
                      % (proc.label, proc.peer[0], proc.peer[1], notes))

    def _catch_up(self, proc):
        notes = []
        replay = [c for c in self.history if c.used and c.seq not in proc.executed]
        for cmd in replay:
            reply = proc.request(cmd.message(), self.command_timeout)
            proc.executed.add(cmd.seq)
            if not reply.get("ok"):
                notes.append("replay of update(s) %s failed: %s"
                             % (_id_range(cmd), (reply.get("error") or "").splitlines()[-1:]))
        if replay:
            notes.append("replayed update(s) %s" % ", ".join(_id_range(c) for c in replay))
        have = {int(i) for i in proc.updates.get("known") or ()}
        if have:  # ids from an earlier controller session are taken there: never reuse them
            self.next_id = max(self.next_id, max(have) + 1)
        active = {int(i) for i in proc.updates.get("active") or ()}
        stale = sorted(active & self.reverted_ids)
        self.active_ids |= active - self.reverted_ids
        if stale:
            reply = proc.request({"op": "exec", "src": "LU.revert(%r)" % (stale,)},
                                 self.command_timeout)
            notes.append("reverted %s" % stale if reply.get("ok")
                         else "revert of %s failed: %s" % (stale, reply.get("error")))
        return "; " + "; ".join(notes) if notes else ""

    def _remove(self, proc):
        with self._lock:
            if proc in self._processes:
                self._processes.remove(proc)
            if self.selection is not None:
                self.selection.discard(proc)
            self._changed.notify_all()

    # --- processes ----------------------------------------------------------

    def processes(self, all_=False):
        with self._lock:
            procs = list(self._processes)
        if all_ or self.selection is None:
            return procs
        return [p for p in procs if p in self.selection]

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._processes) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # --- commands -----------------------------------------------------------

    def run(self, src, filename="<controller>", timeout=None, echo=True):
        """Run src in every selected process. Returns [(process, reply)] in connection order.

        echo: print the value of a final expression statement, as the console does."""
        timeout = self.command_timeout if timeout is None else timeout
        with self._command_lock:
            procs = self.processes()
            if not procs:
                return []
            cmd = Command("%s:%d" % (self._run_id, next(self._seq)), src, filename,
                          self.next_id, echo)
            msg = dict(cmd.message(), timeout=timeout)
            waiters = [(p, p.send_request(msg)) for p in procs]
            # The stubs interrupt the command at `timeout`; the grace lets that report arrive.
            deadline = time.monotonic() + timeout + INTERRUPT_GRACE
            results = [(p, w.wait(max(0.0, deadline - time.monotonic()))) for p, w in waiters]
            for p, reply in results:
                p.executed.add(cmd.seq)
                try:
                    cmd.used = max(cmd.used, int(reply.get("used") or 0))
                except (TypeError, ValueError):
                    pass
            self.next_id += cmd.used
            if cmd.used:
                self.history.append(cmd)
            answered = [r for _, r in results if isinstance(r.get("updates"), dict)]
            if answered:
                active = set()
                for r in answered:
                    active.update(int(i) for i in r["updates"].get("active") or ())
                self.reverted_ids |= self.active_ids - active
                self.reverted_ids -= active
                self.active_ids = active
            return results

    def request_all(self, msg, timeout=5.0):
        procs = self.processes()
        waiters = [(p, p.send_request(msg)) for p in procs]
        deadline = time.monotonic() + timeout
        return [(p, w.wait(max(0.0, deadline - time.monotonic()))) for p, w in waiters]

    def complete(self, text, timeout=2.0):
        matches = set()
        for _, reply in self.request_all({"op": "complete", "text": text}, timeout):
            matches.update(m for m in reply.get("matches") or () if isinstance(m, str))
        return sorted(matches)


def _id_range(cmd):
    if cmd.used <= 1:
        return str(cmd.base)
    return "%d-%d" % (cmd.base, cmd.base + cmd.used - 1)


def _reason(exc):
    if isinstance(exc, EOFError):
        return "peer closed the connection"
    if isinstance(exc, socket.timeout):
        return "handshake timed out"
    text = str(exc) or type(exc).__name__
    return text


def tls_server_context(certfile, keyfile=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def is_loopback(host):
    import ipaddress
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


def stderr_event(text):
    sys.stderr.write("[pylu-controller] %s\n" % text)
    sys.stderr.flush()

