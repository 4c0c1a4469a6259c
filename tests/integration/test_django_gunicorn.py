"""Django, set up as a user would, with the views imported by Django's URL resolver on the
first request.

Under gunicorn (the stub started in wsgi.py): a patch sent before any worker served is
pending there, and every request sent after its reply is answered by patched code (a
function and a method of a class-based view), through a worker killed with SIGKILL and
workers recycled by --max-requests; after the revert's reply no request sees it.

Under `manage.py runserver` (the stub at the end of settings.py, README's recipe): the
server process the autoreloader starts again after a code change gets the active update."""
import os
import pathlib
import signal
import sys
import time

from support_controller import (LocalController, Target, free_port, gunicorn_workers, new_token,
                                run_on_workers, wait_workers)
from support_hardening import Load, http_get, python_env, wait_http

SETTINGS = '''
SECRET_KEY = "test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
'''

URLS = '''
from django.urls import path

from shop import views

urlpatterns = [path("", views.index), path("cart/", views.Cart.as_view())]
'''

VIEWS = '''
import os

from django.http import HttpResponse
from django.views import View


def price(n):
    return n * 2


def index(request):
    return HttpResponse("%d %d" % (os.getpid(), price(5)))


class Cart(View):
    def total(self, n):
        return n + 1

    def get(self, request):
        return HttpResponse("%d %d" % (os.getpid(), self.total(5)))
'''

WSGI = '''
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()

from pyliveupdate import UpdateStub

UpdateStub().start()
'''

FIX = '''
from pyliveupdate.update import Redefine, UpdateManager


def price(n):
    return n * 3


def total(self, n):
    return n + 100


UpdateManager.apply_update(Redefine("shop.views", None, {"shop.views.price": price,
                                                         "shop.views.Cart.total": total}))
'''


MANAGE = '''
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''

STUB_IN_SETTINGS = '''

from pyliveupdate import UpdateStub

