"""Code created after a wide-scope update is offered to its matcher, on both sources.

The frame hook sees every code at its first run.  sys.monitoring sees nothing it was not
told about, so a function watcher (csrc/discover.c) offers each new function's code:
functions made by exec, by types.FunctionType, closures made later, classes created
later, and module bodies run by import or exec (CPython runs those through a function
object too)."""
import textwrap

from support_engine import expected_source, run_script, source_param

LATER = textwrap.dedent('''
    def plain(x):
        return x + 1


    def make_adder(n):
        def add(x):
            return x + n
        return add


    def make_class():
        class Made:
            def __init__(self, v):
                self.v = v

            def get(self):
                return self.v
        return Made
''')

EXECD = textwrap.dedent('''
    def execd(x):
        return x * 2
''')

LOOSE = textwrap.dedent('''
    def loose():
        return 7
''')

SCENARIO = '''
    import os, types
    later_path = os.path.join(os.getcwd(), "later.py")
    with open(later_path, "w") as f:
        f.write($LATER)
    early_path = os.path.join(os.getcwd(), "early.py")
    with open(early_path, "w") as f:
        # one line down, so its codes do not compare equal to later.py's: equal codes
        # collide in engine.py's tables (issue 16 item 1, the updates layer's part)
        f.write("\\n" + $LATER)
    import early                       # imported before the update: its codes exist
    loose_module = compile($LOOSE, later_path, "exec")   # compiled before, never run
    _engine.set_counting(True)
    offered = []
    def matcher(code):
        if code.co_filename in (later_path, early_path):
            offered.append("%s:%s" % (os.path.basename(code.co_filename), code.co_qualname))
            return engine.Request(func_timing=True), "later", code.co_qualname
        return None
    src = engine.watch(3, matcher, source=$SOURCE)

    import later                       # a module imported after the update
    later.plain(1)
    add = later.make_adder(2)          # a closure made later
    [add(i) for i in range(5)]
    Made = later.make_class()          # a class created later
    m = Made(3)
    m.get(); m.get()
    ns = {}
    exec(compile($EXECD, later_path, "exec"), ns)   # functions made by exec
    ns["execd"](1); ns["execd"](2)
    code = next(c for c in loose_module.co_consts if isinstance(c, types.CodeType))
    fn = types.FunctionType(code, {})  # a function made from an existing code
    fn(); fn(); fn()
    # functions of a module imported before the update, made after it
    eadd = early.make_adder(1)
    eadd(1); eadd(2)
    EMade = early.make_class()
    EMade(1).get()

    def count(code):
        st = _engine.code_state(code)
        return None if st is None else slices(code)
    counts = {
        "later:<module>": None,
        "later:plain": count(later.plain.__code__),
        "later:make_adder": count(later.make_adder.__code__),
        "later:make_adder.<locals>.add": count(add.__code__),
        "later:make_class": count(later.make_class.__code__),
        "later:make_class.<locals>.Made": None,
        "later:make_class.<locals>.Made.__init__": count(Made.__init__.__code__),
        "later:make_class.<locals>.Made.get": count(Made.get.__code__),
        "later:execd": count(ns["execd"].__code__),
        "later:loose": count(code),
        "early:make_adder.<locals>.add": count(eadd.__code__),
        "early:make_class.<locals>.Made.__init__": count(EMade.__init__.__code__),
        "early:make_class.<locals>.Made.get": count(EMade.get.__code__),
    }
    engine.shutdown()
    emit({"src": src, "offered": sorted(set(offered)), "counts": counts})
'''


@source_param()
def test_code_created_later_is_offered_and_counted(tmp_path, source):
    body = (SCENARIO.replace("$LATER", repr(LATER)).replace("$EXECD", repr(EXECD))
            .replace("$LOOSE", repr(LOOSE)).replace("$SOURCE", repr(source)))
    result, _ = run_script(tmp_path, body)
    assert result["src"] == expected_source(source)
    offered = {o.replace(".py:", ":") for o in result["offered"]}
    counts = result["counts"]
    assert set(counts) <= offered, sorted(set(counts) - offered)
    assert counts == {
        "later:<module>": None,
        "later:plain": [1, 1],
        "later:make_adder": [1, 1],
        "later:make_adder.<locals>.add": [5, 5],
        "later:make_class": [1, 1],
        "later:make_class.<locals>.Made": None,
        "later:make_class.<locals>.Made.__init__": [1, 1],
        "later:make_class.<locals>.Made.get": [2, 2],
        "later:execd": [2, 2],
        "later:loose": [3, 3],
        "early:make_adder.<locals>.add": [2, 2],
        "early:make_class.<locals>.Made.__init__": [1, 1],
        "early:make_class.<locals>.Made.get": [1, 1],
    }


@source_param()
def test_module_bodies_run_later_are_recorded(tmp_path, source):
    """exec() and import run a module body through a function object made for it, so the
    function watcher offers it before it runs and sys.monitoring records it as the hook
    does."""
    result, _ = run_script(tmp_path, '''
        import os
        path = os.path.join(os.getcwd(), "body.py")
        with open(path, "w") as f:
            f.write("VALUE = sum(range(10))\\n")
        _engine.set_counting(True)
        bodies = []
        def matcher(code):
            if code.co_filename == path:
                bodies.append(code)
                return engine.Request(func_timing=True), "body", code.co_qualname
            return None
        engine.watch(4, matcher, source=$SOURCE)
        import body
        exec(compile("X = 1\\n", path, "exec"), {})
        emit({"value": body.VALUE, "slices": [slices(c) for c in bodies]})
    '''.replace("$SOURCE", repr(source)))
    assert result["value"] == 45
    assert result["slices"] == [[1, 1], [1, 1]]
