"""Apply and revert latency of a 10-function update (target: <= 2 ms each), and the cost
of finding code by origin on a large package.

    python bench/bench_update.py [--rounds N] [--functions K] [--json] [--quick]
                                 [--origin-package django]

Wall-clock spread on a loaded machine is mostly scheduling; the CPU-time columns show
the work itself.

Builds a module of K functions (and a class with K methods), then times
UpdateManager apply/revert of: a Redefine of the K functions, a Redefine of a class with K
changed methods, and (when the engine is built) an Instrument of the K functions with
func_begin + func_end handlers. Rounds alternate apply and revert; reported: median and
spread (p10-p90) in milliseconds.

Origin scan (``--origin-package``, default django when importable): import every module
of the package (pkgutil.walk_packages; modules that fail to import are skipped and
counted), then time resolving ``pkg.**`` (the static walk of module and class dicts plus
the gc pass that finds functions by their file) and the gc pass alone, with the number of
gc-tracked objects and of code objects found.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time


def make_module(directory, k):
    lines = ["class Svc:"]
    lines += ["    def m%d(self, x):\n        return x + %d" % (i, i) for i in range(k)]
    lines += ["def f%d(x):\n    y = x * %d\n    return y" % (i, i) for i in range(k)]
    with open(os.path.join(directory, "bench_target_mod.py"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    sys.path.insert(0, directory)
    import bench_target_mod
    return bench_target_mod


def new_functions(k):
    ns = {}
    exec("\n".join("def f%d(x):\n    return x - %d" % (i, i) for i in range(k)), ns)
    return {"bench_target_mod.f%d" % i: ns["f%d" % i] for i in range(k)}


def new_class(k):
    ns = {}
    exec("class Svc:\n" + "\n".join("    def m%d(self, x):\n        return x - %d" % (i, i)
                                    for i in range(k)), ns)
    return {"bench_target_mod.Svc": ns["Svc"]}


def time_rounds(make_update, rounds):
    from pyliveupdate.update import UpdateManager
    apply_ms, revert_ms, apply_cpu, revert_cpu = [], [], [], []
    update = make_update()
    sink = io.StringIO()
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for _ in range(rounds):
        with contextlib.redirect_stdout(sink):
            t0, c0 = clock(), cpu()
            ok = UpdateManager.apply_update(update)
            t1, c1 = clock(), cpu()
            ok2 = UpdateManager.revert_update(update.id)
            t2, c2 = clock(), cpu()
        if not (ok and ok2):
            raise SystemExit("update failed: %s" % update.status)
        apply_ms.append((t1 - t0) / 1e6)
        revert_ms.append((t2 - t1) / 1e6)
        apply_cpu.append((c1 - c0) / 1e6)
        revert_cpu.append((c2 - c1) / 1e6)
    return apply_ms, revert_ms, apply_cpu, revert_cpu


def summary(values, cpu):
    qs = statistics.quantiles(values, n=10)
    return {"median_ms": statistics.median(values), "p10_ms": qs[0], "p90_ms": qs[-1],
            "cpu_median_ms": statistics.median(cpu),
            "cpu_p90_ms": statistics.quantiles(cpu, n=10)[-1]}


def origin_scan(package, rounds):
    """Time targets.resolve('<package>.**') and the origin scan alone on a package with
    every module imported."""
    import gc
    import importlib
    import pkgutil
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        return {"package": package, "error": "not importable: %s" % e}
    failed = 0
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for info in pkgutil.walk_packages(pkg.__path__, package + ".",
                                          onerror=lambda name: None):
            try:
                importlib.import_module(info.name)
            except BaseException:       # optional dependencies, settings: skip
                failed += 1
    from pyliveupdate import targets
    from pyliveupdate.updates import origin
    modules = [(n, m) for n, m in sorted(sys.modules.items())
               if (n == package or n.startswith(package + ".")) and m is not None]
    resolve_ms, scan_ms = [], []
    found = static = 0
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        res = targets.resolve(package + ".**")
        t1 = time.perf_counter_ns()
        scanned = origin.scan(origin.module_files(modules))
        t2 = time.perf_counter_ns()
        resolve_ms.append((t1 - t0) / 1e6)
        scan_ms.append((t2 - t1) / 1e6)
        found, static = len(res), len(scanned)
    return {"package": package, "version": getattr(pkg, "__version__", "?"),
            "modules": len(modules), "import_failures": failed,
            "gc_objects": len(gc.get_objects()), "codes_resolved": found,
            "codes_by_origin": static,
            "resolve_ms": statistics.median(resolve_ms), "scan_ms": statistics.median(scan_ms)}


IMPORT_CHILD = r"""
import sys, time
sys.path.insert(0, %(dir)r)
if %(hook)r:
    from pyliveupdate.updates import imports
    imports.wait_for("not_imported_by_this_program", lambda module: None)   # hook on
    imports.wait_for("also_waited_for_pkg", lambda module: None, below=True)
t0 = time.perf_counter_ns()
for i in range(%(n)d):
    __import__("hookbench_mod_%%d" %% i)
