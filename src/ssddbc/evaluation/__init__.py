"""GCD evaluation: Hungarian accuracy, All/Old/New splits and the label-only selection score.

:mod:`ssddbc.evaluation.accuracy` holds the accuracies (:func:`cluster_acc`, the
``split_cluster_acc_*`` variants, :func:`evaluation_mask`) and
:mod:`ssddbc.evaluation.score` the score the searches maximise (:func:`selection_score` and
its parts). The original's loss API (:func:`compute_total_loss`, the cluster-quality
components, ...) lives in :mod:`ssddbc.compat`; its names are reachable here too, imported on
first use.
"""

from __future__ import annotations

from ssddbc._lazy import lazy_names
from ssddbc.evaluation.accuracy import (
    EvaluationMode,
    cluster_acc,
    evaluation_mask,
    split_cluster_acc_original_api,
    split_cluster_acc_v1,
    split_cluster_acc_v2,
)
from ssddbc.evaluation.score import (
    SILHOUETTE_SAMPLE_SIZE,
    SILHOUETTE_SEED,
    SILHOUETTE_WEIGHT,
    SelectionScore,
    l1_loss,
    local_density_penalty,
    sampled_silhouette,
    selection_score,
    separation_score,
    silhouette_rows,
    silhouette_sample_indices,
    unlabelled_silhouette,
)

#: The original's loss names exported here -> the compatibility module that defines them.
_ORIGINAL_NAMES: dict[str, str] = {
    "compute_cluster_quality_score": "ssddbc.compat.cluster_quality",
    "compute_cluster_separation": "ssddbc.compat.cluster_quality",
    "compute_l2_loss": "ssddbc.compat.loss",
    "compute_local_density_penalty": "ssddbc.compat.cluster_quality",
    "compute_penalty_component": "ssddbc.compat.cluster_quality",
    "compute_separation_component": "ssddbc.compat.cluster_quality",
    "compute_supervised_loss_l1": "ssddbc.compat.loss",
    "compute_total_loss": "ssddbc.compat.loss",
}

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
#: The original's loss names, resolved by __getattr__ below.
__all__ += [
    "compute_cluster_quality_score",
    "compute_cluster_separation",
    "compute_l2_loss",
    "compute_local_density_penalty",
    "compute_penalty_component",
    "compute_separation_component",
    "compute_supervised_loss_l1",
    "compute_total_loss",
]


__getattr__, __dir__ = lazy_names(__name__, _ORIGINAL_NAMES)
