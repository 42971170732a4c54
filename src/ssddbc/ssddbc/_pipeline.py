"""The SS-DDBC pipeline on validated inputs, one ``k`` at a time (doc sections 1-6).

:func:`validate_inputs` checks everything before any work, :func:`prepare_k` computes what
every density percentile of one ``k`` shares (densities, cutoff, distance source) and
:func:`run_percentile` runs one percentile to a :class:`ClusteringResult`. :func:`cluster`
chains them for one configuration: the design's single entry point, which
``adaptive_density_clustering`` and :mod:`._per_k` front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from knncache import compute_knn
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
    check_int,
    check_percentile,
    warn_labeled_outside_known,
)
from ssddbc.density.density_estimation import (
    compute_density,
    compute_relative_density,
    identify_high_density_points,
)
from ssddbc.ssddbc._params import AlgorithmParams
from ssddbc.ssddbc._result import ClusteringResult
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.analysis import evaluate_high_density_clustering
from ssddbc.ssddbc.assignment import assign_sparse_points
from ssddbc.ssddbc.clustering import category_labels_of, grow_from_table, neighbor_table
from ssddbc.ssddbc.co_calculation import compute_co_value
from ssddbc.ssddbc.merging import merge_isolated_core_clusters
from ssddbc.ssddbc.unknown import identify_unknown_clusters_from_predictions

DenseEvaluation = tuple[Any, ...]
"""The original's ``eval_dense`` 10-tuple (see ``adaptive_density_clustering``)."""


@dataclass(frozen=True)
class Inputs:
    """Validated inputs of one feature matrix and one ``k`` (all percentiles).

    Under ``metric="cosine"``, ``x`` holds the L2-normalised rows ``U`` and ``x_raw`` the
    features as given (what knncache searches), and ``knn`` (when given) carries the graph's
    distances already converted to Euclidean distances of unit vectors. ``eval_version`` is
    None unless the original's ``eval_dense`` evaluation was asked for.
    """

    x: npt.NDArray[Any]
    y: npt.NDArray[np.int64]
    known: npt.NDArray[np.bool_]
    labeled: npt.NDArray[np.bool_]
    k: int
    percentiles: list[float]
    params: AlgorithmParams
    knn: tuple[npt.NDArray[np.int64], npt.NDArray[Any]] | None
    raw_knn: Any
    pairwise: npt.NDArray[Any] | None
    fast_mode: bool
    eval_version: str | None
    metric: str
    x_raw: npt.NDArray[Any] | None


@dataclass(frozen=True)
class PerK:
    """What every percentile of one ``k`` shares (doc sections 1-2 and the distances)."""

    densities: npt.NDArray[np.float64]
    neighbors: npt.NDArray[np.int64]
    relative: npt.NDArray[np.float64]
    co: float | npt.NDArray[np.float64]
    source: DistanceSource


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


def validate_inputs(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    percentiles: Sequence[float],
    params: AlgorithmParams,
    *,
    precomputed_knn: Any = None,
    pairwise_distances: Any = None,
    metric: str = "euclidean",
    fast_mode: bool = False,
    eval_version: str | None = None,
    stacklevel: int = 4,
) -> Inputs:
    """Every check of ``adaptive_density_clustering``, in its order, before any work.

    ``params`` was validated when it was created. Warns
    (:class:`~ssddbc._errors.SsddbcWarning`) once if labelled samples lie outside the known
    classes, ``stacklevel`` frames up from the warning's call (4: the caller of the function
    calling this one).
    """
    metric = check_metric(metric)
    x = as_features(X, "X")
    n = x.shape[0]
    y = as_targets(targets, n, "targets")
    known = as_mask(known_mask, "known_mask", n)
    labeled = as_mask(labeled_mask, "labeled_mask", n)
    k = check_int(k, "k", 1, n - 1)
    checked = [check_percentile(p, "density_percentile") for p in percentiles]
    if eval_version is not None and eval_version not in ("v1", "v2"):
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
    return Inputs(
        x=x,
        y=y,
        known=known,
        labeled=labeled,
        k=k,
        percentiles=checked,
        params=params,
        knn=knn,
        raw_knn=precomputed_knn,
        pairwise=pairwise,
        fast_mode=fast_mode,
        eval_version=eval_version,
        metric=metric,
        x_raw=x_raw,
    )


