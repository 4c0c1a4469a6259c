"""Django under gunicorn, set up as a user would: the stub started in wsgi.py, the views
imported by Django's URL resolver on the first request. A patch sent before any worker
served is pending there, and every request sent after its reply is answered by patched
code (a function and a method of a class-based view), through a worker killed with SIGKILL
and workers recycled by --max-requests; after the revert's reply no request sees it."""
import os
import signal
import sys
import time

from support_controller import LocalController, Target, free_port, gunicorn_workers, new_token, wait_workers
from support_hardening import Load, python_env

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


def _project(root):
    shop = root / "shop"
    shop.mkdir()
    for name, text in (("__init__.py", ""), ("settings.py", SETTINGS), ("urls.py", URLS),
                       ("views.py", VIEWS), ("wsgi.py", WSGI)):
        (shop / name).write_text(text)
    (root / "fix.py").write_text(FIX)


def _run(controller, src):
    """Run src; it may fail only in workers that ended meanwhile (--max-requests)."""
    ok, lines = controller.run(src)
    failed = [line for line in lines if "the process ended while running" in line]
    assert ok or (failed and len(failed) < len(lines)), lines
    return lines


def _values(results):
    """The value part of each answer ("<pid> <value>"), by worker pid."""
    assert all(status == 200 for status, _ in results), results[:5]
    return [tuple(int(x) for x in body.split()) for _, body in results]


def test_django_views_imported_lazily_are_patched_from_the_first_request(tmp_path):
    _project(tmp_path)
    token = new_token()
    controller = LocalController(token)
    http_port = free_port()
    env = python_env(PYLU_CONTROLLER="127.0.0.1:%d" % controller.port, PYLU_TOKEN=token,
                     PYLU_SYNC_WAIT="15")       # generous: sanitizer runs start slowly
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    server = Target([sys.executable, "-m", "gunicorn", "-w", "3", "-b", "127.0.0.1:%d" % http_port,
                     "--max-requests", "60", "--max-requests-jitter", "10", "--graceful-timeout", "5",
                     "--log-level", "warning", "shop.wsgi"], env, cwd=str(tmp_path))
    loads = []
    try:
        first = wait_workers(controller, 3, server.pid)
        # No worker has served: Django has not imported the views anywhere yet.
        lines = _run(controller, "patch(%r)" % str(tmp_path / "fix.py"))
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
        _run(controller, "LU.revert(1)")
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
