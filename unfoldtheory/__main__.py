"""``python -m unfoldtheory`` runs the command line (see :mod:`unfoldtheory.cli`)."""

import sys

from .cli import main

sys.exit(main())
