"""``pyliveupdate`` (or ``python -m pyliveupdate``): what is installed, and whether it works.

    pyliveupdate --version    print the version
    pyliveupdate              print the version, the interpreter, where the package and its
                              C engine are, and the commands; exit 1 if the engine does not load
"""
import argparse
import importlib
import sys

import pyliveupdate


def _engine_line() -> tuple[bool, str]:
    try:
        engine = importlib.import_module("pyliveupdate._engine")
    except ImportError as exc:  # a broken install must say why, not only that
        return False, "NOT LOADED: %s: %s" % (type(exc).__name__, exc)
    return True, "%s (clock %s, log format %d)" % (
        engine.__file__, engine.RECORDER_CLOCK, engine.LOG_FORMAT_VERSION)


def _commands() -> list[str]:
    from importlib import metadata
    try:
        dist = metadata.distribution("pyliveupdate")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return []
    return sorted(ep.name for ep in dist.entry_points if ep.group == "console_scripts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyliveupdate",
        description="Show what pyliveupdate is installed here and whether its C engine loads.")
    parser.add_argument("--version", action="version",
                        version="pyliveupdate %s" % pyliveupdate.__version__)
    parser.parse_args(argv)
    ok, engine = _engine_line()
    rows = [("pyliveupdate", pyliveupdate.__version__),
            ("python", "%s (%s)" % (sys.version.split()[0], sys.executable)),
            ("package", pyliveupdate.__path__[0]),
            ("engine", engine),
            ("commands", ", ".join(_commands()) or "(not installed as a distribution)")]
    for name, value in rows:
        print("%-13s %s" % (name, value))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
