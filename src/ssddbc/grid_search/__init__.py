"""grid_search layer of ssddbc.

As in the original, ``run_grid_search`` and ``parse_superclasses`` are importable from here
(resolved on first use from :mod:`ssddbc.grid_search.batch_runner`, so importing the package
loads nothing else).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["parse_superclasses", "run_grid_search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("ssddbc.grid_search.batch_runner"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
