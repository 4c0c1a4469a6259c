"""The controller's listener: authenticated sessions with stubs, commands, update ids.

One Server accepts any number of stubs. A command is broadcast to the selected
processes and their replies are collected. The server hands out update ids: each
command runs in every process inside an id block starting at the next free id, and the
next free id advances by the most ids any process kept (a command that failed
everywhere keeps none), so update N is the same update everywhere.

What the fleet should hold is fleet.DesiredState: the active updates with the command
that created them and whom they are for. A process that connects gets one sync that
brings it there before it takes part in commands. Keepalives both ways find a peer that
froze or vanished (protocol.py); no exception leaves a session thread.
"""
import itertools
import secrets
import socket
import ssl
import sys
import threading
import time

from pyliveupdate import protocol

from . import commands, fleet

COMMAND_TIMEOUT = 60.0
INTERRUPT_GRACE = 1.0
INTERRUPT_WAIT = 5.0      # for the replies of a command interrupted with Ctrl-C


class Process:
    """One connected stub."""

    def __init__(self, server, channel, peer, number, hello):
        self.server = server
        self.channel = channel
        self.peer = peer
        self.number = number
        self.info = hello
        self.ident = fleet.Identity(hello)
        self.connected_at = time.time()
        self.executed = set(hello.get("executed") or ())
        self.updates = {"active": [], "known": []}
        self.states, self.reasons, self.ttl, self.labels = {}, {}, {}, {}
        self.set_updates(hello.get("updates"))
        self.alive = True
        self.synced = threading.Event()
        self._pending = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def pid(self):
        return self.info.get("pid")

    @property
    def label(self):
        return "%s %s %s" % (self.pid, self.info.get("host", "?"), self.info.get("program", "?"))

    def set_updates(self, reported):
        """Take a stub's update report (stub state.report())."""
        if not isinstance(reported, dict):
            return
        self.updates = reported
        states, reasons = {}, {}
        for row in reported.get("states") or ():
            try:
                uid = int(row[0])
            except (TypeError, ValueError, IndexError):
                continue
            states[uid] = row[1]
            reasons[uid] = row[2] if len(row) > 2 else None
        if not states:  # an older stub: ids only
            states = {int(i): "reverted" for i in reported.get("known") or ()}
            states.update({int(i): "applied" for i in reported.get("active") or ()})
        self.states, self.reasons = states, reasons
        self.ttl = {int(i): float(t) for i, t in reported.get("ttl") or ()}
        self.labels = {}
        for row in reported.get("labels") or ():
            try:
                self.labels[int(row[0])] = str(row[1])
            except (TypeError, ValueError, IndexError):
                continue

    def send_request(self, msg):
        """Send msg; returns a waiter whose .wait(timeout) gives the reply dict."""
        waiter = _Waiter()
        with self._lock:
            if not self.alive:
                waiter.set(_failure("process disconnected"))
                return waiter
            rid = next(self._ids)
            self._pending[rid] = waiter
        try:
            self.channel.send(dict(msg, id=rid))
        except protocol.MessageTooLarge as e:
            with self._lock:
                self._pending.pop(rid, None)
            waiter.set(_failure(str(e)))
        except (OSError, protocol.ProtocolError) as e:
            # The link is broken: close it, so the reader ends the session and the
            # process leaves the list instead of staying there, deaf.
            self._fail_pending("connection lost: %s" % e)
            self.close()
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
            waiter.set(_failure(reason))

    def close(self):
        self.channel.close()


def _failure(reason):
    return {"op": "result", "ok": False, "output": "", "error": reason}


class _Waiter:
    def __init__(self):
        self._event = threading.Event()
        self.value = None

    def set(self, value):
        self.value = value
        self._event.set()

    def done(self):
        return self._event.is_set()

    def wait(self, timeout):
        if not self._event.wait(timeout):
            return {"op": "result", "ok": False, "output": "",
                    "error": "no reply within %g s (the command may still be running)" % timeout}
        return self.value


