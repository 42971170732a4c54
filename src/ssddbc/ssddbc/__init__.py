"""The SS-DDBC algorithm: ``adaptive_density_clustering`` and its steps.

``adaptive_density_clustering`` keeps the original research code's name, arguments and return
values. The step functions (:func:`grow_core_clusters`, :func:`merge_isolated_core_clusters`,
:func:`assign_sparse_points`) are vectorised rewrites with their own signatures, hence their
own names.
"""

from __future__ import annotations

from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
from ssddbc.ssddbc.assignment import assign_sparse_points
from ssddbc.ssddbc.clustering import cluster_label_rule, grow_core_clusters
from ssddbc.ssddbc.merging import merge_isolated_core_clusters

__all__ = [
    "adaptive_density_clustering",
    "assign_sparse_points",
    "cluster_label_rule",
    "grow_core_clusters",
    "merge_isolated_core_clusters",
]
