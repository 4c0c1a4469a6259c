"""A small long-running target: threads doing work, with functions to modify."""
import os
import sys
import threading
import time

from pyliveupdate import UpdateStub


def compute(a, b=2):
    total = a * b
    total = total + 1
    return total


class Shop:
    def __init__(self):
        self.count = 0

    def sell(self, qty):
        price = qty * 3
        self.count += qty
        return price


def worker(shop):
    i = 0
    while True:
        i = i % 7 + 1
        compute(i)
        shop.sell(i)
        time.sleep(0.02)


def main():
    UpdateStub(retry_max=float(os.environ.get("STUB_RETRY_MAX", "0.3"))).start()
    shop = Shop()
    threading.Thread(target=worker, args=(shop,), daemon=True).start()
    print("ready", os.getpid(), flush=True)
    n = 0
    while True:
        n += 1
        print("tick", n, compute(n % 5), flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
