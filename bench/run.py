"""The bench: pyliveupdate against the tools users pick instead, one command.

    ./dev bench              default mode (< 15 min on a 2-core machine)
    ./dev bench --quick      ~2 min, for development: fewer rounds, shorter runs

Writes bench/results/latest.md and bench/results/latest.json and prints the table.
See bench/README.md for what each row means.
"""
import argparse
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import report  # noqa: E402
import setup_env  # noqa: E402
import workloads  # noqa: E402
from peers import floor  # noqa: E402

ROOT = setup_env.ROOT
RESULTS = os.path.join(HERE, "results")
MAIN_VARIANTS = [v for _, tools in report.ROWS for _, v in tools]
MAIN_VARIANTS = sorted(set(MAIN_VARIANTS), key=MAIN_VARIANTS.index)
# On a second Python only what differs there: the event sources (the frame hook is
# refused on 3.12) against cProfile and the floors.
EXTRA_VARIANTS = ["control", "ours_fp_one_monitoring", "ours_fp_one_frame",
                  "ours_fp_all_monitoring", "ours_fp_all_frame", "cprofile",
                  "floor_fp_one", "floor_fp_all"]
ORIGINAL_VARIANTS = ["original_fp_one", "original_lp_one"]
# The other parts' benches and the arguments that keep each inside our time budget
# (default mode, quick mode); "--json" is always added.
OTHER_BENCHES = {
    "bench_engine": ([], ["--quick"]),
    "bench_recording": ([], ["--quick"]),
    "bench_update": ([], ["--quick"]),
    # Its defaults (30 rounds up to 16 processes, 9x20 idle reps) take ~6 min here.
    "bench_controller": (["--rounds", "10", "--procs", "1,4,16", "--idle-rounds", "5",
                          "--idle-reps", "8"],
                         ["--rounds", "5", "--procs", "1,4", "--idle-rounds", "3",
                          "--idle-reps", "4"]),
    "bench_processlogs": ([], ["--quick"]),
}


def say(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~2-3 minutes: 2 rounds, short runs")
    p.add_argument("--rounds", type=int,
                   help="most rounds per cell (default 9, quick 2); fewer when the time "
                        "budget runs out, never fewer than --min-rounds")
    p.add_argument("--min-rounds", type=int, help="default 3, quick 2")
    p.add_argument("--budget", type=float,
                   help="seconds for the whole bench (default 720, quick 150); sections "
                        "stop adding rounds when their share is spent")
    p.add_argument("--target", type=float,
                   help="seconds per baseline run (default 0.1, quick 0.04)")
    p.add_argument("--workloads", help="comma-separated subset of: " + ",".join(workloads.NAMES))
    p.add_argument("--variants", help="comma-separated subset of the main table's tools")
    p.add_argument("--extra-python", default="auto",
                   help="second interpreter for the event-source rows (default: the 3.13 "
                        "venv from `./dev env 3.13`, rebuilt if sources changed; '' to skip)")
    p.add_argument("--no-original", action="store_true", help="skip PyLiveUpdate 0.3.1")
    p.add_argument("--no-others", action="store_true", help="skip the other bench_*.py")
    p.add_argument("--parallel-sections", action="store_true",
                   help="run the 3.13 and 0.3.1 sections alongside the main table (for a "
                        "machine that is loaded anyway: figures are CPU-time ratios, so "
                        "they hold; wall time drops to about the main table's)")
    p.add_argument("--out", default=RESULTS, help="directory for latest.md/latest.json")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 9)
    args.min_rounds = min(args.rounds, args.min_rounds or (2 if args.quick else 3))
    args.budget = args.budget or (150.0 if args.quick else 720.0)
    args.target = args.target or (0.04 if args.quick else 0.1)
    args.workloads = args.workloads.split(",") if args.workloads else list(workloads.NAMES)
    args.variants = args.variants.split(",") if args.variants else list(MAIN_VARIANTS)
    if "control" not in args.variants:
        args.variants.insert(0, "control")
    return args