print(time.perf_counter_ns() - t0)
"""


def import_hook_cost(n=1000, rounds=9):
    """A program that imports n modules, with and without the post-import hook installed
    (waiting for modules it never imports): fresh processes, alternated; median ratio."""
    import subprocess
    directory = tempfile.mkdtemp(prefix="pylu-hookbench-")
    for i in range(n):
        with open(os.path.join(directory, "hookbench_mod_%d.py" % i), "w") as fh:
            fh.write("X = %d\n\ndef f(a):\n    return a + X\n\nclass C:\n"
                     "    def m(self):\n        return f(1)\n" % i)

    def once(hook):
        code = IMPORT_CHILD % {"dir": directory, "hook": hook, "n": n}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        return int(out.stdout.strip())
    once(False)                                    # writes the .pyc files
    ratios, base = [], []
    for _ in range(rounds):
        b, h = once(False), once(True)
        base.append(b)
        ratios.append(h / b)
    # The hook's own work, without the noise of whole processes: its find_spec for
    # modules nobody waits for, as the import system calls it once per first import.
    from pyliveupdate.updates import imports
    imports.wait_for("not_imported_by_this_program", lambda module: None)
    imports.wait_for("also_waited_for_pkg", lambda module: None, below=True)
    finder = sys.meta_path[0]
    names = ["hookbench_mod_%d" % i for i in range(n)]
    t0 = time.perf_counter_ns()
    for _ in range(20):
        for name in names:
            finder.find_spec(name, None)
    per_import_ns = (time.perf_counter_ns() - t0) / (20 * n)
    import_ms = statistics.median(base) / 1e6
    return {"modules": n, "import_ms": import_ms,
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "hook_ns_per_import": per_import_ns,
            "hook_share": per_import_ns * n / 1e6 / import_ms, "target_ratio": 1.02}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--functions", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="50 rounds")
    ap.add_argument("--origin-package", default="django",
                    help="package whose modules are all imported for the origin-scan row")
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 50)
    k = args.functions
    tmp = tempfile.mkdtemp(prefix="pylu-bench-")
    make_module(tmp, k)
    from pyliveupdate.update import Instrument, Redefine
    cases = {
        "redefine %d functions" % k: lambda: Redefine("bench_target_mod", None, new_functions(k)),
        "redefine class, %d methods" % k: lambda: Redefine("bench_target_mod", None, new_class(k)),
    }
    try:
        from pyliveupdate import engine  # noqa: F401
        cases["instrument %d functions" % k] = lambda: Instrument(
            ["bench_target_mod.f%d" % i for i in range(k)],
            {"func_begin": lambda x: None, "func_end": lambda _returnvalues: None})
    except ImportError:
        cases["instrument %d functions" % k] = None
    results = {}
    for name, make in cases.items():
        if make is None:
            results[name] = None
            continue
        time_rounds(make, 5)                          # warm-up
        a, r, ac, rc = time_rounds(make, args.rounds)
        results[name] = {"apply": summary(a, ac), "revert": summary(r, rc)}
    origin_row = origin_scan(args.origin_package, 3 if args.quick else 7)
    hook_row = import_hook_cost(rounds=5 if args.quick else 11)
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "rounds": args.rounds,
                          "target_ms": 2.0, "results": results, "origin": origin_row,
                          "import_hook": hook_row},
                         indent=2))
        return
    print("Python %s, %d rounds, target <= 2 ms" % (sys.version.split()[0], args.rounds))
    print("wall clock, and this thread's CPU time (unaffected by other processes)")
    print("%-30s %-7s %10s %8s %8s %9s %9s" % ("update", "op", "median ms", "p10 ms", "p90 ms",
                                               "cpu med", "cpu p90"))
    for name, res in results.items():
        if res is None:
            print("%-30s %s" % (name, "n/a (engine not built)"))
            continue
        for op in ("apply", "revert"):
            s = res[op]
            print("%-30s %-7s %10.3f %8.3f %8.3f %9.3f %9.3f" % (
                name, op, s["median_ms"], s["p10_ms"], s["p90_ms"], s["cpu_median_ms"],
                s["cpu_p90_ms"]))
    o = origin_row
    if "error" in o:
        print("origin scan: %s %s" % (o["package"], o["error"]))
    else:
        print("origin scan: %s %s, %d modules imported (%d failed), %d gc objects: "
              "resolve %s.** %.1f ms (%d codes), gc pass alone %.1f ms (%d codes by origin)"
              % (o["package"], o["version"], o["modules"], o["import_failures"],
                 o["gc_objects"], o["package"], o["resolve_ms"], o["codes_resolved"],
                 o["scan_ms"], o["codes_by_origin"]))
    h = hook_row
    print("import hook: %d modules imported in %.1f ms; with the post-import hook installed "
          "%.3fx (%.3f-%.3f, whole processes), target <= %.2fx; the hook's own work %.2f us "
          "per import = %.2f%% of the import time" % (
              h["modules"], h["import_ms"], h["ratio"], h["ratio_min"], h["ratio_max"],
              h["target_ratio"], h["hook_ns_per_import"] / 1e3, h["hook_share"] * 100))


if __name__ == "__main__":
    main()
