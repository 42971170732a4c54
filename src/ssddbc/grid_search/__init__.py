"""grid_search layer of ssddbc.

As in the original, ``run_grid_search`` and ``parse_superclasses`` are importable from here
(resolved on first use from :mod:`ssddbc.grid_search.batch_runner`, so importing the package
loads nothing else); so is ``shutdown_workers`` (from :mod:`ssddbc.grid_search.api`), which
ends the warm worker pool of the one-shot search.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["parse_superclasses", "run_grid_search", "shutdown_workers"]

_HOMES = {
    "parse_superclasses": "ssddbc.grid_search.batch_runner",
    "run_grid_search": "ssddbc.grid_search.batch_runner",
    "shutdown_workers": "ssddbc.grid_search.api",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
