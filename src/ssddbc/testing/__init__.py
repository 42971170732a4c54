"""Single-configuration runs on a feature cache (the original's ``ssddbc.testing``).

* :func:`test_adaptive_clustering_on_superclass` (:mod:`.test_superclass`): the original's
  one-superclass test with its parameters and result dict;
* :func:`main` (:mod:`.main`, ``python -m ssddbc.testing.main``): its command line.

Both are imported on first use, so ``import ssddbc.testing`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["main", "test_adaptive_clustering_on_superclass"]


def __getattr__(name: str) -> Any:
    if name == "test_adaptive_clustering_on_superclass":
        from ssddbc.testing.test_superclass import test_adaptive_clustering_on_superclass

        return test_adaptive_clustering_on_superclass
    if name == "main":
        from ssddbc.testing.main import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
