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

from ssddbc._distances import euclidean_block
from ssddbc._errors import InvalidInputError
from ssddbc._metric import (
    check_metric,
    cosine_candidate_graph,
    cosine_to_euclidean,
    l2_normalize,
)
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
    warn_labeled_outside_known,
)
from ssddbc.density.density_estimation import (
    DENSITY_METHODS,
    compute_density,
    compute_relative_density,
    identify_high_density_points,
)
from ssddbc.ssddbc._result import ClusteringResult
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.assignment import ASSIGN_MODELS, assign_sparse_points
from ssddbc.ssddbc.clustering import category_labels_of, grow_from_table, neighbor_table
from ssddbc.ssddbc.co_calculation import CO_MODES, compute_co_value
from ssddbc.ssddbc.merging import merge_isolated_core_clusters
from ssddbc.ssddbc.unknown import identify_unknown_clusters_from_predictions

__all__ = ["adaptive_density_clustering"]


def _category_labels(
    clusters: list[set[int]], labeled_mask: npt.NDArray[np.bool_], targets: npt.NDArray[np.int64]
) -> dict[int, int]:
    labels = category_labels_of(clusters, labeled_mask, targets)
    return {cid: label for cid, label in labels.items() if label is not None}


def _evaluate_dense(
    core_labels: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int64],
    known: npt.NDArray[np.bool_],
    eval_version: str,
    neighbors: npt.NDArray[np.int64],
    densities: npt.NDArray[np.float64],
) -> tuple[Any, ...]:
    """The original's ``eval_dense`` return: core labels scored over the clustered points."""
    from ssddbc.ssddbc.analysis import evaluate_high_density_clustering

    all_acc, old_acc, new_acc, n_core, _ = evaluate_high_density_clustering(
        core_labels, targets, known, eval_version
    )
    return core_labels, n_core, [], all_acc, old_acc, new_acc, None, neighbors, None, densities


def _check_cosine_pairwise(pairwise: npt.NDArray[Any], u: npt.NDArray[np.float32]) -> None:
    """Spot-check a few entries: the matrix must hold distances between the unit rows."""
    n = u.shape[0]
    rows = np.arange(min(n, 8), dtype=np.int64)
    cols = (rows * 7 + 1) % n
    expected = euclidean_block(u[rows], u[cols]).diagonal()
    got = np.asarray(pairwise[rows, cols], dtype=np.float64)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-6):
        raise InvalidInputError(
            "pairwise_distances",
            "does not hold the Euclidean distances of the L2-normalised features; with "
            "metric='cosine' pass pairwise_euclidean(ssddbc._metric.l2_normalize(X))",
        )


@dataclass(frozen=True)
class _Inputs:
    """Validated inputs of one feature matrix and one ``k`` (all percentiles).

    Under ``metric="cosine"``, ``x`` holds the L2-normalised rows ``U`` and ``x_raw`` the
    features as given (what knncache searches), and ``knn`` (when given) carries the graph's
    distances already converted to Euclidean distances of unit vectors.
    """

    x: npt.NDArray[Any]
    y: npt.NDArray[np.int64]
    known: npt.NDArray[np.bool_]
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
    eval_dense: bool
    eval_version: str
    metric: str
    x_raw: npt.NDArray[Any] | None


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
    eval_version: str,
    fast_mode: bool,
    metric: str,
    stacklevel: int = 4,
) -> _Inputs:
    """Every check of :func:`adaptive_density_clustering`, in its order, before any work.

    Warns (:class:`~ssddbc._errors.SsddbcWarning`) once if labelled samples lie outside the
    known classes, ``stacklevel`` frames up from the warning's call (4: the caller of the
    public function calling this one).
    """
    metric = check_metric(metric)
    x = as_features(X, "X")
    n = x.shape[0]
    y = as_targets(targets, n, "targets")
    known = as_mask(known_mask, "known_mask", n)
    labeled = as_mask(labeled_mask, "labeled_mask", n)
    k = check_int(k, "k", 1, n - 1)
    checked = [check_percentile(p, "density_percentile") for p in percentiles]
    dense_method = check_choice(dense_method, "dense_method", DENSITY_METHODS)
    co_mode = check_choice(co_mode, "co_mode", CO_MODES)
    assign_model = check_choice(assign_model, "assign_model", ASSIGN_MODELS)
    voting_k = check_int(voting_k, "voting_k", 1)
    if co_mode == 1:
        compute_co_value(1, None, None, None, k, co_manual)  # validates co_manual
    if eval_dense and eval_version not in ("v1", "v2"):
        raise InvalidInputError("eval_version", f"expected 'v1' or 'v2', got {eval_version!r}")
    knn = None if precomputed_knn is None else as_precomputed_knn(precomputed_knn, n, k)
    pairwise = None if pairwise_distances is None else as_pairwise(pairwise_distances, n)
    warn_labeled_outside_known(known, labeled, stacklevel=stacklevel)
    x_raw = None
    if metric == "cosine":
        # Cosine is Euclidean on the unit rows (ssddbc._metric): the graph's 1 - cos become
        # sqrt(2 (1 - cos)), and every later distance is measured between rows of U.
        x_raw, x = x, l2_normalize(x, "X")
        if knn is not None:
            knn = (knn[0], cosine_to_euclidean(knn[1]))
        if pairwise is not None:
            _check_cosine_pairwise(pairwise, x)
    return _Inputs(
        x=x,
        y=y,
        known=known,
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
        eval_dense=eval_dense,
        eval_version=eval_version,
        metric=metric,
        x_raw=x_raw,
    )


