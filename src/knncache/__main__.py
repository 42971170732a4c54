"""``python -m knncache``: the same as the ``knncache`` command."""

from __future__ import annotations

import sys

from knncache.cli import main

if __name__ == "__main__":
    sys.exit(main())
