"""``python -m aioconn``: the same as the ``aioconn`` command."""

import sys

from .cli import main

sys.exit(main())
