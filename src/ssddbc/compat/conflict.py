"""The original research code's conflict helpers (not used by its final pipeline)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["compute_cluster_cohesion", "ssddbc_conflict_resolution"]


def ssddbc_conflict_resolution(
    xi_idx: int,
    xj_idx: int,
    xi_cluster_center: Any,
    xj_cluster_center: Any,
    X: Any,
    densities: Any,
) -> bool:
    """Whether point ``xj`` is strictly closer to ``xi``'s cluster centre than to its own.

    Parameters
    ----------
    xi_idx, xj_idx : int
        The expanding point and its neighbour (``xi_idx`` and ``densities`` are accepted for
        compatibility: the original's final rule used distances only).
    xi_cluster_center, xj_cluster_center : array_like
        ``(d,)`` centres of the two clusters.
    X : array_like
        ``(N, d)`` features.
    densities : array_like
        Unused.

    Returns
    -------
    bool
    """
    x = np.asarray(X)[xj_idx].astype(np.float64)
    to_i = float(np.linalg.norm(x - np.asarray(xi_cluster_center, dtype=np.float64)))
    to_j = float(np.linalg.norm(x - np.asarray(xj_cluster_center, dtype=np.float64)))
    return to_i < to_j


def compute_cluster_cohesion(X: Any, cluster_indices: Any) -> float:
    """Mean distance of a cluster's members to their mean vector (0.0 below two members).

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    cluster_indices : sequence of int
        Member indices.

    Returns
    -------
    float
        Smaller is tighter.
    """
    idx = np.asarray(list(cluster_indices), dtype=np.int64)
    if idx.size < 2:
        return 0.0
    pts = np.asarray(X)[idx].astype(np.float64)
    return float(np.linalg.norm(pts - pts.mean(axis=0), axis=1).mean())