def prepare_k(inputs: Inputs, candidates_with_matrix: bool = False) -> PerK:
    """Densities, relative densities, the cutoff and the distance source of one ``k``.

    With ``candidates_with_matrix``, a float32 neighbour graph (``precomputed_knn`` or the
    one computed here; under cosine its provably exact columns) serves as candidates even
    when the matrix is given (the matrix then answers only the rows they leave undecided):
    same results, see :mod:`ssddbc.ssddbc._candidates`.
    """
    x, k, n, params = inputs.x, inputs.k, inputs.x.shape[0], inputs.params
    knn = inputs.knn
    cosine_graph: Any = None
    if inputs.metric == "cosine" and knn is None:
        cosine_graph = compute_knn(inputs.x_raw, k, "cosine")
        nb, dist = as_precomputed_knn(cosine_graph, n, k)
        knn = (nb, cosine_to_euclidean(dist))
    # ---- 1. densities, relative densities ------------------------------------------------
    densities, knn_dist, neighbors = compute_density(
        x if knn is None else None, k, params.dense_method, knn
    )
    relative = compute_relative_density(densities, neighbors, k)
    # ---- 2. cutoff ------------------------------------------------------------------------
    co = compute_co_value(params.co_mode, knn_dist, densities, neighbors, k, params.co_manual)
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
    return PerK(densities, neighbors, relative, co, source)


def _core_labels(inputs: Inputs, per_k: PerK, percentile: float) -> npt.NDArray[np.int64]:
    """Doc sections 1 (the high-density set), 3 and 4: the core labels, -1 elsewhere."""
    high_idx = np.flatnonzero(identify_high_density_points(per_k.relative, percentile))
    # ---- 3. core clusters ----------------------------------------------------------------
    table = neighbor_table(per_k.source, high_idx, inputs.k, per_k.co)
    core_labels = grow_from_table(high_idx, table, inputs.labeled, inputs.y, per_k.densities)
    # ---- 4. small-cluster merge ----------------------------------------------------------
    return merge_isolated_core_clusters(
        core_labels, inputs.x, inputs.y, inputs.labeled, per_k.source
    )


def run_percentile(inputs: Inputs, per_k: PerK, percentile: float) -> ClusteringResult:
    """Doc sections 1 and 3-6 for one percentile."""
    labeled, y = inputs.labeled, inputs.y
    core_labels = _core_labels(inputs, per_k, percentile)
    n_core = int(core_labels.max()) + 1
    order = np.argsort(core_labels, kind="stable")
    bounds = np.searchsorted(core_labels[order], np.arange(-1, n_core + 1))
    core_clusters = [set(order[bounds[c + 1] : bounds[c + 2]].tolist()) for c in range(n_core)]
    # ---- 5. assignment -------------------------------------------------------------------
    params = inputs.params
    labels = assign_sparse_points(core_labels, per_k.source, params.assign_model, params.voting_k)
    # ---- 6. unknown clusters and return values -------------------------------------------
    clusters = [set(c) for c in core_clusters]
    if inputs.fast_mode:
        unknown: list[int] = []
        category: dict[int, int] = {}
    else:
        unknown = identify_unknown_clusters_from_predictions(labels, labeled)
        named = category_labels_of(clusters, labeled, y)
        category = {cid: label for cid, label in named.items() if label is not None}
    n_clusters = int(np.unique(labels).size)
    return ClusteringResult(
        labels,
        n_clusters,
        unknown,
        clusters,
        category,
        per_k.neighbors,
        core_clusters,
        per_k.densities,
    )


def evaluate_dense(inputs: Inputs, per_k: PerK, percentile: float) -> DenseEvaluation:
    """The original's ``eval_dense`` return: core labels scored over the clustered points."""
    core_labels = _core_labels(inputs, per_k, percentile)
    all_acc, old_acc, new_acc, n_core, _ = evaluate_high_density_clustering(
        core_labels, inputs.y, inputs.known, inputs.eval_version or "v1"
    )
    return (
        core_labels,
        n_core,
        [],
        all_acc,
        old_acc,
        new_acc,
        None,
        per_k.neighbors,
        None,
        per_k.densities,
    )


def run_or_evaluate(
    inputs: Inputs, per_k: PerK, percentile: float
) -> ClusteringResult | DenseEvaluation:
    """:func:`evaluate_dense` when ``inputs`` asks for it, else :func:`run_percentile`."""
    if inputs.eval_version is not None:
        return evaluate_dense(inputs, per_k, percentile)
    return run_percentile(inputs, per_k, percentile)


def cluster(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    density_percentile: float,
    params: AlgorithmParams,
    *,
    precomputed_knn: Any = None,
    pairwise_distances: Any = None,
    metric: str = "euclidean",
    fast_mode: bool = False,
    stacklevel: int = 1,
) -> ClusteringResult:
    """Run SS-DDBC with one configuration (arguments as ``adaptive_density_clustering``).

    ``stacklevel`` says which frame a warning about the masks names: 1 the caller of this
    function, 2 its caller, and so on.
    """
    inputs = validate_inputs(
        X,
        targets,
        known_mask,
        labeled_mask,
        k,
        [density_percentile],
        params,
        precomputed_knn=precomputed_knn,
        pairwise_distances=pairwise_distances,
        metric=metric,
        fast_mode=fast_mode,
        stacklevel=stacklevel + 3,
    )
    return run_percentile(inputs, prepare_k(inputs), inputs.percentiles[0])
