"""A CPU-bound target for bench_controller.py: pure-Python work in the main thread."""
import os
import sys

from pyliveupdate import UpdateStub


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main():
    if os.environ.get("BENCH_STUB", "1") == "1":
        UpdateStub(retry_max=0.2).start()
    print("ready", flush=True)
    while True:
        spin(2000)


if __name__ == "__main__":
    sys.exit(main())
