"""The original's cluster quality: ``separation_weight * separation - penalty_weight * penalty``.

Separation is ``exp(-mean distance between every pair of core clusters)``, two clusters'
distance being that of their prototypes (``"prototype"``, as
:func:`ssddbc.evaluation.separation_score`), the mean of their ``k`` closest cross pairs
(``"nearest_k"``) or of all cross pairs (``"all_pairs"``); the penalty is
:func:`ssddbc.evaluation.local_density_penalty`. Every function returns ``(value, metrics)``;
distances are those of :mod:`ssddbc._distances`, so values agree with the original's to float
rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knncache import compute_knn
from ssddbc._distances import euclidean_block
from ssddbc._errors import InvalidInputError
from ssddbc._validation import check_float32_range
from ssddbc.evaluation.score import local_density_penalty, separation_score

__all__ = [
    "CLUSTER_DISTANCE_METHODS",
    "compute_cluster_quality_score",
    "compute_cluster_separation",
    "compute_local_density_penalty",
    "compute_penalty_component",
    "compute_separation_component",
]

#: The original's ``--cluster_distance_method`` numbers and their names.
CLUSTER_DISTANCE_METHODS: dict[int, str] = {1: "nearest_k", 2: "all_pairs", 3: "prototype"}


def compute_cluster_separation(
    clusters: Any, X: Any, method: str = "prototype", k: int = 10
) -> tuple[float, dict[str, Any]]:
    """Separation of the core clusters, ``exp(-mean pairwise cluster distance)``.

    Parameters
    ----------
    clusters : sequence of sets
        Members of each core cluster (empty ones are ignored).
    X : array_like
        ``(N, d)`` features.
    method : {"prototype", "nearest_k", "all_pairs"}
        Distance between two clusters (see the module docstring).
    k : int
        Pairs averaged by ``"nearest_k"``.

    Returns
    -------
    score : float
        0.0 with fewer than two clusters.
    metrics : dict
        ``n_clusters``, ``n_pairs``, ``sum_distances``, ``avg_distance``, ``method``.
    """
    if method not in CLUSTER_DISTANCE_METHODS.values():
        raise InvalidInputError(
            "method", f"expected one of {sorted(CLUSTER_DISTANCE_METHODS.values())}, got {method!r}"
        )
    x = np.asarray(X)
    members = [np.fromiter((int(i) for i in c), dtype=np.int64) for c in clusters]
    members = [m for m in members if m.size]
    n_c = len(members)
    if n_c < 2:
        return 0.0, {"n_clusters": n_c, "n_pairs": 0}
    n_pairs = n_c * (n_c - 1) // 2
    if method == "prototype":
        score = separation_score(members, x)
        avg = float(-np.log(score)) if score > 0 else float("inf")
    else:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        dists = []
        for i in range(n_c):
            for j in range(i + 1, n_c):
                block = euclidean_block(x32[members[i]], x32[members[j]]).astype(np.float64)
                if method == "all_pairs":
                    dists.append(float(block.mean()))
                else:
                    flat = np.sort(block, axis=None)
                    dists.append(float(flat[: min(k, flat.size)].mean()))
        avg = float(np.sum(dists) / n_pairs)
        score = float(np.exp(-avg))
    return score, {
        "n_clusters": n_c,
        "n_pairs": n_pairs,
        "sum_distances": avg * n_pairs,
        "avg_distance": avg,
        "method": method,
    }


def compute_local_density_penalty(
    X: Any, labels: Any, k: int, neighbors: Any = None
) -> tuple[float, dict[str, Any]]:
    """The local density penalty over each point's ``k`` nearest neighbours.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    labels : array_like
        ``(N,)`` cluster ids.
    k : int
        Neighbours per point.
    neighbors : array_like, optional
        ``(N, >=k)`` neighbour indices (self excluded); computed with
        :func:`knncache.compute_knn` when omitted.

    Returns
    -------
    penalty : float
    metrics : dict
        ``n_samples``, ``k``, ``total_penalty``, ``avg_penalty_per_sample``.
    """
    X = np.asarray(X)
    if X.dtype.kind == "f":
        check_float32_range(X, "X")
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    n = x32.shape[0]
    if neighbors is None:
        neighbors = compute_knn(x32, k).neighbors
    nb = np.asarray(neighbors, dtype=np.int64)[:, :k]
    diff = x32[nb].astype(np.float64) - x32[:, None, :].astype(np.float64)
    dist = np.sqrt(np.einsum("nkd,nkd->nk", diff, diff))
    penalty = local_density_penalty(labels, nb, dist) if n else 0.0
    return penalty, {
        "n_samples": n,
        "k": k,
        "total_penalty": penalty * n,
        "avg_penalty_per_sample": penalty,
    }


def compute_separation_component(
    clusters: Any, X: Any, k: int = 10, method: str = "prototype"
) -> tuple[float, dict[str, Any]]:
    """:func:`compute_cluster_separation` as ``(score, {"separation_score", "details"})``."""
    score, details = compute_cluster_separation(clusters, X, method=method, k=k)
    return score, {"separation_score": score, "details": details}


def compute_penalty_component(
    X: Any, labels: Any, k: int, neighbors: Any = None
) -> tuple[float, dict[str, Any]]:
    """:func:`compute_local_density_penalty` as ``(penalty, {"penalty_score", "details"})``."""
    penalty, details = compute_local_density_penalty(X, labels, k, neighbors)
    return penalty, {"penalty_score": penalty, "details": details}


def compute_cluster_quality_score(
    clusters: Any,
    X: Any,
    labels: Any,
    k: int,
    cluster_distance_method: str = "prototype",
    neighbors: Any = None,
    separation_weight: float = 1.0,
    penalty_weight: float = 1.0,
) -> tuple[float, dict[str, Any]]:
    """``separation_weight * separation - penalty_weight * penalty`` and its parts.

    Returns
    -------
    quality : float
        Higher is better.
    metrics : dict
        ``quality_score``, ``separation_score``, ``penalty_score``, the weights, the
        weighted parts and both components' details.
    """
    sep, sep_payload = compute_separation_component(clusters, X, k, cluster_distance_method)
    pen, pen_payload = compute_penalty_component(X, labels, k, neighbors)
    quality = separation_weight * sep - penalty_weight * pen
    return quality, {
        "quality_score": quality,
        "separation_score": sep,
        "penalty_score": pen,
        "separation_weight": separation_weight,
        "penalty_weight": penalty_weight,
        "weighted_separation": separation_weight * sep,
        "weighted_penalty": penalty_weight * pen,
        "separation_metrics": sep_payload["details"],
        "penalty_metrics": pen_payload["details"],
    }
