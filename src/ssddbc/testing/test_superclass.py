"""``python -m ssddbc.testing.test_superclass`` (the original's path): see :mod:`ssddbc.compat`.

Not a pytest file: its ``test_*`` function is marked ``__test__ = False``.
"""

from __future__ import annotations

from ssddbc.compat.superclass import (
    PAIRWISE_MAX_N,
    format_table,
    run_on_data,
    run_test_superclass,
)
from ssddbc.compat.superclass_cli import main
from ssddbc.compat.test_superclass import test_adaptive_clustering_on_superclass

__all__ = [
    "PAIRWISE_MAX_N",
    "format_table",
    "main",
    "run_on_data",
    "run_test_superclass",
    "test_adaptive_clustering_on_superclass",
]

if __name__ == "__main__":
    raise SystemExit(main())
