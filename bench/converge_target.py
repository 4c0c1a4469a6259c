"""A worker for bench_controller.py's convergence rows: it starts a stub, waits for its
first sync (as a new gunicorn worker would) and prints when it got there and whether the
active updates were in effect; then idles until killed."""
import json
import sys
import time

T0 = time.time()


def spin(n):
    return sum(i * i % 7 for i in range(n))


def main():
    from pyliveupdate import UpdateStub
    started = time.time()
    UpdateStub(retry_max=0.2, sync_wait=60).start()
    done = time.time()
    from pyliveupdate.state import report
    print(json.dumps({"t0": T0, "stub": started, "synced": done, "active": report()["active"]}),
          flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
