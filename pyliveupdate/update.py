"""The names of the updates layer as the README imports them:

    from pyliveupdate.update import Instrument, Redefine, UpdateManager

The layer itself is the package ``pyliveupdate.updates``.
"""
from .updates.base import LU, UpdateBase
from .updates.instrument import Instrument
from .updates.manager import UpdateManager
from .updates.redefine import Redefine
from .updates.validation import UpdateError

__all__ = ["UpdateError", "UpdateBase", "Instrument", "Redefine", "UpdateManager", "LU"]