class Server:
    """Listens for stubs. Callbacks (all optional, called from server threads):

    on_output(process, update_id, kind, text)   a line of live debug output
    on_event(text)                              connections, disconnections, syncs, and
                                                what processes report by themselves
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
        self.fleet = fleet.DesiredState()
        self._seq = itertools.count(1)
        self._run_id = secrets.token_hex(6)  # command sequence numbers are per controller run
        self._numbers = itertools.count(1)
        self._processes = []
        self._lock = threading.Lock()
        self._command_lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sock = None
        self._closing = False
        self.selection = None  # None = every process; else pids/programs/hosts (selected())

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
        threading.Thread(target=self._keepalive_loop, name="pylu-keepalive", daemon=True).start()
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

    def _keepalive_loop(self):
        while not self._closing:
            time.sleep(protocol.KEEPALIVE_INTERVAL / 2)
            for proc in self.processes(all_=True):
                try:
                    if proc.channel.keepalive_due():
                        proc.channel.send_keepalive()
                except (OSError, ValueError, protocol.ProtocolError):
                    proc.close()   # its reader ends the session and says why

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
            channel.start_liveness()
            proc = Process(self, channel, peer, next(self._numbers), hello)
            reader = threading.Thread(target=self._read_loop, args=(proc,),
                                      name="pylu-read", daemon=True)
            reader.start()
            self._admit(proc)
            reader.join()
        except (protocol.ProtocolError, ssl.SSLError, OSError, EOFError, ValueError) as e:
            if not self._closing:
                self.on_event("connection from %s closed: %s" % (where, _reason(e)))
        except Exception as e:  # noqa: BLE001 - a session thread never dies with a traceback
            if not self._closing:
                self.on_event("connection from %s closed: internal error: %r" % (where, e))
        finally:
            if proc is not None:
                self._remove(proc)
            try:
                conn.close()
            except OSError:
                pass

    def _read_loop(self, proc):
        reason = "disconnected"
        try:
            while True:
                msg = proc.channel.recv()
                op = msg.get("op")
                if op == "ka":
                    continue
                if op == "out":
                    for item in msg.get("lines") or ():
                        if isinstance(item, list) and len(item) == 3:
                            self.on_output(proc, item[0], item[1], str(item[2]))
                elif op == "event":
                    self._on_process_event(proc, msg)
                else:
                    proc.set_updates(msg.get("updates"))
                    proc._deliver(msg)
        except (EOFError, ConnectionResetError):
            pass
        except (protocol.ProtocolError, OSError, ssl.SSLError) as e:
            reason = "connection closed: %s" % _reason(e)
        except Exception as e:  # noqa: BLE001 - a malformed message from a peer
            reason = "connection closed: internal error: %r" % (e,)
        if reason == "disconnected" and proc._pending and not _exists(proc):
            # Most likely the command: a patch that called os._exit, or crashed it.
            reason = ("the process ended while running the command (it exited: os._exit, "
                      "a signal, a crash, or its server recycled it)")
        proc._fail_pending(reason)
        proc.close()
        self._remove(proc)      # before it is announced: whoever hears of it sees it gone
        if not self._closing:
            self.on_event("process %s left (%s)" % (proc.label, reason))

    def _on_process_event(self, proc, msg):
        if isinstance(msg.get("updates"), dict):
            proc.set_updates(msg["updates"])
        for item in msg.get("events") or ():
            if not (isinstance(item, list) and len(item) == 3):
                continue
            uid, kind, text = item
            if isinstance(uid, int):
                # Not under the command lock: a command waits for this thread's replies.
                # (It only marks one id inactive.)
                self.fleet.event(uid, kind)
            self.on_event("process %s: update %s %s%s" % (proc.label, uid, kind,
                                                         ": %s" % text if text else ""))

    # --- joining: one sync to the desired state --------------------------------

    def _admit(self, proc):
        """Bring a new process to the desired state, then include it in broadcasts.
        The sync is sent before the process joins: a command sent after it runs after
        it there (a stub handles its messages in order)."""
        with self._command_lock:
            known = set(proc.states)
            if known:  # ids an earlier controller handed out are taken: never reuse them
                self.next_id = max(self.next_id, max(known) + 1)
            self.fleet.learn(proc.ident, proc.info, proc.states, proc.ttl)
            msg, notes = self.fleet.plan(proc.ident, proc.states, proc.executed)
            waiter = proc.send_request(msg)
            for item in msg["run"]:
                proc.executed.add(item["seq"])
            with self._lock:
                self._processes.append(proc)
                self._changed.notify_all()
        reply = waiter.wait(self.command_timeout)
        proc.synced.set()
        notes = _sync_notes(msg, reply) + notes
        self.on_event("process %s connected from %s:%s%s"
                      % (proc.label, proc.peer[0], proc.peer[1],
                         "; " + "; ".join(notes) if notes else ""))

    def _remove(self, proc):
        with self._lock:
            if proc in self._processes:
                self._processes.remove(proc)
            self._changed.notify_all()

    # --- processes ----------------------------------------------------------

    def processes(self, all_=False):
        with self._lock:
            procs = list(self._processes)
        if all_ or self.selection is None:
            return procs
        return [p for p in procs if selected(p, self.selection)]

    def wait_for(self, count, timeout):
        """Wait until `count` processes are connected and synced."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._processes) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            procs = list(self._processes)
        return all(p.synced.wait(max(0.0, deadline - time.monotonic())) for p in procs)

    # --- commands -----------------------------------------------------------

    def run(self, src, filename="<controller>", timeout=None, echo=True, sticky=False):
        """Run src in every selected process. Returns [(process, reply)] in connection order.

        echo: print the value of a final expression statement, as the console does.
        sticky: updates it creates follow the selected programs across restarts."""
        timeout = self.command_timeout if timeout is None else timeout
        with self._command_lock:
            procs = self.processes()
            if not procs:
                return []
            everyone = self.processes(all_=True)
            selector = fleet.Selector.for_selection([p.ident for p in procs],
                                                    [p.ident for p in everyone])
            seq = "%s:%d" % (self._run_id, next(self._seq))
            base = self.next_id
            define = {"selector": selector.to_json(), "sticky": bool(sticky)}
            msg = {"op": "exec", "src": src, "filename": filename, "base": base, "seq": seq,
                   "echo": echo, "timeout": timeout, "define": define}
            before = {p: dict(p.states) for p in procs}
            waiters = [(p, p.send_request(msg)) for p in procs]
            # The stubs interrupt the command at `timeout`; the grace lets that report arrive.
            deadline = time.monotonic() + timeout + INTERRUPT_GRACE
            try:
                results = [(p, w.wait(max(0.0, deadline - time.monotonic()))) for p, w in waiters]
            except KeyboardInterrupt:
                results = self._interrupt(waiters)
            used = 0
            for p, reply in results:
                p.executed.add(seq)
                try:
                    used = max(used, int(reply.get("used") or 0))
                except (TypeError, ValueError):
                    pass
            self.next_id += used
            answered = [p for p, r in results if isinstance(r.get("updates"), dict)]
            self.fleet.add_command(seq, src, filename, base, used, selector, sticky,
                                   [p.states for p in answered])
            self.fleet.note_ttl({i: t for p in answered for i, t in p.ttl.items()})
            # Judged by the processes still there: one that ended meanwhile (a recycled
            # worker) would keep a reverted update "applied somewhere" for ever.
            still = [p for p in self.processes(all_=True) if p.alive]
            self.fleet.observe([(p.ident, before[p], p.states) for p in answered],
                               [(p.ident, p.states) for p in still],
                               commands.literal_revert_ids(src))
            return results

    def _interrupt(self, waiters):
        """Ctrl-C during a command: interrupt it in every process still running it, then
        collect the replies (which say what was interrupted), bounded."""
        interrupted = []
        for p, w in waiters:
            if not w.done():
                interrupted.append(p)
                try:
                    p.channel.send({"op": "interrupt"})
                except (OSError, ValueError, protocol.ProtocolError):
                    pass
        deadline = time.monotonic() + INTERRUPT_WAIT
        results = []
        for p, w in waiters:
            reply = w.wait(max(0.0, deadline - time.monotonic()))
            if p in interrupted and not w.done():
                reply = _failure("no reply %g s after the interrupt: the command is still "
                                 "running there, blocked in a C call (it is interrupted when "
                                 "that call returns)" % INTERRUPT_WAIT)
            if p in interrupted:
                reply = dict(reply, ok=False, interrupted=True)
            results.append((p, reply))
        self.on_event("interrupted the command in %d process(es)%s" % (
            len(interrupted), ": " + ", ".join(str(p.pid) for p in interrupted)
            if interrupted else " (it had finished everywhere)"))
        return results

    def deploy(self, ids, procs):
        """Make active updates `ids` meant for the instances of `procs` too, and sync every
        connected process of those instances now. Returns [(process, sync reply)]."""
        with self._command_lock:
            self.fleet.deploy(ids, [p.ident for p in procs])
            instances = {p.ident.instance for p in procs}
            targets = [p for p in self.processes(all_=True) if p.ident.instance in instances]
            sent = []
            for p in targets:
                msg, _ = self.fleet.plan(p.ident, p.states, p.executed)
                for item in msg["run"]:
                    p.executed.add(item["seq"])
                sent.append((p, msg, p.send_request(msg)))
        return [(p, dict(w.wait(self.command_timeout), summary=_sync_notes(msg, w.value or {})))
                for p, msg, w in sent]

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


