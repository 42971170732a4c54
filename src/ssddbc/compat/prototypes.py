"""The original's ``build_prototypes``: mean vector and dominant label of each cluster."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._validation import as_mask, as_targets
from ssddbc.ssddbc import assignment

__all__ = ["build_prototypes"]


def build_prototypes(
    X: Any, clusters: Any, labeled_mask: Any, targets: Any
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Prototype (mean vector) and dominant labelled label of every cluster.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    clusters : sequence of sets
        Members of each cluster (non-empty).
    labeled_mask, targets : array_like
        ``(N,)`` labelled mask and labels.

    Returns
    -------
    prototypes : numpy.ndarray
        ``(C, d)`` mean vectors, computed as :func:`ssddbc.ssddbc.assignment.build_prototypes`
        (the same row order and rounding as the original).
    prototype_labels : numpy.ndarray
        int64 ``(C,)``: the most common label among each cluster's labelled members (ties to
        the smaller label), ``-1`` for a cluster without one.
    """
    x = np.asarray(X)
    n = x.shape[0]
    lab = as_mask(labeled_mask, "labeled_mask", n)
    y = as_targets(targets, n, "targets")
    groups = [set(int(i) for i in c) for c in clusters]
    if not groups:
        return np.zeros((0, x.shape[1]), dtype=x.dtype), np.zeros(0, dtype=np.int64)
    protos = assignment.build_prototypes(x, groups)
    out = np.full(len(groups), -1, dtype=np.int64)
    for cid, members in enumerate(groups):
        idx = np.fromiter(members, dtype=np.int64, count=len(members))
        lt = y[idx[lab[idx]]]
        if lt.size:
            values, counts = np.unique(lt, return_counts=True)
            out[cid] = int(values[np.argmax(counts)])
    return protos, out