UpdateStub().start()
'''


def _project(root, stub_in_settings=False):
    shop = root / "shop"
    shop.mkdir()
    settings = SETTINGS + (STUB_IN_SETTINGS if stub_in_settings else "")
    wsgi = WSGI if not stub_in_settings else WSGI.split("from pyliveupdate")[0]
    for name, text in (("__init__.py", ""), ("settings.py", settings), ("urls.py", URLS),
                       ("views.py", VIEWS), ("wsgi.py", wsgi)):
        (shop / name).write_text(text)
    (root / "manage.py").write_text(MANAGE)
    (root / "fix.py").write_text(FIX)


def _env(tmp_path, controller):
    env = python_env(PYLU_CONTROLLER="127.0.0.1:%d" % controller.port, PYLU_TOKEN=controller.token,
                     PYLU_SYNC_WAIT="15")       # generous: sanitizer runs start slowly
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    return env


def _values(results):
    """The value part of each answer ("<pid> <value>"), by worker pid."""
    assert all(status == 200 for status, _ in results), results[:5]
    return [tuple(int(x) for x in body.split()) for _, body in results]


def test_django_views_imported_lazily_are_patched_from_the_first_request(tmp_path):
    _project(tmp_path)
    token = new_token()
    controller = LocalController(token)
    controller.token = token
    http_port = free_port()
    env = _env(tmp_path, controller)
    server = Target([sys.executable, "-m", "gunicorn", "-w", "3", "-b", "127.0.0.1:%d" % http_port,
                     "--max-requests", "60", "--max-requests-jitter", "10", "--graceful-timeout", "5",
                     "--log-level", "warning", "shop.wsgi"], env, cwd=str(tmp_path))
    loads = []
    try:
        first = wait_workers(controller, 3, server.pid)
        # No worker has served: Django has not imported the views anywhere yet.
        lines = run_on_workers(controller, "patch(%r)" % str(tmp_path / "fix.py"))
        assert sum("Update 1 pending: module shop.views not imported yet" in line
                   for line in lines) == 3, lines
        t_patch = time.monotonic()
        ok, listing = controller.run("LU.ls()")
        assert ok and any("pending in 3" in line for line in listing), listing

        loads = [Load(http_port, "/", threads=2, max_seconds=240),
                 Load(http_port, "/cart/", threads=2, max_seconds=240)]
        for load in loads:
            load.wait_count(100, timeout=120)
        for victim in [p.pid for p in gunicorn_workers(controller)]:
            try:
                os.kill(victim, signal.SIGKILL)
                break
            except ProcessLookupError:          # recycled already
                continue
        for load in loads:
            load.wait_count(load.count() + 200, timeout=120)
        t_revert_sent = time.monotonic()
        run_on_workers(controller, "LU.revert(1)")
        t_revert = time.monotonic()
        for load in loads:
            load.wait_count(load.count() + 200, timeout=120)
        for load in loads:
            load.stop()

        index, cart = loads
        patched = _values(index.within(t_patch, t_revert_sent)) + _values(cart.within(t_patch, t_revert_sent))
        assert len(patched) >= 600, len(patched)
        served_by = {pid for pid, _ in patched}
        assert served_by - {p.pid for p in first}, "no worker was replaced: %s" % served_by
        assert {v for _, v in _values(index.within(t_patch, t_revert_sent))} == {15}
        assert {v for _, v in _values(cart.within(t_patch, t_revert_sent))} == {105}
        assert {v for _, v in _values(index.within(t_revert))} == {10}
        assert {v for _, v in _values(cart.within(t_revert))} == {6}
        # A SIGKILL can cut a request in flight (the server's doing); nothing else fails.
        failures = index.failures + cart.failures
        assert len(failures) <= 4 and all(isinstance(f, str) for f in failures), failures
    finally:
        for load in loads:
            load.stop()
        server.stop()
        controller.close()


def test_django_runserver_after_an_autoreload_gets_the_active_update(tmp_path):
    _project(tmp_path, stub_in_settings=True)
    token = new_token()
    controller = LocalController(token)
    controller.token = token
    http_port = free_port()
    server = Target([sys.executable, "manage.py", "runserver", "127.0.0.1:%d" % http_port],
                    _env(tmp_path, controller), cwd=str(tmp_path))
    try:
        controller.wait_for(2, timeout=60)      # the autoreloader and its server process
        reloader, first = sorted(controller.server.processes(all_=True), key=lambda p: p.pid)
        assert first.info.get("ppid") == reloader.pid
        assert first.ident.instance == reloader.ident.instance
        status, body = wait_http(http_port, "/")
        assert status == 200 and body.split()[1] == "10", body
        lines = run_on_workers(controller, "patch(%r)" % str(tmp_path / "fix.py"))
        assert any("Update 1 applied" in line for line in lines), lines
        assert http_get(http_port, "/")[1].split()[1] == "15"
        # A code change: the autoreloader starts a new server process, which connects and
        # gets update 1 again (pending until Django imports the views, then applied).
        # Django's reloader polls once a second and ignores a change made before it first
        # saw the file (imported at the first request): change it until it restarts.
        urls = pathlib.Path(tmp_path / "shop" / "urls.py")
        deadline = time.monotonic() + 60
        changed = 0.0
        while True:
            procs = controller.server.processes(all_=True)
            second = [p for p in procs if p.pid not in (reloader.pid, first.pid)]
            if second and second[0].synced.is_set():
                break
            assert time.monotonic() < deadline, [p.label for p in procs]
            if not second and time.monotonic() - changed > 1.5:
                urls.write_text(urls.read_text() + "\n# changed\n")
                changed = time.monotonic()
            time.sleep(0.1)
        status, body = wait_http(http_port, "/")
        assert int(body.split()[0]) == second[0].pid and body.split()[1] == "15", body
        assert http_get(http_port, "/cart/")[1].split()[1] == "105"
    finally:
        server.stop()
        controller.close()
