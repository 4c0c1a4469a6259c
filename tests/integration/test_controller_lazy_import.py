"""A Django-like app under real gunicorn imports its views on the first request. A patch of
the views sent before any worker imported them is pending everywhere, LU.ls() says so,
and every request sent after the patch's reply is answered by patched code: in the
workers that import the views later and in workers recycled by --max-requests."""
import os
import sys
import textwrap
import time

from support_controller import LocalController, Target, free_port, new_token
from support_hardening import http_get, python_env, wait_http

APP = '''
import os


def app(environ, start_response):
    import lazyviews                    # imported on the first request, as Django does
    body = ("%d %d" % (os.getpid(), lazyviews.price(5))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''
VIEWS = '''
def price(n):
    return n * 2
'''
CONFIG = '''
def post_worker_init(worker):
    from pyliveupdate import UpdateStub
    UpdateStub(retry_max=0.2).start()
'''
PATCH = '''
from pyliveupdate.update import Redefine, UpdateManager
UpdateManager.apply_update(Redefine('lazyviews', None, {'lazyviews.price': lambda n: n * 3}))
'''


def test_a_patch_of_a_lazily_imported_module_is_pending_then_applied_on_import(tmp_path):
    for name, text in (("lazyapp.py", APP), ("lazyviews.py", VIEWS),
                       ("gunicorn_conf.py", CONFIG), ("fix.py", PATCH)):
        (tmp_path / name).write_text(textwrap.dedent(text))
    token = new_token()
    controller = LocalController(token)
    http_port = free_port()
    env = python_env(PYLU_CONTROLLER="127.0.0.1:%d" % controller.port, PYLU_TOKEN=token,
                     PYLU_SYNC_WAIT="15")
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    server = Target([sys.executable, "-m", "gunicorn", "-w", "3", "-b", "127.0.0.1:%d" % http_port,
                     "--max-requests", "40", "-c", str(tmp_path / "gunicorn_conf.py"),
                     "--log-level", "warning", "lazyapp:app"], env, cwd=str(tmp_path))
    try:
        controller.wait_for(3)
        ok, lines = controller.run("patch(%r)" % str(tmp_path / "fix.py"))
        t_patch = time.monotonic()
        assert ok, lines
        ok, lines = controller.run("LU.ls()")
        assert lines[1].startswith("1  active    pending in 3"), lines
        wait_http(http_port, "/")
        answers = [http_get(http_port, "/")[1] for _ in range(200)]
        assert {int(a.split()[1]) for a in answers} == {15}, answers[:5]
        assert len({a.split()[0] for a in answers}) > 3        # recycled workers among them
        controller.wait_line(lambda e: "update 1 applied" in e, events=True)
        # A worker recycled a moment ago has not imported the views yet: pending there is
        # the truth. One that has served says applied.
        deadline = time.monotonic() + 30
        while True:
            http_get(http_port, "/")
            ok, lines = controller.run("LU.ls()")
            if "applied in" in lines[1] or time.monotonic() > deadline:
                break
        assert "applied in" in lines[1], lines
        assert time.monotonic() > t_patch
    finally:
        server.stop()
        controller.close()
