"""Compatibility names of the original PyLiveUpdate (``from pyliveupdatescripts import UpdateStub``)."""
