"""GCD evaluation: Hungarian accuracy, All/Old/New splits and the label-only selection score.

Everything public lives in two modules, re-exported here:

* :mod:`ssddbc.evaluation.accuracy`: :func:`cluster_acc`, :func:`split_cluster_acc_v1`,
  :func:`split_cluster_acc_v2`, :func:`split_cluster_acc_original_api`,
  :func:`evaluation_mask`;
* :mod:`ssddbc.evaluation.loss_function` (the original's module name):
  :func:`selection_score` and its parts :func:`l1_loss`, :func:`unlabelled_silhouette`,
  :func:`separation_score`, :func:`local_density_penalty`; for large N a sampled
  silhouette from precomputed rows (:func:`silhouette_sample_indices`,
  :func:`silhouette_rows`).
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
from ssddbc.evaluation.loss_function import (
    SILHOUETTE_SAMPLE_SIZE,
    SILHOUETTE_SEED,
    SILHOUETTE_WEIGHT,
    SelectionScore,
    l1_loss,
    local_density_penalty,
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
    "evaluation_mask",
    "l1_loss",
    "local_density_penalty",
    "selection_score",
    "separation_score",
    "silhouette_rows",
    "silhouette_sample_indices",
    "split_cluster_acc_original_api",
    "split_cluster_acc_v1",
    "split_cluster_acc_v2",
    "unlabelled_silhouette",
]
