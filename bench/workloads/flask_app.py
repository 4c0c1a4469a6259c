"""A real WSGI framework serving requests: a small Flask site driven through its WSGI
callable in-process (no sockets, so the figure is the framework's cost, not the kernel's).

Two routes: an HTML page rendered from a Jinja2 template with a loop, and a JSON API.
"""
import io

from flask import Flask, jsonify, render_template, request
from jinja2 import DictLoader

from workloads import Workload

DESCRIPTION = ("Flask app via its WSGI callable, 20 requests per unit "
               "(HTML template page + JSON API, alternating); hot: the page view")

REQUESTS = 20

PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<ul>
{% for item in items %}  <li class="{{ loop.cycle('odd', 'even') }}">{{ item.name|e }}: {{ "%.2f"|format(item.price) }}</li>
{% endfor %}</ul>
<p>{{ items|length }} items, total {{ "%.2f"|format(total) }}</p>
"""


CATALOGUE = [{"name": "item <%d>" % i, "price": i * 1.25} for i in range(40)]


# Views at module level, as in most Flask apps, so every tool's scope syntax reaches them.
def shop_page(page):
    size = int(request.args.get("size", 20))
    items = CATALOGUE[page * size:(page + 1) * size]
    total = sum(item["price"] for item in items)
    title = "Shop, page %d" % page
    return render_template("shop.html", title=title, items=items, total=total)


def api_items():
    limit = int(request.args.get("limit", 10))
    return jsonify(items=CATALOGUE[:limit], count=limit)


def make_app():
    app = Flask("pylu_bench_site")
    app.jinja_loader = DictLoader({"shop.html": PAGE})
    app.add_url_rule("/shop/<int:page>", view_func=shop_page)
    app.add_url_rule("/api/items", view_func=api_items)
    return app


def _environ(path, query):
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path,
        "QUERY_STRING": query, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "localhost",
        "HTTP_ACCEPT": "text/html,application/json", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def load():
    app = make_app()
    requests = [_environ("/shop/%d" % (i % 2), "size=20") if i % 2 == 0
                else _environ("/api/items", "limit=%d" % (5 + i % 10))
                for i in range(REQUESTS)]
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def run():
        del statuses[:]
        size = 0
        for base in requests:
            environ = dict(base)
            environ["wsgi.input"] = io.BytesIO(b"")
            body = app(environ, start_response)
            try:
                for chunk in body:
                    size += len(chunk)
            finally:
                if hasattr(body, "close"):
                    body.close()
        if statuses.count("200 OK") != REQUESTS:
            raise RuntimeError("the Flask app answered %r" % sorted(set(statuses)))
        return size

    # The view lives in this module; "the program" for whole-program scopes is the app
    # plus the framework it runs on.
    return Workload(run=run, hot=shop_page,
                    modules=[__name__, "flask", "werkzeug", "jinja2", "markupsafe"])
