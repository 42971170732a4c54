"""The ``silhouette`` L2 component: mean silhouette of the unlabelled samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ssddbc._validation import as_mask, as_targets
from ssddbc.evaluation.loss_function import unlabelled_silhouette

__all__ = ["compute_silhouette_component"]


def compute_silhouette_component(
    *, X: Any, predictions: Any, labeled_mask: Any, **_: Any
) -> tuple[float, dict[str, Any]]:
    """:func:`ssddbc.evaluation.unlabelled_silhouette` as ``(score, metrics)``.

    0.0 with fewer than two clusters or no unlabelled sample, as in the original. The
    metrics hold ``silhouette_score``, ``orientation``, ``implemented`` and, when computed,
    ``n_unlabeled``, ``n_labeled``, ``n_clusters`` and ``unlabeled_silhouette_mean`` (the
    original's median, standard deviation and all-sample mean are not computed).
    """
    labels = as_targets(predictions, None, "predictions")
    lab = as_mask(labeled_mask, "labeled_mask", labels.shape[0])
    n_clusters = int(np.unique(labels).size)
    n_unl = int((~lab).sum())
    base: dict[str, Any] = {"orientation": "maximize", "implemented": True}
    if n_clusters < 2 or n_unl == 0:
        reason = "fewer than two clusters" if n_clusters < 2 else "no unlabelled sample"
        return 0.0, {"silhouette_score": 0.0, **base, "reason": reason}
    score = unlabelled_silhouette(labels, lab, X=X)
    return score, {
        "silhouette_score": score,
        **base,
        "n_unlabeled": n_unl,
        "n_labeled": int(lab.sum()),
        "n_clusters": n_clusters,
        "unlabeled_silhouette_mean": score,
    }
