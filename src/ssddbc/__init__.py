"""SS-DDBC: semi-supervised density-based clustering for Generalized Category Discovery.

This package's API leads ``__all__``: the estimators :class:`SSDDBC` and
:class:`SSDDBCSearch`, the search on a feature matrix
(:func:`run_clustering_search_on_features`, :class:`SearchSession`) and the errors. Every
name the original research code's ``ssddbc/__init__.py`` exported follows (implemented in
:mod:`ssddbc.compat` or the design modules). All of them are imported on first use, so
``import ssddbc`` stays cheap; the original's PyTorch names raise :class:`TorchRequiredError`.
"""

from __future__ import annotations

from typing import Any

from knncache._version import __version__
from ssddbc._errors import (
    FeatureCacheError,
    InvalidInputError,
    RunFolderError,
    SearchConfigError,
    SsddbcError,
    SsddbcWarning,
    TorchRequiredError,
    UnsafePickleError,
)
from ssddbc._lazy import lazy_names

#: This package's names imported on first use -> their module.
_LAZY_API: dict[str, str] = {
    "SSDDBC": "ssddbc.estimators",
    "SSDDBCSearch": "ssddbc.estimators",
    "SearchSession": "ssddbc.grid_search.api",
    "run_clustering_search_on_features": "ssddbc.grid_search.api",
}

#: The original's top-level names -> the module that defines them here.
_ORIGINAL_NAMES: dict[str, str] = {
    "FeatureLoader": "ssddbc.data",
    "EnhancedDataset": "ssddbc.data",
    "get_superclass_info": "ssddbc.data",
    "compute_median_density": "ssddbc.density.density_estimation",
    "identify_high_density_points": "ssddbc.density.density_estimation",
    "build_clusters_ssddbc": "ssddbc.ssddbc.clustering",
    "analyze_ssddbc_clustering_result": "ssddbc.compat.analysis",
    "analyze_cluster_composition": "ssddbc.compat.analysis",
    "ssddbc_conflict_resolution": "ssddbc.compat.conflict",
    "compute_cluster_cohesion": "ssddbc.compat.conflict",
    "assign_sparse_points_density_based": "ssddbc.ssddbc.assignment",
    "merge_clusters_by_label_consistency": "ssddbc.ssddbc.merging",
    "merge_clusters_by_category_label": "ssddbc.ssddbc.merging",
    "get_cluster_category_labels": "ssddbc.ssddbc.merging",
    "adaptive_density_clustering": "ssddbc.ssddbc.adaptive_clustering",
    "identify_unknown_clusters": "ssddbc.compat.unknown",
    "identify_unknown_clusters_from_predictions": "ssddbc.ssddbc.unknown",
    "test_kmeans_baseline": "ssddbc.compat.kmeans",
    "build_prototypes": "ssddbc.compat.prototypes",
    "compute_total_loss": "ssddbc.compat.loss",
    "compute_supervised_loss_l1": "ssddbc.compat.loss",
    "compute_l2_loss": "ssddbc.compat.loss",
    "compute_cluster_quality_score": "ssddbc.compat.cluster_quality",
    "compute_cluster_separation": "ssddbc.compat.cluster_quality",
    "compute_local_density_penalty": "ssddbc.compat.cluster_quality",
    "compute_separation_component": "ssddbc.compat.cluster_quality",
    "compute_penalty_component": "ssddbc.compat.cluster_quality",
    "compute_co_value": "ssddbc.ssddbc.co_calculation",
    "get_co_mode_description": "ssddbc.ssddbc.co_calculation",
    "apply_co_filter": "ssddbc.ssddbc.co_calculation",
    "test_adaptive_clustering_on_superclass": "ssddbc.compat.test_superclass",
    "main": "ssddbc.compat.testing_cli",
    "run_grid_search": "ssddbc.grid_search.batch_runner",
    "parse_superclasses": "ssddbc.grid_search.batch_runner",
}

#: The original's names that need PyTorch (see :class:`TorchRequiredError`).
_TORCH_NAMES = frozenset(
    {
        "set_deterministic_behavior",
        "FeatureExtractor",
        "DataProvider",
        "EnhancedDataProvider",
        "ModelLoader",
        "DatasetLoader",
    }
)

#: This package's own API first.
__all__ = [
    "SSDDBC",
    "FeatureCacheError",
    "InvalidInputError",
    "RunFolderError",
    "SSDDBCSearch",
    "SearchConfigError",
    "SearchSession",
    "SsddbcError",
    "SsddbcWarning",
    "TorchRequiredError",
    "UnsafePickleError",
    "__version__",
    "run_clustering_search_on_features",
]
#: Then the original research code's names.
__all__ += [
    "EnhancedDataset",
    "FeatureLoader",
    "adaptive_density_clustering",
    "analyze_cluster_composition",
    "analyze_ssddbc_clustering_result",
    "apply_co_filter",
    "assign_sparse_points_density_based",
    "build_clusters_ssddbc",
    "build_prototypes",
    "compute_cluster_cohesion",
    "compute_cluster_quality_score",
    "compute_cluster_separation",
    "compute_co_value",
    "compute_l2_loss",
    "compute_local_density_penalty",
    "compute_median_density",
    "compute_penalty_component",
    "compute_separation_component",
    "compute_supervised_loss_l1",
    "compute_total_loss",
    "get_cluster_category_labels",
    "get_co_mode_description",
    "get_superclass_info",
    "identify_high_density_points",
    "identify_unknown_clusters",
    "identify_unknown_clusters_from_predictions",
    "main",
    "merge_clusters_by_category_label",
    "merge_clusters_by_label_consistency",
    "parse_superclasses",
    "run_grid_search",
    "ssddbc_conflict_resolution",
    "test_adaptive_clustering_on_superclass",
    "test_kmeans_baseline",
]


# The estimators import scikit-learn, the search the whole pipeline: loaded on first use.
_resolve, __dir__ = lazy_names(__name__, {**_ORIGINAL_NAMES, **_LAZY_API})


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        raise TorchRequiredError(name)
    return _resolve(name)
