"""Single-configuration runs on a feature cache, at the original's path ``ssddbc.testing``.

:func:`test_adaptive_clustering_on_superclass` (:mod:`.test_superclass`) and :func:`main`
(:mod:`.main`) are imported on first use, so ``import ssddbc.testing`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["main", "test_adaptive_clustering_on_superclass"]

_MODULES = {
    "main": "ssddbc.compat.testing_cli",
    "test_adaptive_clustering_on_superclass": "ssddbc.compat.test_superclass",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
