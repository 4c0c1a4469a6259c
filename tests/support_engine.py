"""Shared helpers for the engine tests: run a script in a fresh interpreter, and a
deterministic workload whose function and line counts are known to other tools."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ON_312 = sys.version_info < (3, 13)
SOURCES = ["monitoring", "frame"]

WORKLOAD = textwrap.dedent('''
    import types


    def leaf(x):
        return x * 2


    def mid(n):
        s = 0
        for i in range(n):
            s += leaf(i)
        return s


    def rec(n):
        if n < 2:
            return 1
        return rec(n - 1) + rec(n - 2)


    def gen(n):
        for i in range(n):
            yield leaf(i)


    def fails(x):
        if x % 3 == 0:
            raise ValueError(x)
        return x


    def catcher(n):
        caught = 0
        for i in range(n):
            try:
                fails(i)
            except ValueError:
                caught += 1
        return caught


    @types.coroutine
    def pause():
        yield


    async def sub(i):
        await pause()
        return i


    async def coro(n):
        total = 0
        for i in range(n):
            total += await sub(i)
        return total


    def drive(c):
        try:
            while True:
                c.send(None)
        except StopIteration as stop:
            return stop.value


    def thrower():
        try:
            yield 1
        except KeyError:
            yield 2
        yield 3


    def use_thrower():
        g = thrower()
        next(g)
        g.throw(KeyError)
        g.close()


    class Box:
        def __init__(self, v):
            self.v = v

        def get(self):
            return self.v


    class Sub(Box):
        def __init__(self, v):
            super().__init__(v)


    def construct(n):
        # a class call site: on 3.13 it specializes to CALL_ALLOC_AND_ENTER_INIT,
        # which enters __init__ without any PEP 523 hook
        for i in range(n):
            Box(i)
            Sub(i)


    def oneliners(n):
        s = 0
        for i in range(n): s += leaf(i)
        while n: n -= 1
        return s


    def main():
        oneliners(4)
        mid(20)
        rec(8)
        list(gen(5))
        catcher(7)
        drive(coro(3))
        use_thrower()
        [Box(i).get() for i in range(3)]
        construct(200)
''')

WORKLOAD_FUNCS = ["leaf", "mid", "rec", "gen", "fails", "catcher", "pause", "sub", "coro",
                  "drive", "thrower", "use_thrower", "Box.__init__", "get", "main", "oneliners",
                  "Sub.__init__", "construct"]

PRELUDE = textwrap.dedent('''
    import json, sys
    sys.path.insert(0, {dir!r})
    import workload
    from pyliveupdate import engine, _engine

    def workload_codes():
        """{{name: code}} of the workload functions; methods as Class.name."""
        out = {{}}
        for name, obj in vars(workload).items():
            if isinstance(obj, type):
                for k, v in vars(obj).items():
                    if hasattr(v, "__code__"):
                        out[k if k != "__init__" else name + "." + k] = v.__code__
            elif hasattr(obj, "__code__") and getattr(obj, "__module__", "") == "workload":
                out[name] = obj.__code__
        return out

    def code_keys(codes):
        """{{name: [first line, co_name]}}: how cProfile names each code."""
        return {{name: [c.co_firstlineno, c.co_name] for name, c in codes.items()}}

    def slices(code):
        st = _engine.code_state(code)
        if st is None:
            return (0, 0)
        h = st["hits"]
        return (h[_engine.EV_CALL] + h[_engine.EV_RESUME],
                h[_engine.EV_RETURN] + h[_engine.EV_YIELD] + h[_engine.EV_UNWIND])

    def emit(obj):
        print("RESULT " + json.dumps(obj), flush=True)
''')


CPROFILE_COUNTS = '''
    import cProfile, pstats
    prof = cProfile.Profile()
    prof.enable()
    $CALL
    prof.disable()
    emit({"%d:%s" % (line, name): row[1] for (fn, line, name), row
          in pstats.Stats(prof).stats.items() if fn.endswith("$FILE")})
'''


def cprofile_counts(tmp_path, call="workload.main()", file="workload.py", setup=""):
    """Calls per function as cProfile counts them (a generator's resumptions each count),
    keyed "firstline:name", from a process of its own: cProfile's CALL events keep call
    sites from specializing, which would hide what an event source misses there."""
    directory = tmp_path / "cprofile"
    directory.mkdir(exist_ok=True)
    body = textwrap.dedent(setup) + textwrap.dedent(
        CPROFILE_COUNTS.replace("$CALL", call).replace("$FILE", file))
    result, _ = run_script(directory, body)
    return {(int(k.split(":", 1)[0]), k.split(":", 1)[1]): v for k, v in result.items()}


def counts_by_name(keys, counts):
    """cprofile_counts() keyed by the names of code_keys() (emitted by a script)."""
    return {name: counts.get((line, co_name), 0) for name, (line, co_name) in keys.items()}


def write_workload(directory):
    path = os.path.join(str(directory), "workload.py")
    with open(path, "w") as f:
        f.write(WORKLOAD)
    return path


def run_script(tmp_path, body, timeout=60, env=None, expect_ok=True):
    """Run PRELUDE + body in a fresh interpreter; return the object passed to emit()."""
    write_workload(tmp_path)
    script = PRELUDE.format(dir=str(tmp_path)) + textwrap.dedent(body)
    path = os.path.join(str(tmp_path), "script.py")
    with open(path, "w") as f:
        f.write(script)
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(tmp_path))
    if expect_ok:
        assert proc.returncode == 0, "script failed:\n%s\n%s" % (proc.stdout, proc.stderr)
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines()
               if line.startswith("RESULT ")]
    if expect_ok:
        assert results, "no result:\n%s\n%s" % (proc.stdout, proc.stderr)
    return results[-1] if results else None, proc


def source_param():
    """Parametrize over both sources; on 3.12 the frame source is asserted to be refused
    (and to fall back to sys.monitoring) rather than skipped."""
    return pytest.mark.parametrize("source", SOURCES)


def expected_source(source):
    return "monitoring" if (source == "frame" and ON_312) else source
