"""All density percentiles of one ``k`` on structures shared across them.

Everything before the high-density set depends on ``k`` only (doc sections 1-2): the
validation, the densities, the cutoff, the candidate graph and the distance source.
:func:`cluster_percentiles` computes those once and runs each percentile's growth, merge and
assignment on them, giving for every percentile exactly what
:func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering` returns for it. The
high-density sets are nested and the neighbour graph's rows are in (distance, index) order,
so one graph answers the within-``H`` neighbours of every percentile; unlike a single call,
a float32 graph therefore serves as candidates even when the pairwise matrix is given, which
then answers only the rows the graph leaves undecided (identical results, see
:mod:`ssddbc.ssddbc._candidates`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc.ssddbc._params import DEFAULTS, SPECS, AlgorithmParams
from ssddbc.ssddbc._pipeline import (
    DenseEvaluation,
    Inputs,
    PerK,
    prepare_k,
    run_or_evaluate,
    validate_inputs,
)
from ssddbc.ssddbc._result import ClusteringResult

__all__ = ["cluster_percentiles", "iter_cluster_percentiles"]


def iter_cluster_percentiles(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    percentiles: Sequence[float],
    *,
    dense_method: int = DEFAULTS.dense_method,
    co_mode: int = DEFAULTS.co_mode,
    co_manual: float | None = DEFAULTS.co_manual,
    assign_model: int = DEFAULTS.assign_model,
    voting_k: int = DEFAULTS.voting_k,
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
    metric: str = SPECS["metric"].default,
    graph_candidates: bool = True,
) -> Iterator[ClusteringResult | DenseEvaluation]:
    """:func:`cluster_percentiles`, one result at a time.

    Validates every input and computes the per-k structures when called (so bad input
    raises here, before any percentile runs), then yields one result per percentile, in
    order; a caller that scores and drops each result holds one partition at a time.
    """
    return _iter(
        X,
        targets,
        known_mask,
        labeled_mask,
        k,
        percentiles,
        AlgorithmParams(
            dense_method=dense_method,
            co_mode=co_mode,
            co_manual=co_manual,
            assign_model=assign_model,
            voting_k=voting_k,
        ),
        precomputed_knn=precomputed_knn,
        pairwise_distances=pairwise_distances,
        eval_version=eval_version if eval_dense else None,
        fast_mode=fast_mode,
        metric=metric,
        graph_candidates=graph_candidates,
    )


def _iter(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    percentiles: Sequence[float],
    params: AlgorithmParams,
    *,
    graph_candidates: bool,
    **options: Any,
) -> Iterator[ClusteringResult | DenseEvaluation]:
    """Both public functions' work; a warning names their caller (5 frames up from it).

    ``options`` are the keywords of :func:`~ssddbc.ssddbc._pipeline.validate_inputs`.
    """
    if isinstance(percentiles, (str, bytes)) or np.ndim(percentiles) != 1:
        raise InvalidInputError(
            "percentiles", f"expected a sequence of numbers, got {percentiles!r}"
        )
    if len(percentiles) == 0:
        raise InvalidInputError("percentiles", "expected at least one percentile, got none")
    inputs = validate_inputs(
        X, targets, known_mask, labeled_mask, k, list(percentiles), params, **options, stacklevel=5
    )
    per_k = prepare_k(inputs, candidates_with_matrix=graph_candidates)
    return _results(inputs, per_k)


def _results(inputs: Inputs, per_k: PerK) -> Iterator[ClusteringResult | DenseEvaluation]:
    for i, p in enumerate(inputs.percentiles):
        if i:  # every result returns the per-k arrays: give each its own copy
            per_k = replace(
                per_k, densities=per_k.densities.copy(), neighbors=per_k.neighbors.copy()
            )
        yield run_or_evaluate(inputs, per_k, p)


def cluster_percentiles(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int,
    percentiles: Sequence[float],
    *,
    dense_method: int = DEFAULTS.dense_method,
    co_mode: int = DEFAULTS.co_mode,
    co_manual: float | None = DEFAULTS.co_manual,
    assign_model: int = DEFAULTS.assign_model,
    voting_k: int = DEFAULTS.voting_k,
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
    metric: str = SPECS["metric"].default,
    graph_candidates: bool = True,
) -> list[ClusteringResult | DenseEvaluation]:
    """Run SS-DDBC at one ``k`` for several density percentiles, sharing the per-k work.

    Parameters
    ----------
    X, targets, known_mask, labeled_mask, k
        As in :func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering`.
    percentiles : sequence of float
        The density percentiles, each in ``[0, 100]``; at least one. Any order, repeats
        allowed.
    dense_method, co_mode, co_manual, assign_model, voting_k, precomputed_knn, \
pairwise_distances, random_state, train_size, eval_dense, eval_version, fast_mode, silent, \
detail_dense, label_guide, metric
        As in :func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering`, the
        same for every percentile.
    graph_candidates : bool
        Use a float32 neighbour graph (``precomputed_knn``, all its columns, or the one
        computed here) as exact candidates even with ``pairwise_distances`` (default).
        Only speed changes; False reads every distance from the matrix, as a single call
        given the matrix does.

    Returns
    -------
    list
        One result per entry of ``percentiles``, in that order, each equal to what
        ``adaptive_density_clustering(..., density_percentile=p, ...)`` returns with the
        same other arguments (own arrays: no two results share one).

    Raises
    ------
    InvalidInputError
        Any input ``adaptive_density_clustering`` rejects, for any of the percentiles, or
        an empty or non-sequence ``percentiles``; all before any work.
    """
    return list(
        _iter(
            X,
            targets,
            known_mask,
            labeled_mask,
            k,
            percentiles,
            AlgorithmParams(
                dense_method=dense_method,
                co_mode=co_mode,
                co_manual=co_manual,
                assign_model=assign_model,
                voting_k=voting_k,
            ),
            precomputed_knn=precomputed_knn,
            pairwise_distances=pairwise_distances,
            eval_version=eval_version if eval_dense else None,
            fast_mode=fast_mode,
            metric=metric,
            graph_candidates=graph_candidates,
        )
    )
