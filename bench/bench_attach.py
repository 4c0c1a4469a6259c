"""pylu-attach benchmarks.

1. Attach latency: from starting `pylu-attach PID` to the process being listed by the
   controller (procs()), for a fresh process each round: one parked in time.sleep (reached
   in a blocking call) and one running Python code (reached at the eval breaker).
   p50 and p90 over --rounds.
2. Pause during injection, as the target sees it: a thread in the target runs Python code
   and reports the longest gap between two iterations of its loop per 20 ms window; we
   compare the longest gap of the windows during the attach with those before it.

    python bench/bench_attach.py [--rounds 10] [--json]
"""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIXTURES = os.path.join(ROOT, "tests", "fixtures_attach")
BARE = getattr(sys, "_base_executable", None) or sys.executable


def _percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


class _Program:
    def __init__(self, path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYLU_")}
        self.proc = subprocess.Popen([BARE, path], stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=dict(env, PYTHONUNBUFFERED="1"), cwd=os.path.dirname(path))
        self.pid = int(self.proc.stdout.readline().split()[1])
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def _attach(pid, port, token):
    return subprocess.Popen([sys.executable, "-m", "pyliveupdate_controller.attach.cli", str(pid),
                             "--controller", "127.0.0.1:%d" % port, "--token", token,
                             "--connect-wait", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/")


def latency(server, token, program, rounds):
    samples, how = [], set()
    for _ in range(rounds):
        prog = _Program(os.path.join(FIXTURES, program))
        try:
            time.sleep(0.2)
            t0 = time.perf_counter()
            attach = _attach(prog.pid, server.port, token)
            while not any(p.pid == prog.pid for p in server.processes(all_=True)):
                if attach.poll() not in (None, 0) or time.perf_counter() - t0 > 60:
                    raise SystemExit("attach failed: %s" % attach.communicate()[0])
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
            out = attach.communicate(timeout=60)[0]
            how.update(w for w in ("eval breaker", "blocking call") if w in out)
        finally:
            prog.stop()
            _wait_gone(server, prog.pid)
    return {"program": program, "rounds": rounds, "reached": sorted(how),
            "p50_ms": _percentile(samples, 0.5), "p90_ms": _percentile(samples, 0.9),
            "max_ms": max(samples)}


def _wait_gone(server, pid):
    deadline = time.monotonic() + 30
    while any(p.pid == pid for p in server.processes(all_=True)) and time.monotonic() < deadline:
        time.sleep(0.01)


def pause(server, token, rounds):
    during, before = [], []
    for _ in range(rounds):
        prog = _Program(os.path.join(HERE, "attach_probe.py"))
        try:
            time.sleep(1.0)
            start = time.monotonic()
            attach = _attach(prog.pid, server.port, token)
            attach.communicate(timeout=120)
            while not any(p.pid == prog.pid for p in server.processes(all_=True)):
                time.sleep(0.01)
            end = time.monotonic() + 0.2
            time.sleep(0.3)
            gaps = [(float(l[2]), float(l[1])) for l in list(prog.lines) if l and l[0] == "gap"]
            before.append(max(g for t, g in gaps if t < start - 0.05))
            during.append(max(g for t, g in gaps if start <= t <= end + 0.05))
        finally:
            prog.stop()
            _wait_gone(server, prog.pid)
    return {"rounds": rounds, "baseline_max_gap_ms_p50": statistics.median(before),
            "attach_max_gap_ms_p50": statistics.median(during),
            "attach_max_gap_ms_max": max(during)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    from pyliveupdate_controller.server import Server
    token = secrets.token_hex(24)
    server = Server("127.0.0.1", 0, token=token, command_timeout=30).start()
    try:
        result = {"latency": [latency(server, token, "sleeper.py", args.rounds),
                              latency(server, token, "busy_in_python.py", args.rounds)],
                  "pause": pause(server, token, args.rounds),
                  "python": sys.version.split()[0], "cpus": os.cpu_count()}
    finally:
        server.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("pylu-attach to listed by procs(), a fresh process each round")
    print("  program              reached              p50 ms   p90 ms   max ms")
    for row in result["latency"]:
        print("  %-19s  %-19s %7.0f  %7.0f  %7.0f" % (row["program"], ",".join(row["reached"]),
                                                    row["p50_ms"], row["p90_ms"], row["max_ms"]))
    r = result["pause"]
    print("pause seen by a thread of the target running Python code (longest loop gap)")
    print("  without attach (p50 of rounds): %.1f ms; during attach: p50 %.1f ms, max %.1f ms"
          % (r["baseline_max_gap_ms_p50"], r["attach_max_gap_ms_p50"], r["attach_max_gap_ms_max"]))


if __name__ == "__main__":
    main()
