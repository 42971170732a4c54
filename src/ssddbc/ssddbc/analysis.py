"""Accuracy of the core clusters alone (the original's ``eval_dense`` mode).

The original's printing reports of this module, ``analyze_ssddbc_clustering_result`` and
``analyze_cluster_composition``, live in :mod:`ssddbc.compat.analysis` and are reachable here
too, imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask, as_targets
from ssddbc.evaluation.accuracy import split_cluster_acc_v1, split_cluster_acc_v2

__all__ = [
    "analyze_cluster_composition",  # noqa: F822  (resolved by __getattr__)
    "analyze_ssddbc_clustering_result",  # noqa: F822  (resolved by __getattr__)
    "evaluate_high_density_clustering",
]

#: The original's reports, defined in the compatibility package.
_ORIGINAL_NAMES = frozenset({"analyze_cluster_composition", "analyze_ssddbc_clustering_result"})


def evaluate_high_density_clustering(
    cluster_labels: Any,
    targets: Any,
    known_mask: Any,
    eval_version: str = "v1",
    X: Any = None,
    silent: bool = False,
) -> tuple[float, float, float, int, None]:
    """All/Old/New accuracy over the clustered points only (``cluster_labels >= 0``).

    Parameters
    ----------
    cluster_labels : array_like
        ``(N,)`` core labels, ``-1`` for unclustered points.
    targets, known_mask : array_like
        ``(N,)`` true classes and known-class mask.
    eval_version : {"v1", "v2"}
        :func:`ssddbc.evaluation.split_cluster_acc_v1` or ``_v2``.
    X, silent
        Accepted for compatibility (the original's ``X`` was already unused).

    Returns
    -------
    (all_acc, old_acc, new_acc, n_clusters, None)
        ``(0.0, 0.0, 0.0, 0, None)`` when no point is clustered; the last value is the
        original's removed DBCV score.
    """
    labels = as_targets(cluster_labels, None, "cluster_labels")
    n = labels.shape[0]
    y = as_targets(targets, n, "targets")
    known = as_mask(known_mask, "known_mask", n)
    if eval_version not in ("v1", "v2"):
        raise InvalidInputError("eval_version", f"expected 'v1' or 'v2', got {eval_version!r}")
    sel = labels >= 0
    if not sel.any():
        return 0.0, 0.0, 0.0, 0, None
    acc = split_cluster_acc_v1 if eval_version == "v1" else split_cluster_acc_v2
    all_acc, old_acc, new_acc = acc(y[sel], labels[sel], known[sel])
    return all_acc, old_acc, new_acc, int(np.unique(labels[sel]).size), None


def __getattr__(name: str) -> Any:
    if name in _ORIGINAL_NAMES:
        return getattr(import_module("ssddbc.compat.analysis"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
