"""A prefork server in miniature: the parent starts the stub, then forks workers."""
import os
import sys
import time

from pyliveupdate import UpdateStub


def handle(n):
    return n * 2


def main():
    UpdateStub(retry_max=0.3).start()
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            n = 0
            while True:
                n += 1
                handle(n)
                time.sleep(0.05)
        children.append(pid)
    print("workers", *children, flush=True)
    try:
        while True:
            time.sleep(0.1)
    finally:
        for pid in children:
            os.kill(pid, 9)


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    main()