def _prepare_k(inputs: _Inputs, candidates_with_matrix: bool = False) -> _PerK:
    """Densities, relative densities, the cutoff and the distance source of one ``k``.

    With ``candidates_with_matrix``, a float32 neighbour graph (``precomputed_knn`` or the
    one computed here; under cosine its provably exact columns) serves as candidates even
    when the matrix is given (the matrix then answers only the rows they leave undecided):
    same results, see :mod:`ssddbc.ssddbc._candidates`.
    """
    x, k, n = inputs.x, inputs.k, inputs.x.shape[0]
    knn = inputs.knn
    cosine_graph: Any = None
    if inputs.metric == "cosine" and knn is None:
        from knncache import compute_knn  # the same search a knncache store runs

        cosine_graph = compute_knn(inputs.x_raw, k, "cosine")
        nb, dist = as_precomputed_knn(cosine_graph, n, k)
        knn = (nb, cosine_to_euclidean(dist))
    # ---- 1. densities, relative densities ------------------------------------------------
    densities, knn_dist, neighbors = compute_density(
        x if knn is None else None, k, inputs.dense_method, knn
    )
    relative = compute_relative_density(densities, neighbors, k)
    # ---- 2. cutoff ------------------------------------------------------------------------
    co = compute_co_value(inputs.co_mode, knn_dist, densities, neighbors, k, inputs.co_manual)
    # ---- distances -----------------------------------------------------------------------
    candidates = None
    if inputs.pairwise is None or candidates_with_matrix:
        # The neighbour graph (all its columns) decides most distance questions exactly;
        # blocks are computed (or read from the matrix) only for the rows it cannot decide.
        if inputs.metric == "cosine":
            if cosine_graph is None:
                cosine_graph = as_candidate_graph(inputs.raw_knn, n, k)
            if cosine_graph is not None:
                candidates = cosine_candidate_graph(cosine_graph[0], cosine_graph[1], x)
        elif inputs.knn is None:
            candidates = (neighbors, knn_dist.astype(np.float32))
        else:
            candidates = as_candidate_graph(inputs.raw_knn, n, k)
    source = DistanceSource(x, inputs.pairwise, candidates)
    return _PerK(densities, neighbors, relative, co, source)


def _run_percentile(
    inputs: _Inputs, per_k: _PerK, percentile: float
) -> ClusteringResult | tuple[Any, ...]:
    """Doc sections 1 (the high-density set) and 3-6 for one percentile."""
    x, y, labeled, source = inputs.x, inputs.y, inputs.labeled, per_k.source
    densities, neighbors = per_k.densities, per_k.neighbors
    high_idx = np.flatnonzero(identify_high_density_points(per_k.relative, percentile))

    # ---- 3. core clusters ----------------------------------------------------------------
    table = neighbor_table(source, high_idx, inputs.k, per_k.co)
    core_labels = grow_from_table(high_idx, table, labeled, y, densities)

    # ---- 4. small-cluster merge ----------------------------------------------------------
    core_labels = merge_isolated_core_clusters(core_labels, x, y, labeled, source)
    n_core = int(core_labels.max()) + 1
    order = np.argsort(core_labels, kind="stable")
    bounds = np.searchsorted(core_labels[order], np.arange(-1, n_core + 1))
    core_clusters = [set(order[bounds[c + 1] : bounds[c + 2]].tolist()) for c in range(n_core)]
    if inputs.eval_dense:
        return _evaluate_dense(
            core_labels, y, inputs.known, inputs.eval_version, neighbors, densities
        )

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
    return ClusteringResult(
        labels, n_clusters, unknown, clusters, category, neighbors, core_clusters, densities
    )


