"""``adaptive_density_clustering``: the SS-DDBC pipeline (doc sections 1-6).

1. k-NN densities (``dense_method``) and relative densities; the high-density set ``H`` is
   every point whose relative density reaches the ``density_percentile``-th percentile.
2. The cutoff ``co`` (``co_mode``).
3. Core clusters grown over ``H`` with the label constraints (:mod:`.clustering`).
4. Clusters of at most 3 members merged into larger ones (:mod:`.merging`).
5. Every other point assigned to a core cluster (:mod:`.assignment`, ``assign_model``).
6. Clusters without a labelled member flagged unknown.

All distances come from one definition (:mod:`ssddbc._distances`): pass
``pairwise_distances=pairwise_euclidean(X)`` (computed once per feature matrix, possibly a
read-only memmap shared by many configurations) and each configuration only indexes into it.
Without it, the neighbour graph's columns (all ``M >= k`` of them, see ``precomputed_knn``)
answer the within-H neighbours, the small-cluster merge and assignment strategies 2 and 3
exactly wherever they decide (:mod:`ssddbc.ssddbc._candidates`), and distance blocks with
memory ``O(N * block)`` are computed only for the rows they cannot decide: no ``(N, N)``
array, and at N = 50,000 with ``M = 64`` almost no blocks. Both routes give identical results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError
from ssddbc._validation import (
    as_candidate_graph,
    as_features,
    as_mask,
    as_pairwise,
    as_precomputed_knn,
    as_targets,
    check_choice,
    check_int,
    check_percentile,
)
from ssddbc.density.density_estimation import (
    DENSITY_METHODS,
    compute_density,
    compute_relative_density,
    identify_high_density_points,
)
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.assignment import ASSIGN_MODELS, assign_sparse_points
from ssddbc.ssddbc.clustering import (
    cluster_label_rule,
    grow_core_clusters,
    high_density_neighbors,
)
from ssddbc.ssddbc.co_calculation import CO_MODES, compute_co_value
from ssddbc.ssddbc.merging import merge_isolated_core_clusters
from ssddbc.ssddbc.unknown import identify_unknown_clusters_from_predictions

__all__ = ["adaptive_density_clustering"]

ClusteringResult = tuple[
    npt.NDArray[np.int64],
    int,
    list[int],
    list[set[int]],
    dict[int, int],
    npt.NDArray[np.int64],
    list[set[int]],
    npt.NDArray[np.float64],
]


def _category_labels(
    clusters: list[set[int]], labeled_mask: npt.NDArray[np.bool_], targets: npt.NDArray[np.int64]
) -> dict[int, int]:
    out: dict[int, int] = {}
    for cid, members in enumerate(clusters):
        idx = np.fromiter(members, dtype=np.int64, count=len(members))
        lab = targets[idx[labeled_mask[idx]]]
        values, counts = np.unique(lab, return_counts=True)
        label = cluster_label_rule(
            len(members), int(lab.size), dict(zip(values.tolist(), counts.tolist(), strict=True))
        )
        if label is not None:
            out[cid] = int(label)
    return out


@dataclass(frozen=True)
class _Inputs:
    """Validated inputs of one feature matrix and one ``k`` (all percentiles)."""

    x: npt.NDArray[Any]
    y: npt.NDArray[np.int64]
    labeled: npt.NDArray[np.bool_]
    k: int
    percentiles: list[float]
    dense_method: int
    co_mode: int
    co_manual: float | None
    assign_model: int
    voting_k: int
    knn: tuple[npt.NDArray[np.int64], npt.NDArray[Any]] | None
    raw_knn: Any
    pairwise: npt.NDArray[Any] | None
    fast_mode: bool


@dataclass(frozen=True)
class _PerK:
    """What every percentile of one ``k`` shares (doc sections 1-2 and the distances)."""

    densities: npt.NDArray[np.float64]
    neighbors: npt.NDArray[np.int64]
    relative: npt.NDArray[np.float64]
    co: float | npt.NDArray[np.float64]
    source: DistanceSource


def _validate_inputs(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    percentiles: Sequence[float],
    *,
    dense_method: int,
    co_mode: int,
    co_manual: float | None,
    assign_model: int,
    voting_k: int,
    precomputed_knn: Any,
    pairwise_distances: Any,
    eval_dense: bool,
    fast_mode: bool,
) -> _Inputs:
    """Every check of :func:`adaptive_density_clustering`, in its order, before any work."""
    x = as_features(X, "X")
    n = x.shape[0]
    y = as_targets(targets, n, "targets")
    known = as_mask(known_mask, "known_mask", n)
    labeled = as_mask(labeled_mask, "labeled_mask", n)
    outside = np.flatnonzero(labeled & ~known)
    if outside.size:
        raise InvalidInputError(
            "labeled_mask",
            f"{outside.size} labelled sample(s) are not of a known class "
            f"(first: index {int(outside[0])}); labeled_mask must be a subset of known_mask",
        )
    k = check_int(k, "k", 1, n - 1)
    checked = [check_percentile(p, "density_percentile") for p in percentiles]
    dense_method = check_choice(dense_method, "dense_method", DENSITY_METHODS)
    co_mode = check_choice(co_mode, "co_mode", CO_MODES)
    assign_model = check_choice(assign_model, "assign_model", ASSIGN_MODELS)
    voting_k = check_int(voting_k, "voting_k", 1)
    if co_mode == 1:
        compute_co_value(1, None, None, None, k, co_manual)  # validates co_manual
    if eval_dense:
        raise InvalidInputError(
            "eval_dense",
            "the high-density-only evaluation mode is not supported; "
            "evaluate the returned core_clusters instead",
        )
    knn = None if precomputed_knn is None else as_precomputed_knn(precomputed_knn, n, k)
    pairwise = None if pairwise_distances is None else as_pairwise(pairwise_distances, n)
    return _Inputs(
        x=x,
        y=y,
        labeled=labeled,
        k=k,
        percentiles=checked,
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
        knn=knn,
        raw_knn=precomputed_knn,
        pairwise=pairwise,
        fast_mode=fast_mode,
    )


def _prepare_k(inputs: _Inputs, candidates_with_matrix: bool = False) -> _PerK:
    """Densities, relative densities, the cutoff and the distance source of one ``k``.

    With ``candidates_with_matrix``, a float32 ``precomputed_knn`` serves as candidates even
    when the matrix is given (the matrix then answers only the rows they leave undecided):
    same results, see :mod:`ssddbc.ssddbc._candidates`.
    """
    x, k, n = inputs.x, inputs.k, inputs.x.shape[0]
    # ---- 1. densities, relative densities ------------------------------------------------
    densities, knn_dist, neighbors = compute_density(
        x if inputs.knn is None else None, k, inputs.dense_method, inputs.knn
    )
    relative = compute_relative_density(densities, neighbors, k)
    # ---- 2. cutoff ------------------------------------------------------------------------
    co = compute_co_value(inputs.co_mode, knn_dist, densities, neighbors, k, inputs.co_manual)
    # ---- distances -----------------------------------------------------------------------
    candidates = None
    if inputs.pairwise is None or candidates_with_matrix:
        # The neighbour graph (all its columns) decides most distance questions exactly;
        # blocks are computed (or read from the matrix) only for the rows it cannot decide.
        if inputs.knn is None:
            candidates = (neighbors, knn_dist.astype(np.float32))
        else:
            candidates = as_candidate_graph(inputs.raw_knn, n, k)
    source = DistanceSource(x, inputs.pairwise, candidates)
    return _PerK(densities, neighbors, relative, co, source)


def _run_percentile(inputs: _Inputs, per_k: _PerK, percentile: float) -> ClusteringResult:
    """Doc sections 1 (the high-density set) and 3-6 for one percentile."""
    x, y, labeled, source = inputs.x, inputs.y, inputs.labeled, per_k.source
    high_idx = np.flatnonzero(identify_high_density_points(per_k.relative, percentile))

    # ---- 3. core clusters ----------------------------------------------------------------
    nbr_lists = high_density_neighbors(source, high_idx, inputs.k, per_k.co)
    core_labels, _ = grow_core_clusters(high_idx, nbr_lists, labeled, y, per_k.densities)

    # ---- 4. small-cluster merge ----------------------------------------------------------
    core_labels = merge_isolated_core_clusters(core_labels, x, y, labeled, source)
    n_core = int(core_labels.max()) + 1
    order = np.argsort(core_labels, kind="stable")
    bounds = np.searchsorted(core_labels[order], np.arange(-1, n_core + 1))
    core_clusters = [set(order[bounds[c + 1] : bounds[c + 2]].tolist()) for c in range(n_core)]

    # ---- 5. assignment -------------------------------------------------------------------
    labels = assign_sparse_points(core_labels, source, inputs.assign_model, inputs.voting_k)

    # ---- 6. unknown clusters and return values -------------------------------------------
    clusters = [set(c) for c in core_clusters]
    if inputs.fast_mode:
        unknown: list[int] = []
        category: dict[int, int] = {}
    else:
        unknown = identify_unknown_clusters_from_predictions(labels, labeled)
        category = _category_labels(clusters, labeled, y)
    n_clusters = int(np.unique(labels).size)
    densities, neighbors = per_k.densities, per_k.neighbors
    return labels, n_clusters, unknown, clusters, category, neighbors, core_clusters, densities


def adaptive_density_clustering(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int = 10,
    density_percentile: float = 75,
    *,
    dense_method: int = 1,
    co_mode: int = 2,
    co_manual: float | None = None,
    assign_model: int = 3,
    voting_k: int = 5,
    precomputed_knn: Any = None,
    pairwise_distances: Any = None,
    random_state: int | None = 0,
    train_size: int | None = None,
    eval_dense: bool = False,
    eval_version: str = "v1",
    fast_mode: bool = False,
    silent: bool = True,
    detail_dense: bool = False,
    label_guide: bool = False,
) -> ClusteringResult:
    """Run SS-DDBC on one feature matrix with one configuration.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` real features, finite (taken as float32 for distances; usually
        L2-normalised).
    targets : array_like
        ``(N,)`` integer class labels; only the labelled samples' labels are used.
    known_mask : array_like
        ``(N,)`` boolean (or 0/1): the sample's class is a known class.
    labeled_mask : array_like
        ``(N,)`` boolean (or 0/1): the sample's label may be used; must be a subset of
        ``known_mask``.
    k : int
        Neighbours, ``1 <= k < N``.
    density_percentile : float
        In ``[0, 100]``: points whose relative density reaches this percentile are the
        high-density set.
    dense_method : {0, 1, 2, 3}
        Density: 0 mean, 1 median (default, used by every search), 2 normalised,
        3 exponential.
    co_mode : {1, 2, 3}
        Cutoff: 1 ``co_manual``, 2 mean k-NN distance (default), 3 per-point relative.
    co_manual : float, optional
        The cutoff for ``co_mode=1``.
    assign_model : {1, 2, 3}
        Sparse-point assignment: 1 nearest cluster mean, 2 weighted vote of the
        ``voting_k`` nearest core points, 3 mean distance to each cluster's 3 nearest
        members (default).
    voting_k : int
        Voters for ``assign_model=2``.
    precomputed_knn : tuple, optional
        ``(neighbors, distances)`` of the exact Euclidean graph (self excluded, rows in
        (distance, index) order) with at least ``k`` columns, e.g. a ``knncache.KnnGraph``
        computed at a larger ``k``; densities and the cutoff use only the first ``k``
        columns. Computed with ``knncache.compute_knn`` when omitted. Without
        ``pairwise_distances``, all ``M >= k`` columns of a float32 graph (knncache's) also
        serve as candidates: within-H neighbours, the small-cluster merge and assignment
        strategies 2 and 3 are answered exactly from them wherever they decide, and from
        distance blocks elsewhere, so a wider graph (e.g. ``M = 64``) makes large N cheap
        without changing any result.
    pairwise_distances : numpy.ndarray, optional
        ``(N, N)`` matrix from :func:`ssddbc._distances.pairwise_euclidean` of this ``X``
        (a read-only memmap is fine). Only speed changes.
    random_state : int, optional
        Accepted for compatibility; the algorithm uses no randomness.
    train_size : int, optional
        Accepted for compatibility (the original only used it for logging).
    eval_dense : bool
        The original's high-density-only evaluation mode; not supported here (evaluate the
        returned ``core_clusters`` with :mod:`ssddbc.evaluation` instead). Must be False.
    eval_version : str
        Only meaningful with ``eval_dense``; accepted and ignored.
    fast_mode : bool
        As in the original: skip the unknown-cluster ids and the category labels (return
        ``[]`` and ``{}``); labels are unaffected.
    silent, detail_dense : bool
        Accepted for compatibility; nothing is printed or logged.
    label_guide : bool
        Accepted for compatibility; ignored, as in the original's latest version.

    Returns
    -------
    labels : numpy.ndarray
        int64 ``(N,)`` cluster id of every sample, ``0..C-1``.
    n_clusters : int
        ``C``.
    unknown_clusters : list of int
        Ids of the clusters with no labelled member (sorted).
    clusters : list of set of int
        Members of each cluster id. As in the original, these are the core members (the
        points assigned in step 5 appear only in ``labels``); a separate copy of
        ``core_clusters``.
    cluster_category_labels : dict
        Cluster id -> category label, for the clusters that carry one under the label rule
        (evaluated on ``clusters``).
    neighbors : numpy.ndarray
        int64 ``(N, k)`` neighbour indices used.
    core_clusters : list of set of int
        Members of each core cluster (high-density points after the small-cluster merge).
    densities : numpy.ndarray
        float64 ``(N,)`` absolute densities.

    Raises
    ------
    InvalidInputError
        Any bad input, before any work: mismatched lengths, masks that are neither boolean
        nor 0/1, labelled samples outside the known classes, ``k`` out of range, percentile
        outside ``[0, 100]``, NaN/inf features, unknown ``dense_method`` / ``co_mode`` /
        ``assign_model``, a malformed ``precomputed_knn`` or ``pairwise_distances``.
    """
    inputs = _validate_inputs(
        X,
        targets,
        known_mask,
        labeled_mask,
        k,
        [density_percentile],
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
        precomputed_knn=precomputed_knn,
        pairwise_distances=pairwise_distances,
        eval_dense=eval_dense,
        fast_mode=fast_mode,
    )
    return _run_percentile(inputs, _prepare_k(inputs), inputs.percentiles[0])
