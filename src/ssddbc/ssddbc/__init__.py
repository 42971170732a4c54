"""The SS-DDBC algorithm: ``adaptive_density_clustering`` and its steps.

``adaptive_density_clustering`` keeps the original research code's name, arguments and return
values. The step functions (:func:`grow_core_clusters`, :func:`merge_isolated_core_clusters`,
:func:`assign_sparse_points`) are vectorised rewrites with their own signatures, hence their
own names. The original's exports of this package are here too, with its signatures.

The names are imported on first use, so that the density layer can import this package's
parameter table (:mod:`._params`) without loading the algorithm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssddbc._lazy import lazy_names

if TYPE_CHECKING:
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
    from ssddbc.ssddbc.assignment import (
        assign_sparse_points,
        assign_sparse_points_density_based,
    )
    from ssddbc.ssddbc.clustering import (
        build_clusters_ssddbc,
        cluster_label_rule,
        grow_core_clusters,
    )
    from ssddbc.ssddbc.merging import (
        merge_clusters_by_label_consistency,
        merge_isolated_core_clusters,
    )

#: Each exported name -> the module that defines it.
_HOMES: dict[str, str] = {
    "adaptive_density_clustering": "ssddbc.ssddbc.adaptive_clustering",
    "analyze_cluster_composition": "ssddbc.compat.analysis",
    "analyze_ssddbc_clustering_result": "ssddbc.compat.analysis",
    "assign_sparse_points": "ssddbc.ssddbc.assignment",
    "assign_sparse_points_density_based": "ssddbc.ssddbc.assignment",
    "build_clusters_ssddbc": "ssddbc.ssddbc.clustering",
    "cluster_label_rule": "ssddbc.ssddbc.clustering",
    "compute_cluster_cohesion": "ssddbc.compat.conflict",
    "grow_core_clusters": "ssddbc.ssddbc.clustering",
    "merge_clusters_by_label_consistency": "ssddbc.ssddbc.merging",
    "merge_isolated_core_clusters": "ssddbc.ssddbc.merging",
    "ssddbc_conflict_resolution": "ssddbc.compat.conflict",
}

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


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
