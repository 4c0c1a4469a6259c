"""tests/wheel checks the sdist and wheels that `./dev wheel --check` (part of ./dev test) has
just built; it names them in PYLU_WHEEL_DIST. A plain `pytest tests` has built none, so
nothing here is collected then."""
import os

if not os.environ.get("PYLU_WHEEL_DIST"):
    collect_ignore_glob = ["test_*.py"]
