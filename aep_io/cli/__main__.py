"""``python -m aep_io.cli`` runs the ``aep-io`` command."""

import sys

from aep_io.cli import main

sys.exit(main())
