"""Single-configuration runs on a feature cache, at the original's path ``ssddbc.testing``.

:func:`test_adaptive_clustering_on_superclass` (:mod:`.test_superclass`) and ``main`` are
imported on first use, so ``import ssddbc.testing`` stays cheap. ``main`` is the module
:mod:`.main`, which is callable as the original's function was: ``main(argv)`` runs the
command, whichever of ``ssddbc.testing`` and ``ssddbc.testing.main`` was imported first.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["main", "test_adaptive_clustering_on_superclass"]

_MODULES = {
    "test_adaptive_clustering_on_superclass": "ssddbc.compat.test_superclass",
}


def __getattr__(name: str) -> Any:
    if name == "main":  # importing the submodule binds it here as well
        return import_module(f"{__name__}.main")
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
