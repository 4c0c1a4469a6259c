"""A plain script for pylu-run; with --spawn it starts a copy of itself as a subprocess.

Never imports pyliveupdate. Lines: "tick <pid> <i> <compute(i)>"."""
import os
import subprocess
import sys
import time


def compute(i):
    return i * 2 + 1


child = subprocess.Popen([sys.executable, __file__]) if sys.argv[1:] == ["--spawn"] else None
print("pid", os.getpid(), "stub", "pyliveupdate.stub" in sys.modules, flush=True)
i = 0
while True:
    print("tick %d %d %d" % (os.getpid(), i, compute(i)), flush=True)
    i += 1
    time.sleep(0.05)