def selected(proc, which):
    """Whether use(*which) chooses proc: its pid, program or host, as procs() shows them."""
    keys = (proc.pid, proc.info.get("program"), proc.info.get("host"))
    return any(w in keys for w in which)


def _sync_notes(msg, reply):
    """What a sync did, for the operator: applied, re-applied, reverted, failed."""
    if not msg["run"] and not msg["revert"] and not msg["reapply"]:
        return []
    if reply.get("op") != "synced":
        return ["sync failed: %s" % (reply.get("error") or "no reply")]
    notes = []
    results = {r.get("seq"): r for r in reply.get("results") or () if isinstance(r, dict)}
    done, failed = [], []
    for item in msg["run"]:
        r = results.get(item["seq"], {})
        label = _label(item["base"], r.get("used"), item.get("skip") or ())
        (done if r.get("ok") else failed).append((label, r.get("error")))
    if done:
        notes.append("applied update(s) %s" % ", ".join(label for label, _ in done))
    for label, error in failed:
        notes.append("update(s) %s failed there: %s" % (label, error))
    if msg["reapply"]:
        notes.append("re-applied %s" % ", ".join(map(str, msg["reapply"])))
    if msg["revert"]:
        notes.append("reverted %s" % ", ".join(map(str, msg["revert"])))
    return notes


def _label(base, used, skip=()):
    """'3-4' for a block of ids; '3, 5' when some of it stays reverted."""
    try:
        used = int(used or 1)
    except (TypeError, ValueError):
        used = 1
    ids = [i for i in range(base, base + used) if i not in skip]
    if len(ids) == used and used > 1:
        return "%d-%d" % (base, base + used - 1)
    return ", ".join(map(str, ids))


def _exists(proc, wait=0.5):
    """Whether a process on this host still runs, given `wait` seconds to finish exiting
    (it closes its sockets before it is gone). Elsewhere unknown: assumed yes."""
    if proc.info.get("host") != socket.gethostname() or not isinstance(proc.pid, int):
        return True
    deadline = time.monotonic() + wait
    while True:
        try:
            with open("/proc/%d/stat" % proc.pid, "rb") as f:
                stat = f.read()
        except FileNotFoundError:
            return False
        except OSError:
            return True
        if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):   # exited, not yet reaped
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)


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