def progress(workload, variant, index, cell, seconds):
    if "unavailable" in cell and not cell["rounds"]:
        say("  %-9s %-24s n/a: %s" % (workload, variant, cell["unavailable"][:90]))
    elif "error" in cell:
        say("  %-9s %-24s FAILED: %s" % (workload, variant, cell["error"][:200]))
    elif cell["rounds"]:
        say("  %-9s %-24s round %d: %.2fx (%.1fs)" % (
            workload, variant, index + 1, cell["rounds"][-1]["ratio"], seconds))


def run_table(python, variants, args, env, label, deadline, tool_repeat=None,
              tool_warmup=None, rounds=None, min_rounds=None, timeout=300):
    """Calibrate every workload, then measure them round-robin (round 1 of every
    workload, then round 2, ...) until ``rounds`` or until ``deadline`` (time.monotonic)
    would pass, but at least ``min_rounds``. Returns {cells, workloads, rounds}."""
    rounds = rounds or args.rounds
    min_rounds = min(rounds, min_rounds or args.min_rounds)
    runner = harness.ChildRunner(python, env=env, timeout=timeout)
    cells, meta, sets = {}, {}, []
    for name in args.workloads:
        try:
            repeat, per_unit = harness.calibrate(runner, name, args.target)
        except (harness.ChildFailed, harness.Unavailable) as exc:
            say("%s: workload %s cannot run: %s" % (label, name, exc))
            cells[name] = {v: {"error": "workload failed: %s" % exc} for v in variants}
            continue
        meta[name] = {"repeat": repeat, "seconds_per_unit": per_unit}
        say("%s: %s, %d units of %.1f ms per run" % (label, name, repeat, 1000 * per_unit))
        sets.append(harness.Cells(runner, name, variants, repeat, progress=progress,
                                  tool_repeat=tool_repeat, tool_warmup=tool_warmup))
    done = 0
    for index in range(rounds):
        started = time.monotonic()
        for cellset in sets:
            cellset.run_round(index)
        done += 1
        took = time.monotonic() - started
        say("%s: round %d done in %.0f s" % (label, done, took))
        if done >= min_rounds and time.monotonic() + took > deadline:
            say("%s: stopping after %d rounds (time budget)" % (label, done))
            break
    for cellset in sets:
        cells[cellset.workload] = cellset.results()
    return {"cells": cells, "workloads": meta, "rounds": done}


def floor_env(python):
    """Build the no-op callback for ``python`` and return the env that finds it."""
    tag = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    out_dir = os.path.join(ROOT, ".venv", "bench-build", tag)
    subprocess.run([python, "-c", "import sys; sys.path.insert(0, %r); "
                    "from peers import floor; floor.build(%r)" % (HERE, out_dir)], check=True)
    env = dict(os.environ)
    env[floor.ENV_DIR] = out_dir
    return env, tag


