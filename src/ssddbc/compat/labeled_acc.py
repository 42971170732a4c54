"""The original's labelled-sample accuracy with a penalty for unknown clusters."""

from __future__ import annotations

from typing import Any

import numpy as np

from ssddbc._validation import as_mask, as_targets
from ssddbc.evaluation.accuracy import cluster_acc

__all__ = ["compute_labeled_acc_with_unknown_penalty"]


def compute_labeled_acc_with_unknown_penalty(
    predictions: Any, targets: Any, labeled_mask: Any, unknown_clusters: Any, silent: bool = False
) -> tuple[float, dict[str, Any]]:
    """Accuracy of the labelled samples; those in an unknown cluster count as wrong.

    The labelled samples outside ``unknown_clusters`` are matched to their classes with one
    Hungarian matching (:func:`ssddbc.evaluation.cluster_acc`); the accuracy is their matched
    hits over all labelled samples.

    Parameters
    ----------
    predictions, targets : array_like
        ``(N,)`` cluster ids and classes.
    labeled_mask : array_like
        ``(N,)`` boolean.
    unknown_clusters : iterable of int
        Cluster ids flagged unknown.
    silent : bool
        Accepted for compatibility; nothing is printed.

    Returns
    -------
    accuracy : float
        In ``[0, 1]``; 0.0 without labelled samples.
    metrics : dict
        ``n_labeled``, ``n_assigned_to_unknown``, ``n_assigned_to_known``, ``n_correct``,
        ``accuracy``.
    """
    pred = as_targets(predictions, None, "predictions")
    n = pred.shape[0]
    y = as_targets(targets, n, "targets")
    lab = as_mask(labeled_mask, "labeled_mask", n)
    lp, lt = pred[lab], y[lab]
    n_lab = int(lp.size)
    if n_lab == 0:
        return 0.0, {
            "n_labeled": 0,
            "n_assigned_to_unknown": 0,
            "n_assigned_to_known": 0,
            "n_correct": 0,
            "accuracy": 0.0,
        }
    in_unknown = np.isin(lp, np.asarray(list(unknown_clusters or []), dtype=np.int64))
    n_known = int((~in_unknown).sum())
    n_correct = 0
    if n_known:
        n_correct = round(cluster_acc(lt[~in_unknown], lp[~in_unknown]) * n_known)
    accuracy = n_correct / n_lab
    return accuracy, {
        "n_labeled": n_lab,
        "n_assigned_to_unknown": int(in_unknown.sum()),
        "n_assigned_to_known": n_known,
        "n_correct": n_correct,
        "accuracy": accuracy,
    }