def adaptive_density_clustering(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int = 10,
    density_percentile: float = 75,
    random_state: int | None = 0,
    train_size: int | None = None,
    co_mode: int = 2,
    co_manual: float | None = None,
    eval_dense: bool = False,
    eval_version: str = "v1",
    fast_mode: bool = False,
    dense_method: int = 1,
    assign_model: int = 3,
    voting_k: int = 5,
    detail_dense: bool = False,
    label_guide: bool = False,
    *,
    precomputed_knn: Any = None,
    pairwise_distances: Any = None,
    silent: bool = True,
    metric: str = "euclidean",
) -> ClusteringResult | tuple[Any, ...]:
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
        ``(N,)`` boolean (or 0/1): the sample's label may be used. Labelled samples outside
        ``known_mask`` are accepted with an :class:`~ssddbc._errors.SsddbcWarning` and used
        like any labelled sample, as the original used them.
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
        ``(neighbors, distances)`` of the exact Euclidean graph (the cosine graph under
        ``metric="cosine"``; self excluded, rows in (distance, index) order) with at least
        ``k`` columns, e.g. a ``knncache.KnnGraph`` computed at a larger ``k``; densities
        and the cutoff use only the first ``k`` columns. Computed with
        ``knncache.compute_knn`` when omitted. Without
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
        The original's high-density-only evaluation: stop after the small-cluster merge,
        skip the assignment, and return the core labels with their All/Old/New accuracy
        over the clustered (high-density) points (see Returns).
    eval_version : {"v1", "v2"}
        Accuracy version of the ``eval_dense`` evaluation
        (:func:`ssddbc.evaluation.split_cluster_acc_v1` / ``_v2``); otherwise unused.
    fast_mode : bool
        As in the original: skip the unknown-cluster ids and the category labels (return
        ``[]`` and ``{}``); labels are unaffected.
    silent, detail_dense : bool
        Accepted for compatibility; nothing is printed or logged.
    label_guide : bool
        Accepted for compatibility; ignored, as in the original's latest version.
    metric : {"euclidean", "cosine"}
        ``"euclidean"`` (default) is the published algorithm. ``"cosine"`` runs it on the
        L2-normalised rows ``U = ssddbc._metric.l2_normalize(X)`` in Euclidean units: the
        neighbour graph is knncache's cosine graph of ``X`` (computed with
        ``knncache.compute_knn(X, k, "cosine")`` when ``precomputed_knn`` is omitted; pass a
        knncache cosine graph, distances ``1 - cos``, otherwise), its distances ``c`` enter
        the densities and the cutoff as ``sqrt(2 c)`` (the Euclidean distance of unit
        vectors), and every other distance is Euclidean between rows of ``U``
        (``pairwise_distances`` must then be ``pairwise_euclidean(U)``). Without a matrix,
        the columns of the cosine graph that provably give the exact order in those
        distances serve as candidates, as a Euclidean graph's do. See :mod:`ssddbc._metric`.

    The parameters up to ``label_guide`` are positional in the original's order, with its
    defaults except ``dense_method=1`` and ``assign_model=3``: the original's defaults (0 and
    2) made it raise, since it implemented only these two; here every method of the
    document is implemented. ``precomputed_knn``, ``pairwise_distances`` and ``silent`` are
    this package's additions, keyword-only.

    Returns
    -------
    With ``eval_dense=True``, the original's 10-tuple ``(core_labels, n_clusters, [],
    all_acc, old_acc, new_acc, None, neighbors, None, densities)``: ``core_labels`` is
    ``-1`` outside the core clusters, ``n_clusters`` and the accuracies are over the
    clustered points only (``0, 0.0, 0.0, 0.0`` when there is none). Otherwise:

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
        nor 0/1, ``k`` out of range, an ``eval_version`` other than "v1"/"v2", percentile
        outside ``[0, 100]``, NaN/inf features, unknown ``dense_method`` / ``co_mode`` /
        ``assign_model``, a malformed ``precomputed_knn`` or ``pairwise_distances``, an
        unknown ``metric``; under cosine also an all-zero feature row, a graph with a
        distance above 2 (not a cosine graph) or a matrix that is not the normalised
        features' distances.
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
        eval_version=eval_version,
        fast_mode=fast_mode,
        metric=metric,
    )
    return _run_percentile(inputs, _prepare_k(inputs), inputs.percentiles[0])
