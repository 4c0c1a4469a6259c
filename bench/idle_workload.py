"""Workloads for the idle-cost benchmark: prints seconds per workload; stub on or off."""
import json
import os
import sys
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def churn():
    d = {}
    for i in range(60000):
        d["k%d" % (i % 5000)] = d.get("k%d" % (i % 3000), 0) + i
    return len(d)


def json_roundtrip():
    doc = {"items": [{"id": i, "name": "item%d" % i, "tags": ["a", "b"], "price": i * 1.5}
                     for i in range(400)]}
    for _ in range(30):
        doc = json.loads(json.dumps(doc))
    return len(doc["items"])


WORKLOADS = {"fib": lambda: fib(22), "dict_churn": churn, "json": json_roundtrip}


def main():
    if sys.argv[1] == "stub":
        from pyliveupdate import UpdateStub
        # Nothing listens on this port: the stub keeps retrying with backoff.
        UpdateStub(controller=os.environ["BENCH_DEAD_ADDR"]).start()
        time.sleep(0.05)
    reps = int(sys.argv[2])
    out = {}
    for name, fn in WORKLOADS.items():
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = time.perf_counter() - t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
