"""``adaptive_density_clustering``: SS-DDBC with the original research code's signature.

A thin front door: it builds an :class:`~ssddbc.ssddbc._params.AlgorithmParams` from its
keywords (defaults from the table) and runs :func:`ssddbc.ssddbc._pipeline.cluster`, or,
with ``eval_dense``, the original's high-density-only evaluation. The steps:

1. k-NN densities (``dense_method``) and relative densities; the high-density set ``H`` is
   every point whose relative density reaches the ``density_percentile``-th percentile.
2. The cutoff ``co`` (``co_mode``).
3. Core clusters grown over ``H`` with the label constraints (:mod:`.clustering`).
4. Clusters of at most 3 members merged into larger ones (:mod:`.merging`).
5. Every other point assigned to a core cluster (:mod:`.assignment`, ``assign_model``).
6. Clusters without a labelled member flagged unknown.
"""

from __future__ import annotations

from typing import Any

from ssddbc.ssddbc._params import DEFAULTS, SPECS, AlgorithmParams
from ssddbc.ssddbc._pipeline import (
    DenseEvaluation,
    cluster,
    evaluate_dense,
    prepare_k,
    validate_inputs,
)
from ssddbc.ssddbc._result import ClusteringResult

__all__ = ["adaptive_density_clustering"]


def adaptive_density_clustering(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int = SPECS["k"].default,
    density_percentile: float = SPECS["density_percentile"].default,
    random_state: int | None = 0,
    train_size: int | None = None,
    co_mode: int = DEFAULTS.co_mode,
    co_manual: float | None = DEFAULTS.co_manual,
    eval_dense: bool = False,
    eval_version: str = "v1",
    fast_mode: bool = False,
    dense_method: int = DEFAULTS.dense_method,
    assign_model: int = DEFAULTS.assign_model,
    voting_k: int = DEFAULTS.voting_k,
    detail_dense: bool = False,
    label_guide: bool = False,
    *,
    precomputed_knn: Any = None,
    pairwise_distances: Any = None,
    silent: bool = True,
    metric: str = SPECS["metric"].default,
) -> ClusteringResult | DenseEvaluation:
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
    params = AlgorithmParams(
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
    )
    if not eval_dense:
        return cluster(
            X,
            targets,
            known_mask,
            labeled_mask,
            k,
            density_percentile,
            params,
            precomputed_knn=precomputed_knn,
            pairwise_distances=pairwise_distances,
            metric=metric,
            fast_mode=fast_mode,
            stacklevel=2,
        )
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
        eval_version=eval_version,
    )
    return evaluate_dense(inputs, prepare_k(inputs), inputs.percentiles[0])
