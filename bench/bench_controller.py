"""Controller benchmarks.

1. Command-to-applied latency: N processes (1, 4, 16) run CPU-bound Python with a stub;
   the controller sends a command that applies an update (then one that reverts it) and
   we time, per process, from sending to receiving its reply (which is sent once the
   update is applied there). Target: p99 <= 20 ms.
2. Convergence: with two updates active (a profiler and a patch file), N new workers
   (1, 16) start at once; per worker, the time from its spawn (and from its stub's
   start()) to start() returning with the updates in effect (the first sync).
3. Idle cost of a started stub with no controller: the same workloads in processes with
   and without a stub that keeps retrying a dead address; rounds are interleaved and
   the ratio per round is reported as median and spread. Target <= 1.01x.

    python bench/bench_controller.py [--rounds N] [--procs 1,4,16] [--json]
"""
import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def latency(nprocs, rounds, apply_cmd, revert_cmd):
    from pyliveupdate_controller.server import Server
    token = secrets.token_hex(24)
    server = Server("127.0.0.1", 0, token=token, command_timeout=30).start()
    env = dict(os.environ, PYLU_CONTROLLER="127.0.0.1:%d" % server.port, PYLU_TOKEN=token)
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "cpu_target.py")], env=env,
                              stdout=subprocess.DEVNULL) for _ in range(nprocs)]
    try:
        if not server.wait_for(nprocs, 60):
            raise SystemExit("only %d of %d targets connected" % (len(server.processes()), nprocs))
        samples, failures = [], 0
        for r in range(rounds + 3):
            for cmd in (apply_cmd, revert_cmd):
                src = cmd.format(id=server.next_id - 1)
                procs_now = server.processes()
                t0 = time.perf_counter()
                waiters = [p.send_request({"op": "exec", "src": src, "base": server.next_id})
                           for p in procs_now]
                for w in waiters:
                    reply = w.wait(30)
                    dt = (time.perf_counter() - t0) * 1000
                    if cmd is apply_cmd and r >= 3:  # 3 warm-up rounds
                        samples.append(dt)
                    failures += not reply.get("ok")
                    server.next_id += 0
                if cmd is apply_cmd:
                    server.next_id += max(int(w.value.get("used") or 0) for w in waiters)
        return {"procs": nprocs, "samples": len(samples), "failed": failures,
                "p50_ms": _percentile(samples, 0.5), "p99_ms": _percentile(samples, 0.99),
                "max_ms": max(samples)}
    finally:
        server.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


PATCH_SRC = ("from pyliveupdate.update import Redefine, UpdateManager\n"
             "import __main__\n"
             "UpdateManager.apply_update(Redefine('__main__', None, "
             "{'__main__.spin': lambda n: n}))\n")


def convergence(nworkers, rounds):
    """Seconds from spawn to converged, and from start() to converged, per worker."""
    from pyliveupdate_controller.server import Server
    token = secrets.token_hex(24)
    server = Server("127.0.0.1", 0, token=token, command_timeout=30).start()
    env = dict(os.environ, PYLU_CONTROLLER="127.0.0.1:%d" % server.port, PYLU_TOKEN=token,
               PYLU_INSTANCE="bench-converge")     # one instance: every worker matches
    seed = subprocess.Popen([sys.executable, os.path.join(HERE, "converge_target.py")], env=env,
                            stdout=subprocess.PIPE, text=True)
    spawn_ms, stub_ms, missing = [], [], 0
    try:
        seed.stdout.readline()
        for src, name in (("FP.profile('__main__.spin')", "<controller>"),
                          (PATCH_SRC, "<patch bench>")):
            results = server.run(src, name, echo=False)
            if not all(r.get("ok") for _, r in results):
                raise SystemExit("bench setup failed: %s" % results)
        for _ in range(rounds):
            spawned = []
            for _ in range(nworkers):
                t = time.time()
                spawned.append((t, subprocess.Popen(
                    [sys.executable, os.path.join(HERE, "converge_target.py")], env=env,
                    stdout=subprocess.PIPE, text=True)))
            for t, p in spawned:
                row = json.loads(p.stdout.readline())
                spawn_ms.append((row["synced"] - t) * 1000)
                stub_ms.append((row["synced"] - row["stub"]) * 1000)
                missing += row["active"] != [1, 2]
            for _, p in spawned:
                p.terminate()
            for _, p in spawned:
                p.wait(10)
        return {"workers": nworkers, "samples": len(spawn_ms), "not_converged": missing,
                "spawn_p50_ms": _percentile(spawn_ms, 0.5), "spawn_p99_ms": _percentile(spawn_ms, 0.99),
                "stub_p50_ms": _percentile(stub_ms, 0.5), "stub_p99_ms": _percentile(stub_ms, 0.99)}
    finally:
        seed.terminate()
        seed.wait(10)
        server.close()


def idle_cost(rounds, reps):
    env = dict(os.environ, BENCH_DEAD_ADDR="127.0.0.1:%d" % _free_port(),
               PYLU_TOKEN=secrets.token_hex(24))
    ratios = {}
    for _ in range(rounds):
        times = {}
        for mode in ("base", "stub"):
            out = subprocess.run([sys.executable, os.path.join(HERE, "idle_workload.py"), mode,
                                  str(reps / 10.0)], env=env, capture_output=True, text=True,
                                 check=True)
            times[mode] = json.loads(out.stdout)
        for name in times["base"]:
            ratios.setdefault(name, []).append(times["stub"][name] / times["base"][name])
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v),
                   "rounds": len(v)} for name, v in ratios.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--procs", default="1,4,16")
    p.add_argument("--idle-rounds", type=int, default=9)
    p.add_argument("--idle-reps", type=float, default=10,
                   help="length of each workload run, in tenths of a second")
    p.add_argument("--apply", default="FP.profile('__main__.spin')")
    p.add_argument("--revert", default="LU.revert({id})")
    p.add_argument("--workers", default="1,16", help="new workers started at once (convergence)")
    p.add_argument("--converge-rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = {"latency": [latency(int(n), args.rounds, args.apply, args.revert)
                          for n in args.procs.split(",")],
              "converge": [convergence(int(n), args.converge_rounds)
                           for n in args.workers.split(",")],
              "idle": idle_cost(args.idle_rounds, args.idle_reps),
              "python": sys.version.split()[0], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("command-to-applied latency (%r), target p99 <= 20 ms" % args.apply)
    print("  procs  samples  failed   p50 ms   p99 ms   max ms")
    for row in result["latency"]:
        print("  %5d  %7d  %6d  %7.2f  %7.2f  %7.2f" % (row["procs"], row["samples"], row["failed"],
                                                     row["p50_ms"], row["p99_ms"], row["max_ms"]))
    print("new workers to converged (two active updates), from spawn and from start()")
    print("  workers  samples  missing  spawn p50  spawn p99  start p50  start p99 (ms)")
    for row in result["converge"]:
        print("  %7d  %7d  %7d  %9.1f  %9.1f  %9.1f  %9.1f" % (
            row["workers"], row["samples"], row["not_converged"], row["spawn_p50_ms"],
            row["spawn_p99_ms"], row["stub_p50_ms"], row["stub_p99_ms"]))
    print("idle cost of a started stub with no controller (ratio stub/base), target <= 1.01x")
    print("  workload     median    min    max  rounds")
    for name, row in result["idle"].items():
        print("  %-10s  %6.3fx %6.3f %6.3f  %6d" % (name, row["median"], row["min"], row["max"],
                                                 row["rounds"]))


if __name__ == "__main__":
    main()
