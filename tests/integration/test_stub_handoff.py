"""A command reaches a busy program without waiting for its switch interval: the main
thread lends the GIL (a pending call) until the reply is out, and never for long."""
import ast
import json
import time

from support_controller import LocalController, controller, start_target, targets, token  # noqa: F401
from support_recorder import run_child

BUSY = """\
import sys
from pyliveupdate import UpdateStub

UpdateStub().start()
# A thread that wants the GIL from this busy main thread would wait a whole second.
sys.setswitchinterval(1.0)
print("ready", flush=True)

def spin(n):
    kept = []                       # containers that live a while, as a server's do: GC runs
    for i in range(n):
        kept.append([i * i % 7])
    return len(kept)

while True:
    spin(2000)
"""


def test_commands_to_a_busy_main_thread_do_not_wait_for_the_switch_interval(
        tmp_path, controller, targets, token):
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    app = targets(str(script), controller.port, token)
    app.wait_for_line(lambda line: line == "ready")
    controller.wait_for(1)
    took = []
    for n in range(5):
        t0 = time.monotonic()
        ok, lines = controller.run("x = %d" % n)
        took.append(time.monotonic() - t0)
        assert ok, lines
    # Without the loan each command waits >= 1 s for the GIL (the interval), at each hop.
    # With it most take a few ms. Not all: the loan ends after 20 ms, and on a loaded machine
    # a command can outlast it and wait for the interval as before. (On 3.12 a pending call
    # queued by another thread runs only when the main thread trips its eval breaker for
    # another reason, gh-95820: here the GC the loop's allocations schedule; 3.13+ signal it.)
    assert sorted(took)[len(took) // 2] < 0.5, took
    ok, lines = controller.run("from pyliveupdate import _engine; _engine.handoff_stats()")
    assert ok, lines
    stats = ast.literal_eval(lines[-1].split("] ", 1)[1])
    # The main thread stepped aside, each time for at most 20 ms. (How many calls ran late
    # or are still queued depends on when the main thread reached an eval breaker.)
    assert stats["lent"] >= 1 and stats["lent_s"] <= 0.021 * stats["lent"], stats


def test_the_loan_is_bounded_and_a_late_one_returns_at_once():
    """Nobody releases: the main thread takes the GIL back after 20 ms. Released before
    the main thread gets to it: the pending call returns without waiting."""
    out = run_child("""
        import json, socket, threading, time
        from pyliveupdate import _engine as e

        a, b = socket.socketpair()
        res = {"timeout": e.handoff_wait_readable(a.fileno(), 0.01),
               "closed_fd": e.handoff_wait_readable(-1, None)}
        try:
            e.handoff_wait_readable(a.fileno(), -1)
        except ValueError as exc:
            res["negative"] = str(exc)

        def lend_and_keep():
            b.send(b"x")
            res["readable"] = e.handoff_wait_readable(a.fileno(), 5)

        t = threading.Thread(target=lend_and_keep)
        t.start()
        deadline = time.monotonic() + 10
        while e.handoff_stats()["lent"] == 0 and time.monotonic() < deadline:
            sum(i * i for i in range(200))          # Python code: eval breakers
        t.join()
        res["first"] = e.handoff_stats()

        # Wait and release in one C call (map, operator.call, partial: no bytecode, so no
        # eval breaker in between): the call queued for the main thread comes after the reply.
        from functools import partial
        from operator import call
        res["again"] = list(map(call, [partial(e.handoff_wait_readable, a.fileno(), 5),
                                       e.handoff_release]))[0]
        for _ in range(100):
            sum(i * i for i in range(200))
        res["second"] = e.handoff_stats()
        print(json.dumps(res))
    """)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["timeout"] is False and res["closed_fd"] is True and res["readable"] is True
    assert "timeout" in res["negative"]
    assert res["first"]["lent"] == 1 and 0.019 <= res["first"]["lent_s"] <= 0.5, res
    assert res["first"]["late"] == 0, res
    # The second call ran, found the reply out and did not step aside.
    assert res["second"]["late"] == 1 and res["second"]["lent"] == 1, res
    assert res["second"]["lent_s"] == res["first"]["lent_s"], res
