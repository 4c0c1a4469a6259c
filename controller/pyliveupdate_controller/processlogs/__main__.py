"""`python -m pyliveupdate_controller.processlogs` = `pylu-processlogs`."""
import sys

from .cli import main

sys.exit(main())
