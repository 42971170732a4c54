"""The original's ``evaluation.cluster_quality``: see :mod:`ssddbc.compat.cluster_quality`."""

from __future__ import annotations

from ssddbc.compat.cluster_quality import (
    CLUSTER_DISTANCE_METHODS,
    compute_cluster_quality_score,
    compute_cluster_separation,
    compute_local_density_penalty,
    compute_penalty_component,
    compute_separation_component,
)

__all__ = [
    "CLUSTER_DISTANCE_METHODS",
    "compute_cluster_quality_score",
    "compute_cluster_separation",
    "compute_local_density_penalty",
    "compute_penalty_component",
    "compute_separation_component",
]
