"""GCD evaluation: Hungarian accuracy, All/Old/New splits and the label-only selection score.

Everything public lives in two modules, re-exported here:

* :mod:`ssddbc.evaluation.accuracy`: :func:`cluster_acc`, :func:`split_cluster_acc_v1`,
  :func:`split_cluster_acc_v2`, :func:`split_cluster_acc_original_api`,
  :func:`evaluation_mask`;
* :mod:`ssddbc.evaluation.loss_function` (the original's module name):
  :func:`selection_score` and its parts :func:`l1_loss`, :func:`unlabelled_silhouette`,
  :func:`separation_score`, :func:`local_density_penalty`; for large N a sampled
  silhouette from precomputed rows (:func:`silhouette_sample_indices`,
  :func:`silhouette_rows`); the original's :func:`compute_total_loss`,
  :func:`compute_supervised_loss_l1` and :func:`compute_l2_loss`;
* :mod:`ssddbc.evaluation.cluster_quality` (the original's cluster-quality components) and
  :mod:`ssddbc.evaluation.l2_strategies` (the L2 component registry).
"""

from __future__ import annotations

from ssddbc.evaluation.accuracy import (
    EvaluationMode,
    cluster_acc,
    evaluation_mask,
    split_cluster_acc_original_api,
    split_cluster_acc_v1,
    split_cluster_acc_v2,
)
from ssddbc.evaluation.cluster_quality import (
    compute_cluster_quality_score,
    compute_cluster_separation,
    compute_local_density_penalty,
    compute_penalty_component,
    compute_separation_component,
)
from ssddbc.evaluation.loss_function import (
    SILHOUETTE_SAMPLE_SIZE,
    SILHOUETTE_SEED,
    SILHOUETTE_WEIGHT,
    SelectionScore,
    compute_l2_loss,
    compute_supervised_loss_l1,
    compute_total_loss,
    l1_loss,
    local_density_penalty,
    sampled_silhouette,
    selection_score,
    separation_score,
    silhouette_rows,
    silhouette_sample_indices,
    unlabelled_silhouette,
)

__all__ = [
    "SILHOUETTE_SAMPLE_SIZE",
    "SILHOUETTE_SEED",
    "SILHOUETTE_WEIGHT",
    "EvaluationMode",
    "SelectionScore",
    "cluster_acc",
    "compute_cluster_quality_score",
    "compute_cluster_separation",
    "compute_l2_loss",
    "compute_local_density_penalty",
    "compute_penalty_component",
    "compute_separation_component",
    "compute_supervised_loss_l1",
    "compute_total_loss",
    "evaluation_mask",
    "l1_loss",
    "local_density_penalty",
    "sampled_silhouette",
    "selection_score",
    "separation_score",
    "silhouette_rows",
    "silhouette_sample_indices",
    "split_cluster_acc_original_api",
    "split_cluster_acc_v1",
    "split_cluster_acc_v2",
    "unlabelled_silhouette",
]
