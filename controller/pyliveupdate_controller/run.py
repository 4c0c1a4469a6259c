"""pylu-run: run any Python command with pyliveupdate's stub started before its code.

    pylu-run -- python app.py
    pylu-run --controller 127.0.0.1:50050 -- gunicorn app:app -w 4

The command is exec'd (same pid) with a private directory of this package in front of
PYTHONPATH; the `sitecustomize` there starts the stub when Python starts, so the program
needs no edit. Subprocesses inherit the environment and start their own stub; forked
workers reconnect by themselves. The pyliveupdate of the program's environment is used if
it has one, else this one (when its C core fits the program's Python).
"""
import argparse
import os
import sys

import pyliveupdate
from pyliveupdate import protocol

AUTOSTART_DIR = os.path.join(os.path.dirname(os.path.abspath(pyliveupdate.__file__)), "_autostart")


def build_parser():
    p = argparse.ArgumentParser(
        prog="pylu-run",
        usage="pylu-run [options] -- COMMAND [ARGS...]",
        description="Run a Python command with pyliveupdate's stub started before the "
                    "program's code (through a sitecustomize on PYTHONPATH, inherited by "
                    "subprocesses and forked workers). The program is not edited.",
        epilog="Python started with -I, -E or -S skips the hook. Options given here reach "
               "the stub through the environment (PYLU_*), which other processes of the "
               "same user can read: prefer the token file to --token.")
    p.add_argument("--controller", metavar="HOST:PORT",
                   help="where the stub dials (default $PYLU_CONTROLLER or 127.0.0.1:50050)")
    p.add_argument("--token", help="shared secret (default $PYLU_TOKEN or "
                   "~/.config/pyliveupdate/token of the program's user)")
    p.add_argument("--tls", action="store_true", help="dial the controller with TLS")
    p.add_argument("--tls-ca", metavar="PEM", help="verify the controller's certificate with this CA")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    return p


def command_environment(args, environ=None):
    """The environment the command runs with (the hook, and the stub's options)."""
    env = dict(os.environ if environ is None else environ)
    paths = [AUTOSTART_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                               if p and p != AUTOSTART_DIR]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYLU_RUN"] = "1"
    env["PYLU_RUN_PACKAGE"] = os.path.dirname(os.path.abspath(pyliveupdate.__file__))
    if args.controller:
        env["PYLU_CONTROLLER"] = args.controller
    if args.token:
        env["PYLU_TOKEN"] = args.token
    if args.tls:
        env["PYLU_TLS"] = "1"
    if args.tls_ca:
        env["PYLU_TLS_CA"] = os.path.abspath(args.tls_ca)
    return env


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (pylu-run [options] -- COMMAND ...)")
    if args.controller:
        try:
            protocol.parse_address(args.controller)
        except ValueError as e:
            parser.error(str(e))
    env = command_environment(args)
    try:
        os.execvpe(command[0], command, env)
    except OSError as e:
        sys.stderr.write("pylu-run: cannot run %s: %s\n" % (command[0], e.strerror or e))
        return 127


if __name__ == "__main__":
    sys.exit(main())
