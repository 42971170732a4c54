"""Unknown (novel-category) clusters: clusters with no labelled member."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["identify_unknown_clusters_from_predictions"]


def identify_unknown_clusters_from_predictions(predictions: Any, labeled_mask: Any) -> list[int]:
    """Ids of the clusters in ``predictions`` that contain no labelled sample.

    Parameters
    ----------
    predictions : array_like
        ``(N,)`` cluster ids.
    labeled_mask : array_like
        ``(N,)`` boolean.

    Returns
    -------
    list of int
        Sorted cluster ids.
    """
    pred = np.asarray(predictions)
    lab = np.asarray(labeled_mask, dtype=bool)
    ids = np.unique(pred)
    has_label = np.isin(ids, pred[lab])
    return [int(c) for c in ids[~has_label]]
