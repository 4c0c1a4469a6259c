"""A small but realistic threaded HTTP service (standard library only) to try pyliveupdate on.

    python examples/webservice.py --port 8080 --workers 2 --load 4

It serves a shop: GET /items, GET /quote?item=ID&qty=N, POST /order (JSON), GET /health.
With --workers N it forks N worker processes that share the listening socket (like a
prefork server); the stub started before the fork follows into every worker. With
--load N it also runs N client threads that send a mix of requests to itself, so there
is traffic to profile. The quote has a bug for pyliveupdate to fix: the bulk discount
is applied twice for big orders (see examples/fix_discount.py).
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pyliveupdate import UpdateStub

CATALOG = {
    1: {"name": "kettle", "price": 24.50, "weight": 1.2},
    2: {"name": "teapot", "price": 18.00, "weight": 0.9},
    3: {"name": "mug", "price": 6.75, "weight": 0.3},
    4: {"name": "grinder", "price": 52.00, "weight": 1.8},
    5: {"name": "scale", "price": 31.20, "weight": 0.6},
}
TAX_RATE = 0.2


class Inventory:
    """Stock levels shared by the request threads of one process."""

    def __init__(self, catalog):
        self._lock = threading.Lock()
        self.stock = {item: 1000 for item in catalog}
        self.orders = 0

    def reserve(self, item, qty):
        with self._lock:
            if self.stock.get(item, 0) < qty:
                return False
            self.stock[item] -= qty
            self.orders += 1
            return True

    def restock(self):
        with self._lock:
            for item in self.stock:
                self.stock[item] = 1000


INVENTORY = Inventory(CATALOG)


def bulk_discount(qty):
    """Fraction off the price for big orders."""
    if qty >= 50:
        return 0.15
    if qty >= 10:
        return 0.05
    return 0.0


def shipping_cost(item, qty):
    weight = CATALOG[item]["weight"] * qty
    return round(4.0 + weight * 0.8, 2)


def quote(item, qty):
    unit = CATALOG[item]["price"]
    discount = bulk_discount(qty)
    subtotal = unit * qty * (1 - discount)
    if qty >= 50:
        subtotal = subtotal * (1 - discount)   # BUG: the discount is applied twice
    tax = subtotal * TAX_RATE
    total = subtotal + tax + shipping_cost(item, qty)
    return {"item": item, "qty": qty, "subtotal": round(subtotal, 2),
            "tax": round(tax, 2), "total": round(total, 2)}


def place_order(payload):
    item, qty = int(payload["item"]), int(payload["qty"])
    if item not in CATALOG or qty <= 0:
        raise ValueError("unknown item or bad quantity")
    if not INVENTORY.reserve(item, qty):
        INVENTORY.restock()
        raise LookupError("out of stock")
    return dict(quote(item, qty), order=INVENTORY.orders)


def render(obj):
    return json.dumps(obj, sort_keys=True).encode()


class ShopHandler(BaseHTTPRequestHandler):
    server_version = "shop/1.0"

    def log_message(self, fmt, *args):  # keep the terminal for pyliveupdate's output
        pass

    def _reply(self, code, obj):
        body = render(obj)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if url.path == "/health":
                self._reply(200, {"ok": True, "pid": os.getpid()})
            elif url.path == "/items":
                self._reply(200, CATALOG)
            elif url.path == "/quote":
                self._reply(200, quote(int(query["item"][0]), int(query["qty"][0])))
            else:
                self._reply(404, {"error": "no such page"})
        except (KeyError, ValueError) as e:
            self._reply(400, {"error": "bad request: %s" % e})

    def do_POST(self):
        if self.path != "/order":
            self._reply(404, {"error": "no such page"})
            return
        try:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length) or b"{}")
            self._reply(200, place_order(payload))
        except LookupError as e:
            self._reply(409, {"error": str(e)})
        except (KeyError, ValueError) as e:
            self._reply(400, {"error": "bad order: %s" % e})


def load_client(base, stop, seed):
    """Sends a mix of requests until stop is set (the --load option)."""
    rng = random.Random(seed)
    while not stop.is_set():
        item, qty = rng.randint(1, 5), rng.choice([1, 2, 5, 12, 60])
        try:
            if rng.random() < 0.6:
                urllib.request.urlopen("%s/quote?item=%d&qty=%d" % (base, item, qty), timeout=5).read()
            else:
                req = urllib.request.Request(base + "/order", data=render({"item": item, "qty": qty}),
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
        stop.wait(0.01)


def serve(httpd):
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=0, help="fork N worker processes")
    p.add_argument("--load", type=int, default=0, help="run N self-load client threads")
    args = p.parse_args(argv)

    UpdateStub().start()
    httpd = ThreadingHTTPServer((args.host, args.port), ShopHandler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    print("shop listening on http://%s:%d (pid %d)" % (args.host, port, os.getpid()), flush=True)

    children = []
    for _ in range(args.workers):
        with warnings.catch_warnings():
            # The stub's thread is the reason for the warning; it is restarted in the child.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            try:
                serve(httpd)  # until SIGTERM; then a normal exit, so atexit flushes the log
            except (KeyboardInterrupt, SystemExit):
                pass
            return 0
        children.append(pid)

    stop = threading.Event()
    for i in range(args.load):
        threading.Thread(target=load_client, args=("http://%s:%d" % (args.host, port), stop, i),
                         daemon=True).start()
    try:
        if children:
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            while True:
                time.sleep(0.5)
        else:
            serve(httpd)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop.set()
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
