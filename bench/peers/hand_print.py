"""A print added by hand: the floor for "debugging output on one function".

What an engineer would type into the hot function to see its arguments and return
value, rate-limited as our FuncDebugger is (at most RATE lines per second, checked with
time.monotonic()), so the two rows produce the same output. The edit is made to the
source with ``ast`` and compiled against the real module globals, then swapped into
the function's ``__code__``: the function runs exactly as if the file had been edited.
"""
import ast
import inspect
import sys
import textwrap
import time

RATE = 100  # lines per second, the same budget as ours_fd_one
GATE = "_pylu_bench_gate"  # names added to the target module's globals
OUT = "_pylu_bench_print"


def _gate_stmt(print_args):
    """``if now >= gate[0]: gate[0] = now + 1/RATE; print(...)`` as an AST statement."""
    source = textwrap.dedent("""
        if {mono}() >= {gate}[0]:
            {gate}[0] = {mono}() + {interval!r}
            {out}({args})
        """).format(mono="_pylu_bench_monotonic", gate=GATE, out=OUT,
                    interval=1.0 / RATE, args=print_args)
    return ast.parse(source).body[0]


class _Returns(ast.NodeTransformer):
    """``return X`` -> ``_r = X; <gated print of _r>; return _r`` in the function itself."""

    def __init__(self, name):
        self.name = name

    def visit_FunctionDef(self, node):  # nested functions keep their own returns
        return node

    visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_FunctionDef

    def visit_Return(self, node):
        value = node.value if node.value is not None else ast.Constant(None)
        assign = ast.Assign(targets=[ast.Name("_pylu_bench_r", ast.Store())], value=value)
        report = _gate_stmt("%r, '->', _pylu_bench_r" % (self.name + " returned"))
        ret = ast.Return(ast.Name("_pylu_bench_r", ast.Load()))
        return [assign, report, ret]


def add_print(func):
    """Recompile ``func`` with a rate-limited print of its arguments and return value."""
    source = textwrap.dedent(inspect.getsource(func))
    tree = ast.parse(source)
    fdef = tree.body[0]
    fdef.decorator_list = []
    params = [a.arg for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs]
    name = func.__qualname__
    entry = _gate_stmt(", ".join([repr(name + " called")] + params))
    body = []
    for stmt in fdef.body:
        new = _Returns(name).visit(stmt)
        body.extend(new if isinstance(new, list) else [new])
    fdef.body = [entry] + body
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, func.__code__.co_firstlineno - 1)
    module = sys.modules[func.__module__]
    code = compile(tree, inspect.getsourcefile(func), "exec")
    scratch = {}
    exec(code, module.__dict__, scratch)
    return scratch[fdef.name].__code__, module


class HandPrint(object):
    def __init__(self, workload):
        self.workload = workload
        self.lines = 0

    def start(self):
        func = self.workload.hot
        new_code, module = add_print(func)
        stdout = sys.stdout

        def out(*args):
            self.lines += 1
            print(*args, file=stdout)

        module.__dict__.update({GATE: [0.0], OUT: out,
                                "_pylu_bench_monotonic": time.monotonic})
        func.__code__ = new_code

    def stop(self):
        sys.stdout.flush()
        return {"lines": self.lines}
