"""Compatibility with the original research code: its API, implemented on this package's design.

Each module here implements part of the original's API (its signatures, result dicts and
command lines) on top of the design modules. The original's import paths, listed in
:data:`STUB_MODULES`, are stubs of a few lines that re-export from here. The design never
imports this package or the stubs, so both can be removed without touching it.
"""

from __future__ import annotations

__all__ = ["STUB_MODULES"]

#: The original's import paths that only re-export (from here and from the design).
STUB_MODULES: tuple[str, ...] = (
    "ssddbc.baseline",
    "ssddbc.baseline.kmeans",
    "ssddbc.evaluation.cluster_quality",
    "ssddbc.evaluation.l2_strategies",
    "ssddbc.evaluation.l2_strategies.geometric",
    "ssddbc.evaluation.l2_strategies.silhouette",
    "ssddbc.evaluation.loss_function",
    "ssddbc.information",
    "ssddbc.information.labeled_acc_calculation",
    "ssddbc.prototypes",
    "ssddbc.prototypes.prototype_builder",
    "ssddbc.ssddbc.conflict",
    "ssddbc.testing",
    "ssddbc.testing.main",
    "ssddbc.testing.test_superclass",
    "ssddbc.unknown",
    "ssddbc.unknown.detection",
    "ssddbc.utils",
    "ssddbc.utils.co_calculation",
)
