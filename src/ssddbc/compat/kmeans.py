"""The original's ``test_kmeans_baseline``: k-means and its All/Old/New accuracy.

The clustering is :func:`ssddbc.baselines.kmeans_baseline` (scikit-learn's ``KMeans`` with
``n_init=10``, as the original).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc.baselines import kmeans_baseline
from ssddbc.evaluation.accuracy import split_cluster_acc_v1, split_cluster_acc_v2

__all__ = ["test_kmeans_baseline"]


def test_kmeans_baseline(
    test_features: Any,
    test_targets: Any,
    test_known_mask: Any,
    n_clusters: int,
    random_state: int = 0,
    eval_version: str = "v1",
    kmeans_merge: bool = False,
    train_features: Any = None,
    train_targets: Any = None,
    train_known_mask: Any = None,
) -> dict[str, Any]:
    """Cluster the test split (or train + test) with k-means and score the test part.

    Parameters
    ----------
    test_features, test_targets, test_known_mask : array_like
        The test split (features usually L2-normalised).
    n_clusters : int
        Clusters (the original used the true number of classes).
    random_state : int
        ``KMeans`` seed.
    eval_version : {"v1", "v2"}
        :func:`ssddbc.evaluation.split_cluster_acc_v1` or ``_v2``.
    kmeans_merge : bool
        Cluster train and test together (``train_features`` then required as in the
        original: without it the test split alone is clustered); only the test part is
        scored.
    train_features, train_targets, train_known_mask : array_like, optional
        The training split, for ``kmeans_merge``.

    Returns
    -------
    dict
        ``method``, ``n_clusters``, ``all_acc``, ``old_acc``, ``new_acc``, ``predictions``
        (test part) and, when merged, ``all_predictions``.
    """
    if eval_version not in ("v1", "v2"):
        raise InvalidInputError("eval_version", f"expected 'v1' or 'v2', got {eval_version!r}")
    test_x = np.asarray(test_features)
    merged = bool(kmeans_merge) and train_features is not None
    if merged:
        train_x = np.asarray(train_features)
        all_pred = kmeans_baseline(
            np.concatenate([train_x, test_x], axis=0), n_clusters, seed=random_state
        )
        pred = all_pred[train_x.shape[0] :]
    else:
        pred = kmeans_baseline(test_x, n_clusters, seed=random_state)
    acc = split_cluster_acc_v1 if eval_version == "v1" else split_cluster_acc_v2
    all_acc, old_acc, new_acc = acc(test_targets, pred, test_known_mask)
    result: dict[str, Any] = {
        "method": "K-means (train + test)" if merged else "K-means (test only)",
        "n_clusters": n_clusters,
        "all_acc": all_acc,
        "old_acc": old_acc,
        "new_acc": new_acc,
        "predictions": pred,
    }
    if merged:
        result["all_predictions"] = all_pred
    return result


# pytest collects ``test_*`` functions from any module it imports as a test file; this is a
# library function that only shares the original's name.
test_kmeans_baseline.__test__ = False  # type: ignore[attr-defined]
