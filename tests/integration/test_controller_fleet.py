"""A fleet converges: real gunicorn (sync workers recycled by --max-requests, a worker
killed with SIGKILL, the whole master restarted) under HTTP load from client threads.
Every request sent after a patch's reply is answered by patched code, every request sent
after the revert's by the original; a restarted master starts clean, except for sticky
updates; an unrelated program on the same controller receives nothing."""
import os
import signal
import sys
import textwrap
import threading
import time

from support_controller import (LocalController, Target, free_port, gunicorn_workers, new_token,
                                run_on_workers, start_target, wait_workers)
from support_hardening import http_get, python_env, wait_http

APP = '''
import os


def price(n):
    return n * 2


def tax(n):
    return n


def app(environ, start_response):
    n = int(environ.get("QUERY_STRING") or 1)
    body = ("%d %d %d" % (os.getpid(), price(n), tax(n))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

# The recipe of the README: without --preload the stub starts in each worker once the
# app is loaded, and waits for its first sync before the worker serves.
CONFIG = '''
def post_worker_init(worker):
    from pyliveupdate import UpdateStub
    UpdateStub(retry_max=0.2).start()
'''

PATCH = '''
from pyliveupdate.update import Redefine, UpdateManager
import fleetapp
UpdateManager.apply_update(Redefine('fleetapp', None, {'fleetapp.%s': lambda n: n * %d}))
'''


class Requests:
    """Client threads; each request is kept as (sent, pid, price, tax)."""

    def __init__(self, port, threads=3, max_seconds=240, pause=0.01):
        self.pause = pause
        self.port = port
        self.done, self.failures = [], []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            sent = time.monotonic()
            try:
                status, body = http_get(self.port, "/?5")
            except OSError as e:
                with self._lock:
                    self.failures.append((sent, repr(e)))
                time.sleep(0.05)
                continue
            pid, price, tax = map(int, body.split())
            with self._lock:
                self.done.append((sent, pid, price, tax))
            time.sleep(self.pause)

    def since(self, t):
        with self._lock:
            return [r for r in self.done if r[0] > t]

    def wait_more(self, t, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.since(t)) < n:
            assert time.monotonic() < deadline, "load stalled: %d failures" % len(self.failures)
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(20)


def _gunicorn(tmp_path, controller, http_port, workers=3):
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", "127.0.0.1:%d" % http_port,
            "--max-requests", "100", "--max-requests-jitter", "20", "--graceful-timeout", "5",
            "-c", str(tmp_path / "gunicorn_conf.py"), "--log-level", "warning", "fleetapp:app"]
    env = python_env(PYLU_CONTROLLER="127.0.0.1:%d" % controller.port, PYLU_TOKEN=controller.token,
                     PYLU_SYNC_WAIT="15")    # generous: sanitizer runs start slowly
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    return Target(argv, env, cwd=str(tmp_path))


def _run(controller, src):
    """Run src (see run_on_workers); when its reply came, and its lines."""
    lines = run_on_workers(controller, src)
    return time.monotonic(), lines


def test_gunicorn_fleet_converges_through_recycling_kill_and_restart(tmp_path):
    (tmp_path / "fleetapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(CONFIG))
    for name, func, factor in (("price3.py", "price", 3), ("price5.py", "price", 5),
                               ("tax7.py", "tax", 7)):
        (tmp_path / name).write_text(PATCH % (func, factor))
    token = new_token()
    controller = LocalController(token)
    controller.token = token
    http_port = free_port()
    server = _gunicorn(tmp_path, controller, http_port)
    unrelated = start_target("app.py", controller.port, token)
    load = None
    try:
        master = server.pid
        first = wait_workers(controller, 3, master)
        assert {p.info["program"] for p in first} == {"gunicorn"}   # not __main__.py
        assert len({p.ident.instance for p in first}) == 1
        controller.wait_for(4)
        wait_http(http_port, "/?5")
        load = Requests(http_port)
        load.wait_more(0, 30)

        ok, used = controller.run("use('gunicorn')")
        assert ok, used
        t_patch, lines = _run(controller, "patch(%r)" % str(tmp_path / "price3.py"))
        assert sum(l.endswith("Update 1 applied") for l in lines) >= 2, lines
        load.wait_more(t_patch, 100)
        # A worker killed with SIGKILL is replaced; the replacement is patched before it serves.
        victims = [p.pid for p in gunicorn_workers(controller)]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
                break
            except ProcessLookupError:      # recycled already
                continue
        load.wait_more(t_patch, 250, timeout=120)
        after = load.since(t_patch)
        served_by = {pid for _, pid, _, _ in after}
        assert served_by - {p.pid for p in first}, "no worker was replaced: %s" % served_by
        unpatched = [r for r in after if r[2] != 15]
        assert not unpatched, unpatched[:5]

        t_revert, lines = _run(controller, "LU.revert(1)")
        load.wait_more(t_revert, 250, timeout=120)
        after = load.since(t_revert)
        assert {pid for _, pid, _, _ in after} - served_by, "no worker was recycled after the revert"
        patched = [r for r in after if r[2] != 10]
        assert not patched, patched[:5]

        # Two updates, one sticky; then the whole program is restarted.
        _run(controller, "patch(%r)" % str(tmp_path / "price5.py"))
        t_sticky, _ = _run(controller, "patch(%r, sticky=True)" % str(tmp_path / "tax7.py"))
        load.wait_more(t_sticky, 30)
        wrong = [r for r in load.since(t_sticky) if r[2:] != (25, 35)]
        assert not wrong, (wrong[:3], [e for e in controller.events if str(wrong[0][1]) in e])
        load.stop()
        server.stop()
        mark = len(controller.events)
        server = _gunicorn(tmp_path, controller, http_port)
        again = wait_workers(controller, 3, server.pid)
        events = [e for e in controller.events[mark:] if "connected" in e]
        assert any("did not get active update(s) 2" in e and "deploy([2]" in e for e in events), events
        assert sum("applied update(s) 3" in e for e in events) >= 3, events
        wait_http(http_port, "/?5")
        load = Requests(http_port)
        load.wait_more(0, 60)
        # Clean by default, the sticky update from the first request on.
        assert {(price, tax) for _, _, price, tax in load.done} == {(10, 35)}
        assert len({p.ident.instance for p in again} | {first[0].ident.instance}) == 2

        # The unrelated program received nothing at any point.
        results = controller.server.run("sorted(UpdateManager._updates)")
        by_pid = {p.pid: r for p, r in results}
        assert unrelated.pid not in by_pid     # not selected...
        ok, _ = controller.run("use(%d)" % unrelated.pid)
        results = controller.server.run("sorted(UpdateManager._updates)")
        assert [r["output"].strip() for _, r in results] == ["[]"]
        assert not any(e.startswith("process %d" % unrelated.pid) and "applied" in e
                       for e in controller.events)
        assert not load.failures or len(load.failures) < 5, load.failures[:5]
    finally:
        if load is not None:
            load.stop()
        server.stop()
        unrelated.stop()
        controller.close()


def test_a_patch_that_kills_the_process_is_reported_as_such(tmp_path):
    token = new_token()
    controller = LocalController(token)
    app = start_target("app.py", controller.port, token)
    try:
        controller.wait_for(1)
        ok, lines = controller.run("import os; os._exit(3)")
        assert not ok
        assert any("the process ended while running the command" in l for l in lines), lines
        controller.wait_line(lambda e: "left (the process ended while running the command" in e,
                             events=True)
        assert app.proc.wait(10) == 3
    finally:
        app.stop()
        controller.close()


def test_a_new_worker_waits_for_its_first_sync_and_never_without_a_controller(tmp_path):
    # Without a controller the stub does not wait at all.
    src = ("import time; t = time.monotonic()\n"
           "def served(): pass\n"
           "from pyliveupdate import UpdateStub\n"
           "s = UpdateStub(sync_wait=30).start()\n"
           "print('waited %.2f' % (time.monotonic() - t), flush=True)\n"
           "import __main__; print('price', getattr(__main__, 'PATCHED', 0), flush=True)\n"
           "time.sleep(60)\n")
    script = tmp_path / "starter.py"
    script.write_text(src)
    port = free_port()
    token = new_token()
    alone = start_target(str(script), port, token)
    try:
        line = alone.wait_for_line(lambda l: l.startswith("waited"))
        assert float(line.split()[1]) < 5, line
    finally:
        alone.stop()
    controller = LocalController(token)
    try:
        first = start_target(str(script), controller.port, token, PYLU_INSTANCE="shared")
        controller.wait_for(1)
        ok, _ = controller.run("import __main__; __main__.PATCHED = 1; FP.profile('__main__.served')")
        assert ok
        second = start_target(str(script), controller.port, token, PYLU_INSTANCE="shared")
        # The second process of the instance ran the definition before start() returned.
        line = second.wait_for_line(lambda l: l.startswith("price"))
        assert line == "price 1", line
        first.stop()
        second.stop()
    finally:
        controller.close()
