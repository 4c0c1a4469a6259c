"""Shared by tests/unit (pure logic, in-process, fast) and tests/integration (real
processes, servers, sockets). The support_*.py modules and fixtures_* folders beside this
file serve both; this directory is put on sys.path so they import by name."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
