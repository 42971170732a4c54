"""Assigning the points outside the core (step 5), vectorised.

Cluster memberships are frozen before the loop in every strategy of the original (each point
only looks at core points), so the visiting order (density, highest first) cannot change the
result and all points are assigned at once, block by block:

* strategy 3 (default): per cluster, the mean of the distances to its 3 nearest members
  (``min(3, size)``); the smallest wins, ties to the lower cluster id;
* strategy 2: the ``voting_k`` nearest core points, (distance, index) order, vote with weight
  ``exp(-distance)``; the highest total wins, ties to the cluster met first in that order;
* strategy 1: the nearest cluster mean vector, ties to the lower cluster id.

Means are taken in float64 over the float32 distances of :mod:`ssddbc._distances`.

Without a distance matrix, strategies 3 and 2 first answer every point they can from the
source's candidate graph (:mod:`ssddbc.ssddbc._candidates`: exact whenever the candidates
decide) and compute only the remaining points against all core points; strategy 3 first
tries those points against the members of the clusters present among their candidates
(exact, see :func:`~ssddbc.ssddbc._candidates.choose_with_exact_means`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._distances import euclidean_block
from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_features, as_pairwise, as_targets, check_choice, check_int
from ssddbc.ssddbc._candidates import (
    choose_with_exact_means,
    first_members,
    present_groups,
    three_nearest_choice,
)
from ssddbc.ssddbc._params import DEFAULTS
from ssddbc.ssddbc._select import SmallestPerRow
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.clustering import core_point_order

__all__ = [
    "ASSIGN_MODELS",
    "assign_sparse_points",
    "assign_sparse_points_density_based",
    "build_prototypes",
]

ASSIGN_MODELS: dict[int, str] = {
    1: "nearest cluster mean",
    2: "weighted vote of the nearest core points",
    3: "mean distance to the 3 nearest members",
}


def build_prototypes(X: npt.NDArray[Any], clusters: list[set[int]]) -> npt.NDArray[Any]:
    """Mean vector of each cluster, summed in the order the original did.

    The original averaged ``X[list(cluster)]`` with ``cluster`` a set rebuilt from the sorted
    member list; the same set gives the same row order and hence the same float rounding.
    """
    return np.stack([np.asarray(X[list(set(sorted(c)))]).mean(axis=0) for c in clusters])


def _vote(
    voter: npt.NDArray[np.int64], dist: npt.NDArray[Any], n_clusters: int
) -> npt.NDArray[np.int64]:
    """Weighted vote of each row's voters (nearest first); ties to the cluster met first."""
    r, kv = voter.shape
    weight = np.exp(-dist.astype(np.float64))
    scores = np.zeros((r, n_clusters))
    rr = np.arange(r)
    for j in range(kv):  # accumulate in nearest-first order, as the original did
        scores[rr, voter[:, j]] += weight[:, j]
    best = scores.max(axis=1)
    first = np.argmax(scores[rr[:, None], voter] == best[:, None], axis=1)
    result: npt.NDArray[np.int64] = voter[rr, first]
    return result


def _present_group_choice(
    todo: npt.NDArray[np.int64],
    nb_rows: npt.NDArray[np.int64],
    ds_rows: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    source: DistanceSource,
) -> npt.NDArray[np.int64]:
    """Strategy 3 for rows the candidates left open, from their present groups' members.

    Each group with a member among a row's candidates gets its exact mean for that row
    (distances to all its members); :func:`choose_with_exact_means` then decides the rows
    no absent group can reach. Returns the chosen cluster per row, ``-1`` where undecided.
    """
    sizes = np.diff(bounds)
    c_row, c_gid = present_groups(nb_rows, labels, len(sizes))
    value = np.empty(c_row.size, dtype=np.float64)
    order = np.argsort(c_gid, kind="stable")
    starts = np.searchsorted(c_gid[order], np.arange(len(sizes) + 1))
    for gid in np.unique(c_gid).tolist():
        cells = order[starts[gid] : starts[gid + 1]]
        members = cols[bounds[gid] : bounds[gid + 1]]
        alone = [0, members.size]
        for sl, means in source.group_means(todo[c_row[cells]], members, alone):
            value[cells[sl]] = means[:, 0]
    d_last = ds_rows[:, -1].astype(np.float64)
    return choose_with_exact_means(d_last, c_row, c_gid, value, sizes)


