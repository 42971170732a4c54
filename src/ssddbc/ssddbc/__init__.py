"""The SS-DDBC algorithm: ``adaptive_density_clustering`` and its steps.

``adaptive_density_clustering`` keeps the original research code's name, arguments and return
values. The step functions (:func:`grow_core_clusters`, :func:`merge_isolated_core_clusters`,
:func:`assign_sparse_points`) are vectorised rewrites with their own signatures, hence their
own names. The original's exports of this package are here too, with its signatures:
:func:`build_clusters_ssddbc`, :func:`assign_sparse_points_density_based`,
:func:`merge_clusters_by_label_consistency` (and, in :mod:`.merging`,
``merge_isolated_clusters``), :func:`ssddbc_conflict_resolution`,
:func:`compute_cluster_cohesion`, :func:`analyze_ssddbc_clustering_result` and
:func:`analyze_cluster_composition`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
from ssddbc.ssddbc.assignment import assign_sparse_points, assign_sparse_points_density_based
from ssddbc.ssddbc.clustering import build_clusters_ssddbc, cluster_label_rule, grow_core_clusters
from ssddbc.ssddbc.merging import (
    merge_clusters_by_label_consistency,
    merge_isolated_core_clusters,
)

__all__ = [
    "adaptive_density_clustering",
    "analyze_cluster_composition",
    "analyze_ssddbc_clustering_result",
    "assign_sparse_points",
    "assign_sparse_points_density_based",
    "build_clusters_ssddbc",
    "cluster_label_rule",
    "compute_cluster_cohesion",
    "grow_core_clusters",
    "merge_clusters_by_label_consistency",
    "merge_isolated_core_clusters",
    "ssddbc_conflict_resolution",
]

#: The original's helpers of this package, defined in ssddbc.compat (imported on first use).
_ORIGINAL_NAMES: dict[str, str] = {
    "analyze_cluster_composition": "ssddbc.compat.analysis",
    "analyze_ssddbc_clustering_result": "ssddbc.compat.analysis",
    "compute_cluster_cohesion": "ssddbc.compat.conflict",
    "ssddbc_conflict_resolution": "ssddbc.compat.conflict",
}


def __getattr__(name: str) -> Any:
    module = _ORIGINAL_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
