"""A plain script for pylu-run; with --spawn it starts a copy of itself as a subprocess.

Never imports pyliveupdate. Lines: "tick <pid> <i> <compute(i)>"."""
import os
import subprocess
import sys
import time


def compute(i):
    return i * 2 + 1


# one write per line: parent and child share the pipe, unbuffered
sys.stdout.write("pid %d stub %s\n" % (os.getpid(), "pyliveupdate.stub" in sys.modules))
child = subprocess.Popen([sys.executable, __file__]) if sys.argv[1:] == ["--spawn"] else None
i = 0
while True:
    sys.stdout.write("tick %d %d %d\n" % (os.getpid(), i, compute(i)))
    i += 1
    time.sleep(0.05)
