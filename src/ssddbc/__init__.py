"""SS-DDBC: semi-supervised density-based clustering for Generalized Category Discovery.

Subpackages keep the module paths of the original research code:
``ssddbc.density.density_estimation``, ``ssddbc.ssddbc.adaptive_clustering``,
``ssddbc.evaluation``, ``ssddbc.data``, ``ssddbc.grid_search.api``,
``ssddbc.grid_search.batch_runner`` and ``ssddbc.testing.test_superclass``.

Every name the original's ``ssddbc/__init__.py`` exported is available here too
(``from ssddbc import adaptive_density_clustering, compute_total_loss, ...``), imported on
first use so that ``import ssddbc`` stays cheap (grid-search workers import it). The
original's PyTorch names (``DataProvider``, ``FeatureExtractor``, ``ModelLoader``, ...) raise
:class:`TorchRequiredError`, an ``ImportError``; they are not in ``__all__``, so
``from ssddbc import *`` works.
"""

from __future__ import annotations

from importlib import import_module
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

#: The original's top-level names -> the module that defines them here.
_ORIGINAL_NAMES: dict[str, str] = {
    "FeatureLoader": "ssddbc.data",
    "EnhancedDataset": "ssddbc.data",
    "get_superclass_info": "ssddbc.data",
    "compute_median_density": "ssddbc.density.density_estimation",
    "identify_high_density_points": "ssddbc.density.density_estimation",
    "build_clusters_ssddbc": "ssddbc.ssddbc.clustering",
    "analyze_ssddbc_clustering_result": "ssddbc.ssddbc.analysis",
    "analyze_cluster_composition": "ssddbc.ssddbc.analysis",
    "ssddbc_conflict_resolution": "ssddbc.ssddbc.conflict",
    "compute_cluster_cohesion": "ssddbc.ssddbc.conflict",
    "assign_sparse_points_density_based": "ssddbc.ssddbc.assignment",
    "merge_clusters_by_label_consistency": "ssddbc.ssddbc.merging",
    "merge_clusters_by_category_label": "ssddbc.ssddbc.merging",
    "get_cluster_category_labels": "ssddbc.ssddbc.merging",
    "adaptive_density_clustering": "ssddbc.ssddbc.adaptive_clustering",
    "identify_unknown_clusters": "ssddbc.unknown.detection",
    "identify_unknown_clusters_from_predictions": "ssddbc.unknown.detection",
    "test_kmeans_baseline": "ssddbc.baseline.kmeans",
    "build_prototypes": "ssddbc.prototypes.prototype_builder",
    "compute_total_loss": "ssddbc.evaluation.loss_function",
    "compute_supervised_loss_l1": "ssddbc.evaluation.loss_function",
    "compute_l2_loss": "ssddbc.evaluation.loss_function",
    "compute_cluster_quality_score": "ssddbc.evaluation.cluster_quality",
    "compute_cluster_separation": "ssddbc.evaluation.cluster_quality",
    "compute_local_density_penalty": "ssddbc.evaluation.cluster_quality",
    "compute_separation_component": "ssddbc.evaluation.cluster_quality",
    "compute_penalty_component": "ssddbc.evaluation.cluster_quality",
    "compute_co_value": "ssddbc.utils.co_calculation",
    "get_co_mode_description": "ssddbc.utils.co_calculation",
    "apply_co_filter": "ssddbc.utils.co_calculation",
    "test_adaptive_clustering_on_superclass": "ssddbc.testing.test_superclass",
    "main": "ssddbc.testing.main",
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

__all__ = [
    "SSDDBC",
    "EnhancedDataset",
    "FeatureCacheError",
    "FeatureLoader",
    "InvalidInputError",
    "RunFolderError",
    "SSDDBCSearch",
    "SearchConfigError",
    "SsddbcError",
    "SsddbcWarning",
    "TorchRequiredError",
    "UnsafePickleError",
    "__version__",
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


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        raise TorchRequiredError(name)
    if name in ("SSDDBC", "SSDDBCSearch"):
        # The estimators import scikit-learn: loaded on first use, not with the package.
        name_module = "ssddbc.estimators"
        return getattr(import_module(name_module), name)
    module = _ORIGINAL_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ORIGINAL_NAMES) | {"SSDDBC", "SSDDBCSearch"})
