"""The original's ``identify_unknown_clusters``: clusters without a labelled member."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["identify_unknown_clusters"]


def identify_unknown_clusters(clusters: Any, labeled_mask: Any) -> list[int]:
    """Positions of the clusters (sets of member indices) with no labelled member.

    Parameters
    ----------
    clusters : sequence of iterables of int
        Members of each cluster; an empty cluster counts as unknown, as in the original.
    labeled_mask : array_like
        ``(N,)`` boolean.

    Returns
    -------
    list of int
    """
    lab = np.asarray(labeled_mask, dtype=bool)
    out = []
    for cid, members in enumerate(clusters):
        idx = np.fromiter((int(i) for i in members), dtype=np.int64)
        if not lab[idx].any():
            out.append(cid)
    return out
