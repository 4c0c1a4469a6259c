"""pylu-controller: a Python console whose statements run inside live processes.

    pylu-controller -l 127.0.0.1:50050                     interactive
    pylu-controller --wait 2 -c "FP.profile('__main__.**')"  scripted; exit 1 if any failed

Statements run in every connected process (or those chosen with use(...)); each reply
line is prefixed with the process (pid, host, program). Controller-side commands:
patch('file.py'), procs(), ping, use(...), deploy(ids, to=pid), exit; LU.ls() lists the
fleet's updates (LU.ls(detail=True) asks every process); show('mod.func') prints the
target's source with line numbers. A top-level call given sticky=True makes the updates
it creates follow the program across restarts.
"""
import argparse
import codeop
import os
import sys
import threading
import time

from pyliveupdate import protocol

from . import listing
from .commands import LOCAL_COMMANDS, listing_call, local_call, without_sticky
from . import server as server_mod

HELP = """\
Statements run in every selected process; results are prefixed [pid host program].
Predefined in the processes:
  FP.profile(scope)  LP.profile(func, lines)  FD.debug(scope)  LD.debug(func, lines=())
  VD.debug(func, vars)  FP.top()  LP.show()  LU.revert(ids)  LU.apply(ids)
  show('mod.func')   every one accepts condition='expr' and ttl=seconds
An update is meant for the selected processes' running instances (their master's later
workers included); sticky=True on the call also gives it to later runs of the program.
Here in the controller:
  patch('file.py', sticky=False)  run a local file in the processes (Instrument/Redefine/...)
  LU.ls(all=False)   the fleet's updates: in how many processes applied/pending/failed/
                     disabled, and why (LU.ls(detail=True): each process's own listing)
  deploy(ids, to=pid)  give active updates to that process's instance too
  procs()            connected processes      ping   round-trip to each process
  more()             the last replies in full (long ones are summarised: "… N more")
  use(pid|'prog'|'all', ...)  choose processes                 exit   leave
"""