def assign_sparse_points(
    labels: npt.NDArray[np.int64],
    source: DistanceSource,
    assign_model: int = DEFAULTS.assign_model,
    voting_k: int = DEFAULTS.voting_k,
) -> npt.NDArray[np.int64]:
    """Give every point with label ``-1`` a core cluster.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` core labels ``0..C-1`` (at least one cluster), ``-1`` elsewhere.
    source : DistanceSource
        Distances (and the features, for strategy 1).
    assign_model : {1, 2, 3}
        Strategy, see the module docstring.
    voting_k : int
        Voters for strategy 2.

    Returns
    -------
    numpy.ndarray
        int64 ``(N,)`` labels with no ``-1`` left.
    """
    out: npt.NDArray[np.int64] = labels.copy()
    todo = np.flatnonzero(labels < 0)
    if todo.size == 0:
        return out
    if assign_model == 3:
        cols, bounds = core_point_order(labels)
        sizes = np.diff(bounds)
        if source.candidates is not None:
            nb, ds = source.candidates
            choice = three_nearest_choice(nb[todo], ds[todo], labels, sizes)
            done = choice >= 0
            out[todo[done]] = choice[done]
            todo = todo[~done]
            if todo.size:
                # The groups present in those rows, computed exactly, usually decide them.
                choice = _present_group_choice(
                    todo, nb[todo], ds[todo], labels, cols, bounds, source
                )
                done = choice >= 0
                out[todo[done]] = choice[done]
                todo = todo[~done]
        # The rows left (few) meet every core point: streamed, one column block at a time.
        for sl, means in source.group_means(todo, cols, bounds):
            out[todo[sl]] = np.argmin(means, axis=1)
    elif assign_model == 2:
        core = np.flatnonzero(labels >= 0)
        kv = min(voting_k, core.size)
        n_clusters = int(labels[core].max()) + 1
        if source.candidates is not None:
            # The first kv core points of a global row are the kv nearest core points.
            nb, ds = source.candidates
            ok, idx, dist = first_members(nb[todo], ds[todo], labels >= 0, kv)
            if ok.any():
                out[todo[ok]] = _vote(labels[idx], dist, n_clusters)
            todo = todo[~ok]
        for sl, rows in source.row_batches(todo, 2 * kv):
            nearest = SmallestPerRow(len(rows), kv)
            for c0, block in source.column_blocks(rows, core):
                nearest.update(c0, block)
            pos, dist = nearest.result()
            out[todo[sl]] = _vote(labels[core[pos]], dist, n_clusters)
    elif assign_model == 1:
        cols, bounds = core_point_order(labels)
        clusters = [set(cols[bounds[g] : bounds[g + 1]].tolist()) for g in range(len(bounds) - 1)]
        protos = build_prototypes(source.X, clusters)
        x = source.X
        for sl, rows in source.row_blocks(todo, len(clusters)):
            d = euclidean_block(np.asarray(x[rows]), protos)
            out[todo[sl]] = np.argmin(d, axis=1)
    else:  # validated by the caller; kept as a guard for direct use
        raise InvalidInputError("assign_model", f"expected one of [1, 2, 3], got {assign_model!r}")
    return out


# ---- the original research code's API ---------------------------------------------------


def assign_sparse_points_density_based(
    X: Any,
    clusters: Any,
    cluster_labels: Any,
    densities: Any,
    neighbors: Any,
    labeled_mask: Any,
    targets: Any,
    label_threshold: float = 0.1,
    purity_threshold: float = 0.8,
    train_size: int | None = None,
    silent: bool = False,
    voting_k: int = DEFAULTS.voting_k,
    assign_model: int = DEFAULTS.assign_model,
    label_guide: bool = False,
    *,
    pairwise_distances: Any = None,
) -> npt.NDArray[np.int64]:
    """Assign every point with ``cluster_labels == -1`` to a cluster (the original's step 5).

    :func:`assign_sparse_points` with the original's arguments. Cluster ``i`` is the set
    ``clusters[i]``; only its members count as its points (empty sets are skipped), and the
    points already labelled keep their label.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    clusters : sequence of sets
        Core members of each cluster id.
    cluster_labels : array_like
        ``(N,)`` ids, ``-1`` for the points to assign.
    assign_model : {1, 2, 3}
        As in :func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering` (the
        original implemented only 3, its documented default; its signature said 2, which it
        refused).
    voting_k : int
        Voters for ``assign_model=2``.
    densities, neighbors, labeled_mask, targets, label_threshold, purity_threshold,
    train_size, silent, label_guide
        Accepted for compatibility; the original's strategy 3 did not use them either.
    pairwise_distances : numpy.ndarray, optional
        Keyword-only ``(N, N)`` distances of ``X`` (only speed changes).

    Returns
    -------
    numpy.ndarray
        int64 ``(N,)`` labels.
    """
    x = as_features(X, "X", min_rows=1)
    n = x.shape[0]
    given = as_targets(cluster_labels, n, "cluster_labels")
    model = check_choice(assign_model, "assign_model", ASSIGN_MODELS)
    kv = check_int(voting_k, "voting_k", 1)
    pairwise = None if pairwise_distances is None else as_pairwise(pairwise_distances, n)
    core = np.full(n, -1, dtype=np.int64)
    ids: list[int] = []
    for cid, members in enumerate(clusters):
        idx = np.fromiter((int(i) for i in members), dtype=np.int64)
        if idx.size:
            if idx.min() < 0 or idx.max() >= n:
                raise InvalidInputError("clusters", f"member indices must lie in [0, {n})")
            core[idx] = len(ids)
            ids.append(cid)
    todo = given < 0
    out: npt.NDArray[np.int64] = given.copy()
    if not ids or not todo.any():
        return out
    assigned = assign_sparse_points(core, DistanceSource(x, pairwise), model, kv)
    out[todo] = np.asarray(ids, dtype=np.int64)[assigned[todo]]
    return out
