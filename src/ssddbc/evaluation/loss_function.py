"""The original's ``ssddbc.evaluation.loss_function``: the selection score and its total loss."""

from __future__ import annotations

from ssddbc.compat.loss import compute_l2_loss, compute_supervised_loss_l1, compute_total_loss
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

__all__ = [
    "SILHOUETTE_SAMPLE_SIZE",
    "SILHOUETTE_SEED",
    "SILHOUETTE_WEIGHT",
    "SelectionScore",
    "compute_l2_loss",
    "compute_supervised_loss_l1",
    "compute_total_loss",
    "l1_loss",
    "local_density_penalty",
    "sampled_silhouette",
    "selection_score",
    "separation_score",
    "silhouette_rows",
    "silhouette_sample_indices",
    "unlabelled_silhouette",
]
