"""Real servers from PyPI and the standard library with the stub inside, under real HTTP
load from client threads on loopback (bounded in count and time):

* gunicorn, prefork, several sync workers, with and without --preload: every worker
  connects, an update reaches all of them, and workers recycled by --max-requests get it;
* a threaded server (http.server) and an ASGI server (uvicorn): profiling gives exact hit
  counts, hot-patching the request path under load changes responses with zero failed
  requests, and reverting restores them.
"""
import os
import sys
import textwrap
import time

import pytest

from support_controller import LocalController, Target, free_port, new_token
from support_hardening import Load, payload, python_env, wait_http

WSGI_APP = '''
import os
from pyliveupdate import UpdateStub

UpdateStub(retry_max=0.2).start()


def price(n):
    return n * 2


def app(environ, start_response):
    n = int(environ.get("QUERY_STRING") or 1)
    body = ("%d %d" % (os.getpid(), price(n))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

THREADED_APP = '''
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pyliveupdate import UpdateStub


def price(n):
    return n * 2


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        n = int(self.path.partition("?")[2] or 1)
        body = ("%d %d" % (os.getpid(), price(n))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main(port):
    UpdateStub(retry_max=0.2).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()
'''

ASGI_APP = '''
import asyncio
import os
from pyliveupdate import UpdateStub

UpdateStub(retry_max=0.2).start()


def price(n):
    return n * 2


async def handle(n):
    await asyncio.sleep(0)          # a real suspension: the coroutine resumes once
    return price(n)


async def app(scope, receive, send):
    assert scope["type"] == "http"
    n = int(scope["query_string"] or b"1")
    body = ("%d %d" % (os.getpid(), await handle(n))).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
'''

PATCH_PRICE = ("from pyliveupdate.update import Redefine, UpdateManager\n"
               "import {mod}\n"
               "UpdateManager.apply_update(Redefine({mod!r}, None, {{{mod!r} + '.price': "
               "lambda n: n * 3}}))")


def _start(argv, tmp_path, port, token, name, source):
    (tmp_path / (name + ".py")).write_text(textwrap.dedent(source))
    env = python_env(PYLU_CONTROLLER="127.0.0.1:%d" % port, PYLU_TOKEN=token)
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    return Target(argv, env, cwd=str(tmp_path))


def _values(results):
    return [int(body.split()[1]) for status, body in results]


# --- prefork ----------------------------------------------------------------------------

@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_gunicorn_prefork_every_worker_gets_the_update_even_recycled_ones(tmp_path, preload):
    token = new_token()
    controller = LocalController(token)
    http_port = free_port()
    workers = 3
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", "127.0.0.1:%d" % http_port,
            "--max-requests", "40", "--graceful-timeout", "5", "--log-level", "warning",
            "wsgiapp:app"] + (["--preload"] if preload else [])
    server = _start(argv, tmp_path, controller.port, token, "wsgiapp", WSGI_APP)
    try:
        expected = workers + (1 if preload else 0)  # with --preload the master has a stub too
        controller.wait_for(expected, timeout=60)
        wait_http(http_port, "/?5")
        first = {p.pid for p in controller.server.processes()}
        ok, lines = controller.run(PATCH_PRICE.format(mod="wsgiapp"))
        assert ok and sum("Update 1 applied" in l for l in lines) == expected, lines

        load = Load(http_port, "/?7", threads=4, max_requests=300, max_seconds=90)
        load.wait_count(300, timeout=90)
        results = load.stop()
        assert not load.failures, load.failures[:5]
        assert len(results) == 300
        served_by = {int(body.split()[0]) for _, body in results}
        assert len(served_by - first) >= workers, "workers were not recycled: %s" % served_by
        if preload:
            # Recycled workers fork from the patched master: every answer is the new one.
            assert set(_values(results)) == {21}
        # Every process connected now (the recycled workers included) runs the new code.
        deadline = time.monotonic() + 30
        while True:
            # (A worker recycled while the command is on its way answers "disconnected".)
            replies = [r for _, r in controller.server.run(
                "import wsgiapp, os; print((os.getpid(), wsgiapp.price(5)))") if r.get("ok")]
            answers = [eval(r["output"]) for r in replies]
            if len(answers) >= workers and {pid for pid, _ in answers} - first:
                break
            assert time.monotonic() < deadline, replies
            time.sleep(0.3)
        assert {value for _, value in answers} == {15}, answers
        if not preload:
            assert any("applied update(s) 1" in e for e in controller.events), controller.events
        # Revert everywhere: the original answers come back.
        runs = controller.server.run(
            "from pyliveupdate.update import UpdateManager\nUpdateManager.revert_update(1)")
        replies = [r for _, r in runs]
        assert all(r.get("ok") or "disconnected" in r.get("error", "") for r in replies), replies
        assert sum(bool(r.get("ok")) for r in replies) >= workers, replies
        reverted = {p.pid for p, r in runs if r.get("ok")}
        load = Load(http_port, "/?7", threads=2, max_requests=20, max_seconds=60)
        load.wait_count(20, timeout=60)
        results = load.stop()
        assert not load.failures
        # Every process that reported the revert answers with the original code. (A worker
        # recycled meanwhile may serve before its catch-up replays the revert: not counted.)
        answers = [(int(body.split()[0]), int(body.split()[1])) for _, body in results]
        from_reverted = [value for pid, value in answers if pid in reverted]
        assert from_reverted and set(from_reverted) == {14}, answers
    finally:
        server.stop()
        controller.close()


# --- threaded and asyncio servers -----------------------------------------------------------

def _threaded(tmp_path, port, token):
    http_port = free_port()
    # Imported, not run as a script: the module the server uses is `threadedapp`.
    t = _start([sys.executable, "-c", "import threadedapp; threadedapp.main(%d)" % http_port],
               tmp_path,
               port, token, "threadedapp", THREADED_APP)
    return t, http_port, "threadedapp", "threadedapp.Handler.do_GET"


def _asgi(tmp_path, port, token):
    http_port = free_port()
    t = _start([sys.executable, "-m", "uvicorn", "asgiapp:app", "--port", str(http_port),
                "--log-level", "warning", "--lifespan", "off", "--no-access-log"], tmp_path,
               port, token, "asgiapp", ASGI_APP)
    return t, http_port, "asgiapp", "asgiapp.handle"


SERVERS = {"threaded": _threaded, "asgi": _asgi}


@pytest.fixture(params=sorted(SERVERS))
def served(request, tmp_path):
    token = new_token()
    controller = LocalController(token)
    server, http_port, mod, handler = SERVERS[request.param](tmp_path, controller.port, token)
    try:
        controller.wait_for(1, timeout=30)
        wait_http(http_port, "/?1")
        yield controller, server, http_port, mod, handler
    finally:
        server.stop()
        controller.close()


def test_profiling_request_handlers_gives_exact_hit_counts(served, tmp_path):
    from pyliveupdate import _engine
    controller, server, http_port, mod, handler = served
    owner, _, name = handler.rpartition(".")
    ok, lines = controller.run(
        "import %s as app; from pyliveupdate import engine, recording, _engine\n"
        "import functools, operator\n"
        "obj = functools.reduce(getattr, %r.split('.')[1:], app)\n"
        "ids = (engine.arm(901, app.price.__code__, engine.Request(func_timing=True)),"
        " engine.arm(901, obj.__code__, engine.Request(func_timing=True)))\n"
        "path = recording.ensure_started(%r, flush_ms=2)\n"
        "print(ids, path)" % (mod, handler, str(tmp_path / "logs")))
    assert ok, lines
    ids, path = payload(lines[-1]).split(") ")
    price_id, handler_id = eval(ids + ")")
    n = 240
    load = Load(http_port, "/?3", threads=4, max_requests=n, max_seconds=60)
    load.wait_count(n, timeout=60)
    load.stop()
    assert not load.failures, load.failures[:5]
    ok, lines = controller.run("engine.disarm(901); _engine.recorder_flush()\n"
                               "funcs = _engine.recorder_live()[0]\n"
                               "recording.stop(); (funcs[%d][0], funcs[%d][0])"
                               % (price_id, handler_id))
    assert ok, lines
    price_hits, handler_slices = eval(payload(lines[-1]))
    assert price_hits == n
    # The log has one CALL per request for both (a coroutine's resumes are RESUME records).
    calls = {price_id: 0, handler_id: 0}
    resumes = 0
    for item in _engine.LogReader(path):
        if item[0] == "event" and item[4] in calls:
            if item[1] == 1:
                calls[item[4]] += 1
            elif item[1] == 2 and item[4] == handler_id:
                resumes += 1
    assert calls == {price_id: n, handler_id: n}
    assert handler_slices == n + resumes
    if mod == "asgiapp":
        assert resumes == n  # one suspension per request, each resumed once


def test_hot_patch_under_load_changes_answers_without_a_failed_request_and_revert_restores(served):
    controller, server, http_port, mod, handler = served
    threads = 4
    load = Load(http_port, "/?7", threads=threads, max_requests=30000, max_seconds=60)
    try:
        load.wait_count(60)
        if mod == "asgiapp":  # patch the coroutine itself
            patch = ("from pyliveupdate.update import Redefine, UpdateManager\n"
                     "async def handle(n):\n    await asyncio.sleep(0)\n    return price(n) * 3 // 2\n"
                     "UpdateManager.apply_update(Redefine('asgiapp', None, {'asgiapp.handle': handle}))")
        else:
            patch = PATCH_PRICE.format(mod=mod)
        t_patch = time.monotonic()
        ok, lines = controller.run(patch)
        assert ok and any("Update 1 applied" in payload(l) for l in lines), lines
        applied = time.monotonic()
        load.wait_count(load.count() + 100)
        t_revert = time.monotonic()
        ok, lines = controller.run("UpdateManager.revert_update(1)")
        assert ok and any("Update 1 reverted" in payload(l) for l in lines), lines
        reverted = time.monotonic()
        load.wait_count(load.count() + 100)
    finally:
        load.stop()
    assert not load.failures, load.failures[:5]
    # A request answered before a command was sent saw the code before it; one sent after
    # the command's reply saw the code it left. (Completion order proves nothing: a request
    # sent earlier may be answered after later ones.)
    assert set(_values(load.within(0, t_patch))) == {14}
    assert set(_values(load.within(applied, t_revert))) == {21}
    after = _values(load.within(reverted))
    assert after and set(after) == {14}, after[:10]
    assert server.alive()


def test_uvicorn_workers_are_one_instance_named_uvicorn(tmp_path):
    """`python -m uvicorn --workers 2` spawns its workers (multiprocessing): they are
    listed as uvicorn (not __main__.py) and belong to one instance (the master's), which
    is what an update for them is meant for by default."""
    token = new_token()
    controller = LocalController(token)
    http_port = free_port()
    server = _start([sys.executable, "-m", "uvicorn", "asgiapp:app", "--port", str(http_port),
                     "--workers", "2", "--log-level", "warning", "--lifespan", "off"],
                    tmp_path, controller.port, token, "asgiapp", ASGI_APP)
    try:
        controller.wait_for(2, timeout=60)
        procs = controller.server.processes(all_=True)
        assert {p.info["program"] for p in procs} == {"uvicorn"}, [p.label for p in procs]
        assert len({p.ident.instance for p in procs}) == 1, [p.ident.instance for p in procs]
    finally:
        server.stop()
        controller.close()