def start_controller(python, env):
    """A live controller for the idle-stub row; returns (process or None, env)."""
    import secrets
    token = secrets.token_hex(32)
    env = dict(env)
    try:
        proc = subprocess.Popen([python, os.path.join(HERE, "controller_host.py"), token],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            raise OSError("no port from controller_host.py (exit %s)" % proc.poll())
    except OSError as exc:
        say("no controller for the idle row: %s" % exc)
        return None, env
    env["PYLU_BENCH_CONTROLLER"] = "127.0.0.1:" + port
    env["PYLU_TOKEN"] = token
    return proc, env


def stop_controller(proc):
    if proc is not None:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _dev_env(version):
    """`./dev env VERSION`: the path of an up-to-date venv python, or raise."""
    done = subprocess.run([os.path.join(ROOT, "dev"), "env", version], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.path.exists(path):
        raise OSError("./dev env %s failed: %s" % (version, done.stderr.strip()[-300:]))
    return path


def run_extra(args, deadline):
    """The event-source rows again on a second Python (3.13: the frame hook is allowed)."""
    python = args.extra_python
    try:
        if python == "auto":
            python = _dev_env("3.13")
        setup_env.ensure_requirements(python, os.path.join(HERE, "requirements.txt"))
        env, tag = floor_env(python)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return {"python": python, "error": "set-up failed: %s" % exc}
    variants = [v for v in EXTRA_VARIANTS if v in args.variants]
    say("event sources on Python %s: %d tools" % (tag, len(variants)))
    out = run_table(python, variants, args, env, "py" + tag, deadline)
    out.update({"python": tag, "variants": variants})
    return out


def _start_original_log_server(python, env, directory):
    """`pylu-controller -l`'s log server, on its fixed port 9020, or None if taken."""
    if not _port_free(9020):
        return None, "port 9020 taken: its log server not started (remote records dropped)"
    logfile = os.path.join(directory, "pyliveupdate.log")
    proc = subprocess.Popen(
        [python, "-c", "from pyliveupdate.controller.logserver import start_log_server; "
         "start_log_server(logfile=%r)" % logfile],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, cwd=directory)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        if not _port_free(9020):
            return proc, "its log server (`pylu-controller -l`) ran in its own process"
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return None, "its log server did not start (exit %s)" % proc.returncode


def run_original(args, deadline):
    """PyLiveUpdate 0.3.1 on 3.9, applied in-process through its own API."""
    try:
        python = setup_env.ensure_original_venv()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        return {"error": "its venv could not be set up: %s" % exc}
    from workloads.pyperformance_loader import benchmarks_dir
    home = tempfile.mkdtemp(prefix="pylu-bench-orig-")
    env = dict(os.environ)
    env["HOME"] = home  # 0.3.1 creates ~/.pyliveupdate at import
    env["PYLU_BENCH_PYPERFORMANCE_DIR"] = benchmarks_dir()
    server, note = _start_original_log_server(python, env, home)
    # It costs ~0.2-1 ms per profiled call (every call logs to stderr and through a
    # queue thread to the log server), so one unit of a call-heavy workload takes
    # seconds: its runs time one unit without warm-up (3.9 has no specialising
    # interpreter to warm), in 2 rounds, or this section alone would take the budget.
    try:
        variants = ["control"] + ORIGINAL_VARIANTS
        say("original PyLiveUpdate 0.3.1 on %s" % python)
        out = run_table(python, variants, args, env, "py3.9 original", deadline,
                        tool_repeat=1, tool_warmup=0, rounds=min(args.rounds, 3),
                        min_rounds=2, timeout=900)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        log_bytes = sum(os.path.getsize(os.path.join(home, f)) for f in os.listdir(home)
                        if f.startswith("pyliveupdate.log"))
        shutil.rmtree(home, ignore_errors=True)
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    out["python"] = version
    out["setup_note"] = (
        "Applied in-process with `pyliveupdatescripts.FP.profile(pattern)` / "
        "`LP.profile(pattern, lines)` (what its controller sends), on the hot function of "
        "each workload; %s and received %.1f MB; every profiled call also writes a line to "
        "the target's stderr (a file here), as 0.3.1 always does. %d rounds; its runs time "
        "one unit, without warm-up." % (note, log_bytes / 1e6, out["rounds"]))
    return out


def run_others(args):
    """Run the other parts' bench_*.py --json and keep their figures."""
    out = {}
    for name, (default_args, quick_args) in sorted(OTHER_BENCHES.items()):
        path = os.path.join(HERE, name + ".py")
        if not os.path.exists(path):
            out[name] = {"missing": True}
            continue
        extra = quick_args if args.quick else default_args
        cmd = [sys.executable, path, "--json"] + extra
        say("running %s" % " ".join(cmd[1:]))
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
        except subprocess.TimeoutExpired:
            out[name] = {"error": "timed out after 300 s"}
            continue
        if done.returncode != 0 and extra and "unrecognized arguments" in done.stderr:
            cmd = cmd[:3]  # an older version of that bench: its defaults
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            out[name] = {"error": "exit %d: %s" % (done.returncode,
                                                   done.stderr.strip()[-400:])}
            continue
        try:
            out[name] = {"json": json.loads(done.stdout), "seconds": seconds,
                         "command": " ".join(["bench/%s.py" % name] + cmd[3:])}
        except ValueError:
            lines = done.stdout.strip().splitlines()
            try:
                out[name] = {"json": json.loads(lines[-1]), "seconds": seconds}
            except (ValueError, IndexError):
                out[name] = {"error": "output is not JSON: %r" % done.stdout[-200:]}
    return out


def write(results, out_dir, final=True):
    """Write latest.md/latest.json (also after each section, so an interrupted run
    leaves what it measured, marked as partial)."""
    os.makedirs(out_dir, exist_ok=True)
    results["meta"]["partial"] = not final
    md = report.render(results)
    for name, text in (("latest.json", json.dumps(results, indent=1, sort_keys=True) + "\n"),
                       ("latest.md", md)):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))
    if not final:
        return
    sys.stdout.write(md)
    say("wrote %s and %s" % (os.path.join(out_dir, "latest.md"),
                              os.path.join(out_dir, "latest.json")))