class Console:
    def __init__(self, server, out=None, color=None):
        self.server = server
        self.out = out or sys.stdout
        if color is None:
            color = self.out.isatty() and not os.environ.get("NO_COLOR")
        self.color = color
        self._print_lock = threading.Lock()
        self.last_results = None

    # --- printing -----------------------------------------------------------

    def _paint(self, text, code):
        return "\033[%sm%s\033[0m" % (code, text) if self.color else text

    def write_lines(self, lines):
        with self._print_lock:
            self.out.write("".join(line + "\n" for line in lines))
            self.out.flush()

    def stream_line(self, proc, update_id, kind, text):
        tag = "[%s]" % proc.label
        self.write_lines([self._paint(tag, "36") + " " + line for line in text.splitlines() or [""]])

    def echo_command(self, src):
        """Scripted mode: say which command the following lines belong to."""
        lines = src.strip().splitlines() or [""]
        head = ">>> " + lines[0] + (" …" if len(lines) > 1 else "")
        if len(head) > listing.LINE_CHARS:
            head = head[:listing.LINE_CHARS] + " …"
        self.write_lines([self._paint(head, "1")])

    def event(self, text):
        self.write_lines([self._paint("[pylu-controller] " + text, "33")])

    def show_results(self, results, full=False):
        """Each process's reply under its tag; long replies are summarised (more() shows
        the last ones in full)."""
        lines = []
        cut = False
        limits = {"lines": 1 << 62, "chars": 1 << 62} if full else {}
        for proc, reply in results:
            tag = self._paint("[%s]" % proc.label, "36")
            shown, c1 = listing.clip(reply.get("output") or "", **limits)
            lines.extend("%s %s" % (tag, line) for line in shown)
            if not reply.get("ok"):
                shown, c2 = listing.clip(reply.get("error") or "failed", **limits)
                lines.extend("%s %s" % (tag, self._paint(line, "31")) for line in shown)
                c1 = c1 or c2
            cut = cut or c1
        if cut:
            lines.append(self._paint("[pylu-controller] summarised: more() prints these "
                                     "replies in full", "33"))
        self.last_results = results
        self.write_lines(lines)

    def cmd_more(self):
        """The last command's replies, in full."""
        if not self.last_results:
            raise ValueError("no command has replied yet")
        self.show_results(self.last_results, full=True)
        return True

    # --- commands -----------------------------------------------------------

    def execute(self, src):
        """Run one command (local or remote). Returns True when it succeeded everywhere."""
        if not src.strip():
            return True
        listing = listing_call(src)
        if listing is not None:
            if listing.pop("detail", False):
                return self.remote("LU.ls(%s)" % ("all=True" if listing.get("all") else ""))
            return self.cmd_ls(**listing)
        local = local_call(src)
        if local is not None:
            name, args, kwargs = local
            try:
                return getattr(self, "cmd_" + name)(*args, **kwargs) is not False
            except (TypeError, ValueError, OSError) as e:
                self.event("%s: %s" % (name, e))
                return False
        src, sticky = without_sticky(src)
        return self.remote(src, sticky=sticky)

    def remote(self, src, filename="<controller>", echo=True, sticky=False):
        results = self.server.run(src, filename, echo=echo, sticky=sticky)
        if not results:
            self.event("no process is connected%s; nothing ran"
                       % (" (or selected: see use())" if self.server.selection is not None else ""))
            return False
        self.show_results(results)
        return all(r.get("ok") for _, r in results)

    def cmd_patch(self, path, sticky=False):
        path = os.path.abspath(os.path.expanduser(path))
        with open(path, encoding="utf-8") as f:
            src = f.read()
        return self.remote(src, filename="<patch %s>" % path, echo=False, sticky=bool(sticky))

    def cmd_deploy(self, ids, to=None):
        """Give active updates to more instances: those of process `to` (a pid), or of
        the selected processes."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        if to is None:
            procs = self.server.processes()
        else:
            procs = [p for p in self.server.processes(all_=True) if p.pid == to]
            if not procs:
                raise ValueError("no connected process has pid %r (see procs())" % (to,))
        results = self.server.deploy(ids, procs)
        lines = ["[%s] %s" % (p.label, "; ".join(r["summary"]) or "already up to date")
                 for p, r in results]
        self.write_lines(lines)
        return all(r.get("ok") for _, r in results)

    def cmd_ls(self, all=False):
        procs = self.server.processes(all_=True)
        rows = self.server.fleet.summary([(p.ident, p.states, p.reasons) for p in procs], all)
        if not rows:
            self.write_lines(["no update is active" if not all else "no update"])
            return True
        labels = {}
        for p in procs:
            for uid, label in p.labels.items():
                labels.setdefault(uid, label)
        self.write_lines(listing.update_rows(rows, len(procs), labels))
        return True

    def cmd_procs(self):
        procs = self.server.processes(all_=True)
        chosen = set(self.server.processes())
        now = time.time()
        rows = [("", "pid", "host", "program", "python", "uptime", "updates", "argv")]
        for p in procs:
            info = p.info
            rows.append(("*" if p in chosen else " ", str(p.pid), str(info.get("host", "?")),
                         str(info.get("program", "?")), str(info.get("python", "?")),
                         _duration(now - float(info.get("started") or now)),
                         listing.process_updates(p.states),
                         " ".join(info.get("argv") or ())))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
        lines.append("%d process(es) connected, %d selected; next update id %d"
                     % (len(procs), len(chosen), self.server.next_id))
        self.write_lines(lines)
        return True

    def cmd_ping(self):
        procs = self.server.processes()
        if not procs:
            self.event("no process is connected")
            return False
        ok = True
        lines = []
        for p in procs:
            start = time.perf_counter()
            reply = p.request({"op": "ping"}, timeout=5.0)
            ms = (time.perf_counter() - start) * 1000
            good = reply.get("op") == "pong"
            ok &= good
            lines.append("[%s] %s" % (p.label, "pong %.2f ms" % ms if good else reply.get("error")))
        self.write_lines(lines)
        return ok

    def cmd_use(self, *which):
        """Choose processes by what procs() shows: pid, program or host. The choice is a
        rule: workers that come later and match it are chosen too."""
        if not which:
            pass
        elif which == ("all",):
            self.server.selection = None
        else:
            if not any(server_mod.selected(p, which) for p in self.server.processes(all_=True)):
                raise ValueError("no connected process matches %s (see procs())"
                                 % ", ".join(map(repr, which)))
            self.server.selection = tuple(which)
        sel = self.server.processes()
        self.write_lines(["using %s" % ("every process" if self.server.selection is None else
                                        "%s: now %s" % (", ".join(map(repr, self.server.selection)),
                                                        listing.more([p.label for p in sel])))])
        return True

    def cmd_help(self):
        self.write_lines(HELP.splitlines())
        return True

    def cmd_exit(self):
        raise EOFError

    cmd_quit = cmd_exit

    # --- interactive --------------------------------------------------------

    local_names = LOCAL_COMMANDS

    def interact(self):
        banner = ("pylu-controller: listening on %s:%d; %d process(es) connected. "
                  "help() for commands." % (self.server.host, self.server.port,
                                            len(self.server.processes(all_=True))))
        try:
            from . import prompt
        except ImportError:   # prompt_toolkit missing: the plain console below
            prompt = None
        if prompt is not None and sys.stdin.isatty() and sys.stdout.isatty():
            return prompt.interact(self, _history_path(), banner)
        self.interact_plain(banner)

    def interact_plain(self, banner):
        """input() and readline: for a stdin that is not a terminal, or no prompt_toolkit."""
        _setup_readline(self.server)
        self.write_lines([banner])
        buf = []
        while True:
            try:
                line = input("... " if buf else ">>> ")
            except EOFError:
                self.out.write("\n")
                return
            except KeyboardInterrupt:
                self.out.write("\nKeyboardInterrupt\n")
                buf = []
                continue
            buf.append(line)
            src = "\n".join(buf)
            try:
                # "single", as the Python console: a compound statement ends with a blank line
                complete = codeop.compile_command(src, "<controller>", "single") is not None
            except (SyntaxError, ValueError, OverflowError):
                complete = True  # let the target report the error the usual way
            if not complete and line.strip():
                continue
            buf = []
            try:
                self.execute(src)
            except EOFError:
                return
            except KeyboardInterrupt:
                self.event("interrupted")


def _duration(seconds):
    seconds = int(max(0, seconds))
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


def _history_path():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "pyliveupdate", "history")


def _setup_readline(server):
    try:
        import readline
    except ImportError:
        return
    import atexit
    path = _history_path()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    atexit.register(_save_history, readline, path)
    matches = []

    def completer(text, state):
        if state == 0:
            try:
                matches[:] = server.complete(text) if text else []
                matches.extend(m for m in LOCAL_COMMANDS if m.startswith(text) and "." not in text)
            except Exception:  # noqa: BLE001 - completion must never break the console
                matches[:] = []
        return matches[state] if state < len(matches) else None

    readline.set_completer_delims(" \t\n`~!@#$%^&*()-=+[{]}\\|;:'\",<>/?")
    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")


def _save_history(readline, path):
    try:
        readline.write_history_file(path)
        os.chmod(path, 0o600)
    except OSError:
        pass


def build_parser():
    p = argparse.ArgumentParser(
        prog="pylu-controller",
        description="Run Python statements inside live processes that started an UpdateStub.")
    p.add_argument("address", nargs="?", help="HOST:PORT to listen on (same as -l)")
    p.add_argument("-l", "--listen", metavar="HOST:PORT",
                   help="address to listen on (default $PYLU_CONTROLLER or 127.0.0.1:50050)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow listening on a non-loopback address (use --tls-cert with it)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--token", help="shared secret (default $PYLU_TOKEN or "
                   "~/.config/pyliveupdate/token, created on first use)")
    p.add_argument("--attach", type=int, action="append", default=[], metavar="PID",
                   help="first start a stub in this running Python process (as pylu-attach "
                        "PID does; repeatable)")
    p.add_argument("--wait", type=int, default=0, metavar="N",
                   help="wait until N processes are connected before running commands")
    p.add_argument("--wait-timeout", type=float, default=30.0, metavar="S",
                   help="give up waiting after S seconds (exit 2)")
    p.add_argument("-c", "--command", action="append", default=[], metavar="CMD",
                   help="run CMD (repeatable), print the results and exit; "
                        "the exit status is 1 if any command failed in any process")
    p.add_argument("--linger", type=float, default=0.0, metavar="S",
                   help="with -c: keep printing live output for S seconds before exiting")
    p.add_argument("--timeout", type=float, default=server_mod.COMMAND_TIMEOUT, metavar="S",
                   help="how long to wait for a command's replies (default %(default)s)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    address = args.listen or args.address or os.environ.get("PYLU_CONTROLLER") or "127.0.0.1:50050"
    try:
        host, port = protocol.parse_address(address)
    except ValueError as e:
        sys.exit("pylu-controller: %s" % e)
    if not server_mod.is_loopback(host):
        if not args.allow_remote:
            sys.exit("pylu-controller: %s is not a loopback address; anyone who can reach it "
                     "could try to connect. Pass --allow-remote to listen there anyway "
                     "(and --tls-cert/--tls-key to encrypt the traffic)." % host)
        server_mod.stderr_event("listening on non-loopback address %s:%d%s" % (
            host, port, " with TLS" if args.tls_cert else " WITHOUT TLS: traffic is "
            "authenticated but readable on the network"))
    context = None
    if args.tls_cert:
        context = server_mod.tls_server_context(args.tls_cert, args.tls_key)
    console = Console(None)
    try:
        server = server_mod.Server(host, port, token=args.token, ssl_context=context,
                                   on_output=console.stream_line, on_event=console.event,
                                   command_timeout=args.timeout)
        server.start()
    except protocol.TokenError as e:
        sys.exit("pylu-controller: %s" % e)
    except OSError as e:
        sys.exit("pylu-controller: cannot listen on %s:%d: %s" % (host, port, e.strerror or e))
    console.server = server
    try:
        if args.attach:
            from .attach.cli import attach_for_controller
            attach_for_controller(server, args.attach, console.event)
        if args.wait and not server.wait_for(args.wait, args.wait_timeout):
            console.event("only %d of %d process(es) connected within %g s"
                          % (len(server.processes(all_=True)), args.wait, args.wait_timeout))
            return 2
        if args.command:
            ok = True
            for cmd in args.command:
                console.echo_command(cmd)
                try:
                    ok &= console.execute(cmd)
                except EOFError:
                    break
            if args.linger > 0:
                time.sleep(args.linger)
            return 0 if ok else 1
        console.interact()
        return 0
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
