"""(c) A gunicorn master and its workers, started without pyliveupdate, under load.

We attach to the master with its children (`pylu-attach MASTER --children`): every
worker gets a stub, and so does the master, so a worker it forks later (after a crash)
starts with the stub too and catches up with the active updates. Commands go to the
workers (without --preload the master never imports the app). Every response is checked
against the price formula of the current phase: zero failed or wrong responses.

A worker forked after a patch by a master that does not have the patched code (here the
master never imported the app) serves the old code until it has connected and caught up,
a fraction of a second; with --preload, patch the master too and later workers inherit
the patch from the fork itself."""
import os
import signal
import sys
import threading
import time
import urllib.request

from support_attach import FIXTURES, clean_env, os_threads, run_attach
from support_controller import Target, controller, free_port, token  # noqa: F401

PATCH = """\
def price(n):
    return n * 10 + 7

UpdateManager.apply_update(Redefine('wsgi_app', None, {'wsgi_app.price': price}))
"""


def _get(port, path, timeout=30):
    with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (port, path), timeout=timeout) as r:
        return r.read().decode()


class Load:
    """Requests in a loop; each answer must fit one of the formulas allowed right now."""

    def __init__(self, port):
        self.port = port
        self.allowed = {5}       # price(n) = 10 n + add, add in allowed
        self.bad, self.count = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            allowed = set(self.allowed)
            try:
                body = _get(self.port, str(n))
                if int(body) - 10 * n not in allowed | set(self.allowed):
                    self.bad.append((n, body, allowed))
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                self.bad.append((n, repr(e), allowed))
            self.count += 1

    def settle(self, add, seconds=0.5):
        """Allow both formulas while requests already under way finish, then only `add`."""
        self.allowed = self.allowed | {add}
        time.sleep(seconds)
        self.allowed = {add}

    def stop(self):
        self._stop.set()
        self._thread.join(60)


def _workers(master):
    from pyliveupdate_controller.attach import children_of
    return children_of(master)


def _wait(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def test_gunicorn_master_with_children_attached_patched_and_detached(controller, token, tmp_path):
    port = free_port()
    master = Target([sys.executable, "-m", "gunicorn", "wsgi_app:app", "-w", "2",
                     "-b", "127.0.0.1:%d" % port, "--chdir", FIXTURES], clean_env(), cwd=FIXTURES)
    load = None
    try:
        _wait(lambda: _alive(port), what="gunicorn to serve")
        _wait(lambda: len(_workers(master.pid)) == 2, what="two workers")
        workers = _workers(master.pid)
        threads_before = {w: os_threads(w) for w in workers}
        load = Load(port)

        out = run_attach(master.pid, controller.port, token, "--children", "--timeout", "30")
        assert out.returncode == 0, out
        assert out.stdout.count("stub started") == 3, out.stdout
        controller.wait_for(3)
        ok, lines = controller.run("use(%s)" % ", ".join(map(str, workers)))
        assert ok, lines

        ok, lines = controller.run("FD.debug('wsgi_app.price')")
        assert ok, lines
        controller.wait_line(lambda l: "wsgi_app.price" in l and "return" in l)
        ok, lines = controller.run("LP.profile('wsgi_app.price', [6, 7])")
        assert ok, lines
        time.sleep(1.0)
        ok, lines = controller.run("LP.show()")
        assert ok and sum("base + 5" in l for l in lines) == 2, lines   # one table per worker

        patch = tmp_path / "patch.py"
        patch.write_text(PATCH)
        load.allowed = {5, 7}
        ok, lines = controller.run("patch(%r)" % str(patch))
        assert ok, lines
        load.settle(7)
        assert int(_get(port, "3")) == 37

        # A worker ends (gracefully: a request cut by SIGKILL would count as a failure
        # of the server, not of ours); the master (attached) forks a new one, which connects by itself
        # and receives the active updates it never saw. Until then (a fraction of a
        # second) it serves the app as the master has it: unpatched.
        load.allowed = {5, 7}
        os.kill(workers[0], signal.SIGTERM)
        # One snapshot per look: two reads could see the old worker gone and the new one
        # not yet forked, and pass with no replacement to name.
        def replacement_worker():
            now = _workers(master.pid)
            fresh = [w for w in now if w not in workers]
            return fresh[0] if len(now) == 2 and fresh else None
        _wait(lambda: replacement_worker() is not None, what="the replacement worker")
        replacement = replacement_worker()
        _wait(lambda: any(p.pid == replacement for p in controller.server.processes(all_=True)),
              what="the replacement worker to connect")
        controller.wait_line(lambda l: "caught up" in l or str(replacement) in l, events=True)
        load.settle(7, 1.0)
        assert all(int(_get(port, str(n))) == 10 * n + 7 for n in range(1, 20))

        patch_id = max(i for d in controller.server.fleet.active() for i in d.active_ids())
        ok, lines = controller.run("use(%d, %d)" % (workers[1], replacement))
        assert ok, lines
        load.allowed = {5, 7}
        ok, lines = controller.run("LU.revert(%d)" % patch_id)
        # the debug output of the workers interleaves; keep what says why
        assert ok, [line for line in lines if "returnvalues" not in line] or lines
        load.settle(5)

        ok, lines = controller.run("use('all')")
        assert ok, lines
        ok, lines = controller.run("LU.detach()")
        assert ok, lines
        assert sum("detached: " in l for l in lines) == 3, lines
        _wait(lambda: not controller.server.processes(all_=True), what="every stub to leave")
        threads_before[replacement] = threads_before[workers[1]]
        for w in (workers[1], replacement):
            _wait(lambda w=w: os_threads(w) == threads_before[w], what="worker %d's threads" % w)
        time.sleep(0.5)
        load.stop()
        assert load.bad == [] and load.count > 50, (load.count, load.bad[:5])
    finally:
        if load is not None:
            load.stop()
        master.stop()


def _alive(port):
    try:
        return _get(port, "pid", timeout=2).isdigit()
    except OSError:
        return False