# Shares of the time budget, in the order the sections run (the main table first:
# it matters most). Each section stops adding rounds once its share is spent.
SHARES = (("main", 0.55), ("extra", 0.15), ("original", 0.15), ("others", 0.15))


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    setup_env.ensure_requirements(sys.executable, os.path.join(HERE, "requirements.txt"))
    env, tag = floor_env(sys.executable)
    deadlines, at = {}, started
    for section, share in SHARES:
        at += share * args.budget
        deadlines[section] = at
    results = {"meta": {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": setup_env.machine(), "python": sys.version.split()[0],
        "rounds": args.rounds, "target_seconds": args.target, "quick": args.quick,
        "budget_seconds": args.budget, "workloads": args.workloads,
        "variants": args.variants,
        "command": " ".join(["./dev bench"] + list(argv)),
    }}
    results["meta"]["parallel_sections"] = args.parallel_sections
    say("main table on Python %s: %d tools x %d workloads, %d-%d rounds" % (
        results["meta"]["python"], len(args.variants), len(args.workloads),
        args.min_rounds, args.rounds))
    sections = []
    if args.extra_python:
        sections.append(("extra_python", lambda deadline: run_extra(args, deadline), "extra"))
    if not args.no_original:
        sections.append(("original", lambda deadline: run_original(args, deadline),
                         "original"))
    threads = []
    if args.parallel_sections and not args.no_others:
        sections.append(("other_benches", lambda deadline: run_others(args), "others"))
    if args.parallel_sections:
        import threading
        for key, run, _ in sections:
            def target(key=key, run=run):
                results[key] = run(deadlines["main"])
            thread = threading.Thread(target=target, name=key)
            thread.start()
            threads.append(thread)
    controller, env = start_controller(sys.executable, env)
    try:
        main_run = run_table(sys.executable, args.variants, args, env, "py" + tag,
                             deadlines["main"])
    finally:
        stop_controller(controller)
    results["cells"], results["workloads"] = main_run["cells"], main_run["workloads"]
    results["meta"]["rounds"] = main_run["rounds"]
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    write(results, args.out, final=False)
    for thread in threads:
        thread.join()
    for key, run, share in ([] if threads else sections):
        results[key] = run(deadlines[share])
        write(results, args.out, final=False)
    if not args.no_others and "other_benches" not in results:
        results["other_benches"] = run_others(args)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    load = os.getloadavg()
    results["meta"]["machine"]["loadavg_at_end"] = [round(x, 2) for x in load]
    write(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
