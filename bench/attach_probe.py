"""Target for bench_attach.py: never imports pyliveupdate. A thread runs Python code
without pause and times its own loop; every 20 ms it prints the longest gap between two
iterations in that window ("gap <ms> <monotonic s>"), so an injection's pause shows."""
import os
import sys
import threading
import time


def probe():
    window_start = last = time.monotonic()
    longest = 0.0
    while True:
        now = time.monotonic()
        longest = max(longest, now - last)
        last = now
        if now - window_start >= 0.02:
            sys.stdout.write("gap %.3f %.6f\n" % (longest * 1000, now))
            sys.stdout.flush()
            window_start, longest = now, 0.0


threading.Thread(target=probe, daemon=True).start()
print("pid", os.getpid(), flush=True)
while True:
    time.sleep(3600)
