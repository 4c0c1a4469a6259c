"""pylu-attach: start pyliveupdate's stub in a running Python process, by pid.

    pylu-attach 1234                         the stub dials $PYLU_CONTROLLER or 127.0.0.1:50050
    pylu-attach 1234 --children              and in its children (a prefork master's workers)

Exit status: 0 attached everywhere, 1 an attach failed, 2 refused (nothing touched); a
child (--children) that is refused, e.g. not a Python process, is mentioned and skipped.
"""
import argparse
import sys
import time

from pyliveupdate import protocol

from . import AttachError, Refusal, attach, children_of


def build_parser():
    p = argparse.ArgumentParser(
        prog="pylu-attach",
        description="Start pyliveupdate's stub inside a running CPython >= 3.12 process that "
                    "never imported it; the stub then dials the controller as usual. Python "
                    "3.14+ is reached with sys.remote_exec (PEP 768); 3.12 and 3.13 through "
                    "gdb, only at a point where the interpreter is consistent. The process's "
                    "own pyliveupdate is used if its environment has one, else this one.",
        epilog="Detach again with LU.detach() at the controller: it reverts every update and "
               "stops every thread of ours in the process.")
    p.add_argument("pids", type=int, nargs="+", metavar="PID")
    p.add_argument("--controller", metavar="HOST:PORT",
                   help="where the stub dials (default $PYLU_CONTROLLER or 127.0.0.1:50050)")
    p.add_argument("--token", help="shared secret given to the stub (default $PYLU_TOKEN or "
                   "~/.config/pyliveupdate/token: the controller's, when you run both)")
    p.add_argument("--tls", action="store_true", help="the stub dials with TLS")
    p.add_argument("--tls-ca", metavar="PEM", help="CA file the stub verifies the controller with")
    p.add_argument("--children", action="store_true",
                   help="also attach to the process's child processes that run CPython "
                        "(e.g. a gunicorn master's workers; workers forked later get the stub "
                        "by inheritance)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="give up if no safe point comes within S seconds (default %(default)s)")
    p.add_argument("--connect-wait", type=float, default=3.0, metavar="S",
                   help="wait up to S seconds for the stub to reach the controller (default "
                        "%(default)s; 0: do not wait)")
    p.add_argument("-v", "--verbose", action="store_true", help="say each step")
    return p


def attach_all(pids, children=False, out=sys.stdout, **options):
    """Attach to every pid (and its children); print what happened. Returns the exit status."""
    refused = failed = False
    queue = list(pids)
    seen = set()
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        named = pid in pids
        try:
            done = attach(pid, **options)
        except Refusal as e:
            # a child that is not for us (a shell, another program) is only mentioned
            out.write("pylu-attach: %s: %s\n" % ("refused" if named else "child skipped", e))
            refused |= named
        except (AttachError, OSError) as e:
            out.write("pylu-attach: failed: %s\n" % e)
            failed = True
        else:
            out.write("\n".join(done.lines()) + "\n")
        out.flush()
        if children and named:
            queue.extend(children_of(pid))
    return 1 if failed else 2 if refused else 0


def attach_for_controller(server, pids, event):
    """pylu-controller --attach PID: the stubs dial this server, with its token."""
    host = server.host if server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    address = "[%s]:%d" % (host, server.port) if ":" in host else "%s:%d" % (host, server.port)
    tls = True if server.ssl_context is not None else None
    for pid in pids:
        try:
            done = attach(pid, controller=address, token=server.token, tls=tls)
        except (Refusal, AttachError, OSError) as e:
            event("attach %d: %s" % (pid, e))
            continue
        for line in done.lines():
            event(line)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.controller:
        try:
            protocol.parse_address(args.controller)
        except ValueError as e:
            sys.exit("pylu-attach: %s" % e)
    tls = args.tls_ca or (True if args.tls else None)
    start = time.monotonic()

    def say(text):
        if args.verbose:
            sys.stderr.write("pylu-attach: %6.3f s  %s\n" % (time.monotonic() - start, text))
    try:
        return attach_all(args.pids, args.children, controller=args.controller, token=args.token,
                          tls=tls, timeout=args.timeout, connect_wait=args.connect_wait, say=say)
    except KeyboardInterrupt:
        sys.stderr.write("pylu-attach: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
