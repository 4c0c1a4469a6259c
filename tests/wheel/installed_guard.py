"""pytest plugin (-p installed_guard) for the suite run against an installed wheel
(tools/build_wheels.py --check): stops before the first test unless the pyliveupdate under
test, and its C engine, are the ones installed in PYLU_WHEEL_VENV, not this source tree."""
import os

import pytest


def pytest_sessionstart(session):
    import pyliveupdate
    import pyliveupdate._engine
    venv = os.path.realpath(os.environ["PYLU_WHEEL_VENV"]) + os.sep
    for module in (pyliveupdate, pyliveupdate._engine):
        if not os.path.realpath(module.__file__).startswith(venv):
            raise pytest.UsageError("testing %s, not the wheel installed in %s"
                                    % (module.__file__, venv))
