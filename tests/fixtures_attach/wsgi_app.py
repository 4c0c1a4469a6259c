"""A WSGI app for gunicorn; never imports pyliveupdate. GET /<n> -> price(n)."""
import os


def price(n):
    base = n * 10
    return base + 5


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/").strip("/")
    if path == "pid":
        body = str(os.getpid())
    else:
        body = str(price(int(path or 0)))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body.encode()]
