"""Blocked in time.sleep for an hour at a time; never imports pyliveupdate."""
import os
import time

print("pid", os.getpid(), flush=True)
while True:
    time.sleep(3600)
