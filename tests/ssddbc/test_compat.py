"""Drop-in compatibility with the original research code (GitHub hollegjx/final at dda90c4).

``SIGNATURES`` is written from the original's source: every public function its
``ssddbc/__init__.py`` and its subpackages' ``__init__.py`` export (plus the module-level
names its callers import, such as ``merging.merge_isolated_clusters`` and
``heatmap.create_mixed_heatmap``), as ``(module, name, parameter list)``. Each name is
imported from that module and its ``inspect.signature`` compared with the original's: the
same positional parameters in the same order, kinds and defaults; anything this package adds
must be keyword-only. The few defaults that differ on purpose are listed in ``DEFAULTS``
with the reason. ``EXPORTS`` lists, per package, the names the original re-exported there.

The second half calls the functions the way the original's callers do (positional, in the
original's order) and compares with the golden outputs of the original code.
"""

from __future__ import annotations

import importlib
import inspect
import io
import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from ssddbc import SsddbcError, SsddbcWarning, TorchRequiredError

# (module, name, the original's parameter list)
SIGNATURES: list[tuple[str, str, str]] = [
    ("ssddbc.density.density_estimation", "compute_median_density", "X, k=10, silent=False"),
    ("ssddbc.density.density_estimation", "analyze_knn_average_distances", "knn_distances"),
    (
        "ssddbc.density.density_estimation",
        "identify_high_density_points",
        "densities, percentile=75, use_relative=False, silent=False",
    ),
    (
        "ssddbc.density.density_estimation",
        "compute_relative_density",
        "densities, neighbors, k, silent=False",
    ),
    (
        "ssddbc.ssddbc.clustering",
        "build_clusters_ssddbc",
        "X, high_density_mask, neighbors, labeled_mask, targets, densities, known_mask, k=10, "
        "co=None, silent=False, logger=None, train_size=None",
    ),
    (
        "ssddbc.ssddbc.analysis",
        "analyze_ssddbc_clustering_result",
        "clusters, cluster_labels, labeled_mask, targets, known_mask",
    ),
    (
        "ssddbc.ssddbc.analysis",
        "analyze_cluster_composition",
        "predictions, targets, known_mask, labeled_mask, unknown_clusters",
    ),
    (
        "ssddbc.ssddbc.analysis",
        "evaluate_high_density_clustering",
        "cluster_labels, targets, known_mask, eval_version='v1', X=None, silent=False",
    ),
    (
        "ssddbc.ssddbc.conflict",
        "ssddbc_conflict_resolution",
        "xi_idx, xj_idx, xi_cluster_center, xj_cluster_center, X, densities",
    ),
    ("ssddbc.ssddbc.conflict", "compute_cluster_cohesion", "X, cluster_indices"),
    (
        "ssddbc.ssddbc.assignment",
        "assign_sparse_points_density_based",
        "X, clusters, cluster_labels, densities, neighbors, labeled_mask, targets, "
        "label_threshold=0.1, purity_threshold=0.8, train_size=None, silent=False, voting_k=5, "
        "assign_model=2, label_guide=False",
    ),
    (
        "ssddbc.ssddbc.merging",
        "merge_clusters_by_category_label",
        "predictions, cluster_category_labels, silent=False",
    ),
    (
        "ssddbc.ssddbc.merging",
        "get_cluster_category_labels",
        "predictions, targets, labeled_mask, min_cluster_size=5, min_labeled_ratio=0.25, "
        "min_purity=0.8, silent=False",
    ),
    (
        "ssddbc.ssddbc.merging",
        "merge_clusters_by_label_consistency",
        "predictions, targets, labeled_mask, dominance_threshold=0.8, detail_merge=False",
    ),
    (
        "ssddbc.ssddbc.merging",
        "merge_isolated_clusters",
        "predictions, X, targets, labeled_mask, cluster_category_labels=None, "
        "isolated_threshold=3, silent=False",
    ),
    (
        "ssddbc.ssddbc.adaptive_clustering",
        "adaptive_density_clustering",
        "X, targets, known_mask, labeled_mask, k=10, density_percentile=75, random_state=0, "
        "train_size=None, co_mode=2, co_manual=None, eval_dense=False, eval_version='v1', "
        "fast_mode=False, dense_method=0, assign_model=2, voting_k=5, detail_dense=False, "
        "label_guide=False",
    ),
    ("ssddbc.unknown.detection", "identify_unknown_clusters", "clusters, labeled_mask"),
    (
        "ssddbc.unknown.detection",
        "identify_unknown_clusters_from_predictions",
        "predictions, labeled_mask",
    ),
    (
        "ssddbc.baseline.kmeans",
        "test_kmeans_baseline",
        "test_features, test_targets, test_known_mask, n_clusters, random_state=0, "
        "eval_version='v1', kmeans_merge=False, train_features=None, train_targets=None, "
        "train_known_mask=None",
    ),
    (
        "ssddbc.prototypes.prototype_builder",
        "build_prototypes",
        "X, clusters, labeled_mask, targets",
    ),
    (
        "ssddbc.evaluation.loss_function",
        "compute_supervised_loss_l1",
        "predictions, targets, labeled_mask, cluster_category_labels=None, loss_type='accuracy'",
    ),
    (
        "ssddbc.evaluation.loss_function",
        "compute_l2_loss",
        "*, X, predictions, targets, labeled_mask, clusters, k, "
        "cluster_distance_method='prototype', neighbors=None, l2_components=None, "
        "l2_component_weights=None, l2_component_params=None",
    ),
    (
        "ssddbc.evaluation.loss_function",
        "compute_total_loss",
        "X, predictions, targets, labeled_mask, cluster_category_labels=None, l1_weight=1.0, "
        "l2_weight=1.0, l1_type='accuracy', l2_type=None, use_cluster_quality=False, "
        "clusters=None, k=10, cluster_distance_method='prototype', neighbors=None, "
        "separation_weight=1.0, penalty_weight=1.0, silent=False, l2_components=None, "
        "l2_component_weights=None, l2_component_params=None",
    ),
    (
        "ssddbc.evaluation.cluster_quality",
        "compute_cluster_separation",
        "clusters, X, method='prototype', k=10",
    ),
    (
        "ssddbc.evaluation.cluster_quality",
        "compute_local_density_penalty",
        "X, labels, k, neighbors=None",
    ),
    (
        "ssddbc.evaluation.cluster_quality",
        "compute_separation_component",
        "clusters, X, k=10, method='prototype'",
    ),
    (
        "ssddbc.evaluation.cluster_quality",
        "compute_penalty_component",
        "X, labels, k, neighbors=None",
    ),
    (
        "ssddbc.evaluation.cluster_quality",
        "compute_cluster_quality_score",
        "clusters, X, labels, k, cluster_distance_method='prototype', neighbors=None, "
        "separation_weight=1.0, penalty_weight=1.0",
    ),
    (
        "ssddbc.evaluation.l2_strategies",
        "register_l2_component",
        "name, fn, orientation='minimize', description=''",
    ),
    ("ssddbc.evaluation.l2_strategies", "available_l2_components", ""),
    (
        "ssddbc.evaluation.l2_strategies.geometric",
        "compute_separation_component",
        "*, clusters, X, k, cluster_distance_method='prototype', **_",
    ),
    (
        "ssddbc.evaluation.l2_strategies.silhouette",
        "compute_silhouette_component",
        "*, X, predictions, labeled_mask, **_",
    ),
    (
        "ssddbc.utils.co_calculation",
        "compute_co_value",
        "co_mode, knn_distances, densities, neighbors, k, co_manual=None, silent=False",
    ),
    (
        "ssddbc.utils.co_calculation",
        "apply_co_filter",
        "X, high_density_indices, co, neighbors, high_density_mask, silent=False",
    ),
    ("ssddbc.utils.co_calculation", "get_co_mode_description", "co_mode"),
    (
        "ssddbc.testing.test_superclass",
        "test_adaptive_clustering_on_superclass",
        "superclass_name, model_path, use_train_and_test=True, k=10, density_percentile=75, "
        "random_state=0, eval_version='v1', run_kmeans_baseline=False, use_l2=True, "
        "feature_cache_dir=None, eval_dense=False, fast_mode=False, dense_method=0, "
        "assign_model=2, voting_k=5, co_mode=2, co_manual=None, detail_dense=False, "
        "label_guide=False, use_cluster_quality=False, cluster_distance_method=1, "
        "l1_type='cross_entropy', separation_weight=1.0, penalty_weight=1.0, "
        "l2_components=None, l2_component_weights=None, l2_component_params=None",
    ),
    ("ssddbc.testing.main", "main", ""),
    (
        "ssddbc.grid_search.batch_runner",
        "run_grid_search",
        "superclass, model_path, k_values, density_values, *, output_dir, eval_version, "
        "co_mode, co_manual, use_l2, eval_dense, dense_method, assign_model, voting_k, "
        "use_train_and_test, detail_dense, use_cluster_quality=False, "
        "cluster_distance_method=1, l1_type='cross_entropy', l2_components=None, "
        "max_workers=None, feature_cache_dir=None, use_parallel=True",
    ),
    (
        "ssddbc.grid_search.batch_runner",
        "parse_superclasses",
        "defaults, override, file_path",
    ),
    (
        "ssddbc.information.labeled_acc_calculation",
        "compute_labeled_acc_with_unknown_penalty",
        "predictions, targets, labeled_mask, unknown_clusters, silent=False",
    ),
    ("ssddbc.data.dataset_config", "get_superclass_info", "superclass_name"),
    (
        "ssddbc.grid_search.heatmap",
        "create_mixed_heatmap",
        "results_dict, color_metric='all_acc', display_metric='labeled_acc', "
        "superclass_name='', output_dir=HEATMAP_OUTPUT_DIR, save_plots=True",
    ),
    # classes: (module, "Class.method", parameters after self)
    (
        "ssddbc.data.feature_loader",
        "FeatureLoader.__init__",
        "cache_base_dir=None, cache_base_dir_nol2=None",
    ),
    ("ssddbc.data.feature_loader", "FeatureLoader.load", "dataset_name, use_l2=True, silent=False"),
    ("ssddbc.data.feature_loader", "FeatureLoader.check_cache_exists", "dataset_name, use_l2=True"),
    ("ssddbc.data.feature_loader", "FeatureLoader.get_cache_path", "dataset_name, use_l2=True"),
    (
        "ssddbc.data.enhanced_data_provider",
        "EnhancedDataset.__init__",
        "feature_dict, dataset_name='unknown', use_l2=True, source='unknown'",
    ),
    ("ssddbc.data.enhanced_data_provider", "EnhancedDataset.get_test_subset", "predictions=None"),
    ("ssddbc.data.enhanced_data_provider", "EnhancedDataset.get_clustering_input", ""),
    ("ssddbc.data.enhanced_data_provider", "EnhancedDataset.print_summary", "silent=False"),
]

#: Defaults that differ on purpose: (module, name, parameter) -> (ours, reason).
DEFAULTS: dict[tuple[str, str, str], tuple[Any, str]] = {
    ("ssddbc.ssddbc.adaptive_clustering", "adaptive_density_clustering", "dense_method"): (
        1,
        "the original raised for anything but 1 (its default 0 included)",
    ),
    ("ssddbc.ssddbc.adaptive_clustering", "adaptive_density_clustering", "assign_model"): (
        3,
        "the original raised for anything but 3 (its default 2 included)",
    ),
    ("ssddbc.ssddbc.assignment", "assign_sparse_points_density_based", "assign_model"): (
        3,
        "the original raised for anything but 3 (its default 2 included)",
    ),
    ("ssddbc.testing.test_superclass", "test_adaptive_clustering_on_superclass", "dense_method"): (
        1,
        "passed to adaptive_density_clustering, see there",
    ),
    ("ssddbc.testing.test_superclass", "test_adaptive_clustering_on_superclass", "assign_model"): (
        3,
        "passed to adaptive_density_clustering, see there",
    ),
    ("ssddbc.grid_search.heatmap", "create_mixed_heatmap", "output_dir"): (
        "heatmaps",
        "the original's default was a machine path from its config.py",
    ),
}

#: Extra positional-or-keyword parameters allowed (command-line mains take argv).
EXTRA_POSITIONAL: dict[tuple[str, str], tuple[str, ...]] = {
    ("ssddbc.testing.main", "main"): ("argv",),
}

#: Per package, the names its ``__init__`` exported in the original (PyTorch names apart).
EXPORTS: dict[str, list[str]] = {
    "ssddbc": [
        "FeatureLoader",
        "EnhancedDataset",
        "get_superclass_info",
        "compute_median_density",
        "identify_high_density_points",
        "build_clusters_ssddbc",
        "analyze_ssddbc_clustering_result",
        "analyze_cluster_composition",
        "ssddbc_conflict_resolution",
        "compute_cluster_cohesion",
        "assign_sparse_points_density_based",
        "merge_clusters_by_label_consistency",
        "merge_clusters_by_category_label",
        "get_cluster_category_labels",
        "adaptive_density_clustering",
        "identify_unknown_clusters",
        "identify_unknown_clusters_from_predictions",
        "test_kmeans_baseline",
        "build_prototypes",
        "compute_total_loss",
        "compute_supervised_loss_l1",
        "compute_l2_loss",
        "compute_cluster_quality_score",
        "compute_cluster_separation",
        "compute_local_density_penalty",
        "compute_separation_component",
        "compute_penalty_component",
        "compute_co_value",
        "get_co_mode_description",
        "apply_co_filter",
        "test_adaptive_clustering_on_superclass",
        "main",
        "run_grid_search",
        "parse_superclasses",
    ],
    "ssddbc.baseline": ["test_kmeans_baseline"],
    "ssddbc.data": [
        "FeatureLoader",
        "CIFAR100_SUPERCLASS_CONFIG",
        "get_superclass_info",
        "EnhancedDataset",
    ],
    "ssddbc.density": [
        "compute_median_density",
        "identify_high_density_points",
        "compute_relative_density",
        "analyze_knn_average_distances",
    ],
    "ssddbc.evaluation": [
        "compute_supervised_loss_l1",
        "compute_total_loss",
        "compute_l2_loss",
        "compute_cluster_quality_score",
        "compute_cluster_separation",
        "compute_local_density_penalty",
        "compute_separation_component",
        "compute_penalty_component",
    ],
    "ssddbc.evaluation.l2_strategies": [
        "L2_REGISTRY",
        "L2ComponentFn",
        "register_l2_component",
        "available_l2_components",
        "compute_separation_component",
        "compute_silhouette_component",
    ],
    "ssddbc.grid_search": ["run_grid_search", "parse_superclasses"],
    "ssddbc.information": ["compute_labeled_acc_with_unknown_penalty"],
    "ssddbc.prototypes": ["build_prototypes"],
    "ssddbc.ssddbc": [
        "build_clusters_ssddbc",
        "ssddbc_conflict_resolution",
        "compute_cluster_cohesion",
        "analyze_ssddbc_clustering_result",
        "analyze_cluster_composition",
        "assign_sparse_points_density_based",
        "merge_clusters_by_label_consistency",
        "adaptive_density_clustering",
    ],
    "ssddbc.testing": ["test_adaptive_clustering_on_superclass", "main"],
    "ssddbc.unknown": ["identify_unknown_clusters", "identify_unknown_clusters_from_predictions"],
    "ssddbc.utils": ["compute_co_value", "apply_co_filter", "get_co_mode_description"],
}

#: The original's names that need PyTorch, per package.
TORCH: dict[str, list[str]] = {
    "ssddbc": [
        "set_deterministic_behavior",
        "FeatureExtractor",
        "DataProvider",
        "EnhancedDataProvider",
        "ModelLoader",
        "DatasetLoader",
    ],
    "ssddbc.data": [
        "FeatureExtractor",
        "DataProvider",
        "ModelLoader",
        "set_deterministic_behavior",
        "load_model_simple",
        "DatasetLoader",
        "EnhancedDataProvider",
    ],
    "ssddbc.data.enhanced_data_provider": ["EnhancedDataProvider"],
}


def _original(params: str) -> inspect.Signature:
    """The signature of a function written with the original's parameter list."""
    namespace: dict[str, Any] = {"HEATMAP_OUTPUT_DIR": "<config.heatmap_output_dir>"}
    exec(f"def f({params}): pass", namespace)
    return inspect.signature(namespace["f"])


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _ours(module: str, name: str) -> inspect.Signature:
    sig = inspect.signature(_resolve(module, name))
    if "." in name:  # a method: drop self
        params = list(sig.parameters.values())[1:]
        sig = sig.replace(parameters=params)
    return sig


@pytest.mark.parametrize(
    ("module", "name", "params"), SIGNATURES, ids=[f"{m}:{n}" for m, n, _ in SIGNATURES]
)
def test_signature_matches_the_original(module: str, name: str, params: str) -> None:
    expected = list(_original(params).parameters.values())
    got = list(_ours(module, name).parameters.values())
    extra_pos = EXTRA_POSITIONAL.get((module, name), ())
    # The original's parameters come first, in order, with the same kinds.
    assert [p.name for p in got[: len(expected)]] == [p.name for p in expected]
    for want, have in zip(expected, got, strict=False):
        assert have.kind == want.kind, (name, want.name)
        override = DEFAULTS.get((module, name, want.name))
        if override is not None:
            assert have.default == override[0], (name, want.name, override[1])
            assert have.default != want.default
        else:
            assert have.default == want.default, (name, want.name)
    # Anything added is keyword-only (or **kwargs), never a new positional slot.
    for extra in got[len(expected) :]:
        if extra.name in extra_pos:
            assert extra.default is None
            continue
        assert extra.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD), (
            name,
            extra.name,
        )


def test_every_default_override_is_in_the_table() -> None:
    listed = {(m, n) for m, n, _ in SIGNATURES}
    assert {(m, n) for m, n, _ in DEFAULTS} <= listed


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_packages_export_the_original_names(package: str) -> None:
    mod = importlib.import_module(package)
    for name in EXPORTS[package]:
        obj = getattr(mod, name)
        assert obj is not None, (package, name)
    if package == "ssddbc":
        assert set(EXPORTS["ssddbc"]) <= set(mod.__all__)
        # the re-exports are the defining modules' objects, not copies
        for module, name, _ in SIGNATURES:
            if name in EXPORTS["ssddbc"] and "." not in name and module != "ssddbc.testing.main":
                if module.startswith("ssddbc.evaluation.l2_strategies."):
                    continue  # the registry's keyword-only variant has the same name
                assert getattr(mod, name) is _resolve(module, name), name


def test_issue_paths_resolve() -> None:
    """The names the issue lists, at the original's paths."""
    from ssddbc import adaptive_density_clustering  # noqa: F401
    from ssddbc.data import get_superclass_info  # noqa: F401
    from ssddbc.evaluation import cluster_quality  # noqa: F401
    from ssddbc.evaluation.loss_function import (  # noqa: F401
        compute_supervised_loss_l1,
        compute_total_loss,
    )
    from ssddbc.prototypes.prototype_builder import build_prototypes  # noqa: F401
    from ssddbc.ssddbc.assignment import assign_sparse_points_density_based  # noqa: F401
    from ssddbc.ssddbc.clustering import build_clusters_ssddbc  # noqa: F401
    from ssddbc.ssddbc.merging import merge_isolated_clusters  # noqa: F401
    from ssddbc.unknown import detection  # noqa: F401
    from ssddbc.utils import co_calculation  # noqa: F401

    baseline = importlib.import_module("ssddbc.baseline.kmeans")
    assert callable(baseline.test_kmeans_baseline)
    assert baseline.test_kmeans_baseline.__test__ is False  # never collected by pytest


@pytest.mark.parametrize(("package", "name"), [(p, n) for p, names in TORCH.items() for n in names])
def test_torch_names_raise_an_import_error_pointing_to_the_cache(package: str, name: str) -> None:
    mod = importlib.import_module(package)
    with pytest.raises(ImportError) as info:
        exec(f"from {package} import {name}", {})
    err = info.value
    assert isinstance(err, TorchRequiredError) and isinstance(err, SsddbcError)
    assert name in str(err) and "features.npz" in str(err) and "PyTorch" in str(err)
    with pytest.raises(TorchRequiredError):
        getattr(mod, name)


def test_star_import_works() -> None:
    namespace: dict[str, Any] = {}
    exec("from ssddbc import *", namespace)
    assert "adaptive_density_clustering" in namespace and "DataProvider" not in namespace


def test_grid_search_names_are_forwarded_to_the_batch_runner() -> None:
    import ssddbc
    import ssddbc.grid_search
    from ssddbc.grid_search import batch_runner

    for name in ("run_grid_search", "parse_superclasses"):
        assert name in ssddbc.__all__ and name in ssddbc.grid_search.__all__
        assert getattr(ssddbc, name) is getattr(batch_runner, name)
        assert getattr(ssddbc.grid_search, name) is getattr(batch_runner, name)


# ---- original-style calls against the golden outputs ------------------------------------

CONFIGS = [(k, dp) for k in (5, 10, 15) for dp in (50, 75, 90)]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(adjusted_rand_score(a, b) == 1.0)


def _golden_args(golden: dict[str, Any]) -> tuple[Any, ...]:
    return golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"]


@pytest.mark.parametrize(("k", "dp"), CONFIGS)
def test_positional_call_in_the_original_order(golden: dict[str, Any], k: int, dp: int) -> None:
    """adaptive_density_clustering(X, t, km, lm, k, dp, random_state, train_size, co_mode,
    co_manual, eval_dense, eval_version, fast_mode, dense_method, assign_model, voting_k)."""
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, t, km, lm = _golden_args(golden)
    out = adaptive_density_clustering(
        X, t, km, lm, k, dp, 0, int(golden["train_size"]), 2, None, False, "v1", False, 1, 3, 5
    )
    assert len(out) == 8
    assert _same_partition(out[0], golden[f"labels_k{k}_dp{dp}"])
    np.testing.assert_allclose(out[7], golden[f"densities_k{k}_dp{dp}"], rtol=5e-7, atol=0)


def test_density_third_positional_is_silent(golden: dict[str, Any]) -> None:
    from ssddbc.density.density_estimation import (
        compute_median_density,
        compute_relative_density,
        identify_high_density_points,
    )

    X = golden["features"]
    rho, dist, nb = compute_median_density(X, 5, True)
    np.testing.assert_allclose(rho, golden["densities_k5_dp50"], rtol=5e-7, atol=0)
    assert dist.shape == nb.shape == (X.shape[0], 5)
    rel = compute_relative_density(rho, nb, 5, True)
    high = identify_high_density_points(rel, 75, True, True)
    assert high.dtype == bool and 0.2 < high.mean() < 0.3
    # the project's addition is keyword-only
    again = compute_median_density(None, 5, precomputed_knn=(nb, dist))
    np.testing.assert_array_equal(again[0], rho)


@pytest.mark.parametrize(("k", "dp"), [(5, 50), (10, 75), (15, 90)])
def test_step_functions_reproduce_the_pipeline(golden: dict[str, Any], k: int, dp: int) -> None:
    """The original pipeline written with its step functions, positional arguments."""
    from ssddbc.density.density_estimation import (
        compute_median_density,
        compute_relative_density,
        identify_high_density_points,
    )
    from ssddbc.ssddbc.assignment import assign_sparse_points_density_based
    from ssddbc.ssddbc.clustering import build_clusters_ssddbc
    from ssddbc.ssddbc.merging import merge_isolated_clusters
    from ssddbc.unknown.detection import identify_unknown_clusters_from_predictions
    from ssddbc.utils.co_calculation import compute_co_value

    X, t, km, lm = _golden_args(golden)
    rho, dist, nb = compute_median_density(X, k, True)
    high = identify_high_density_points(compute_relative_density(rho, nb, k, True), dp, True, True)
    co = compute_co_value(2, dist, rho, nb, k, None, True)
    clusters, labels, nbr_map, category = build_clusters_ssddbc(
        X, high, nb, lm, t, rho, km, k, co, True, None, None
    )
    assert set(nbr_map) == set(np.flatnonzero(high).tolist())
    assert set(category) == set(range(len(clusters)))
    assert [set(np.flatnonzero(labels == c).tolist()) for c in range(len(clusters))] == clusters
    merged, info = merge_isolated_clusters(labels, X, t, lm, None, 3, True)
    assert info["n_merges"] == len(info["merge_details"]) <= info["n_isolated_clusters"]
    core = [set(np.flatnonzero(merged == c).tolist()) for c in range(int(merged.max()) + 1)]
    final = assign_sparse_points_density_based(
        X, core, merged, rho, nb, lm, t, 0.1, 0.8, None, True, 5, 3
    )
    expected = golden[f"labels_k{k}_dp{dp}"]
    assert _same_partition(final, expected)
    unknown = identify_unknown_clusters_from_predictions(final, lm)
    assert all(not lm[final == c].any() for c in unknown)


def test_total_loss_positional_gives_the_golden_score(
    golden: dict[str, Any], golden_search: dict[str, Any]
) -> None:
    """The original search's loss call, positional, at its selected configuration."""
    from ssddbc.evaluation.loss_function import compute_total_loss
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, t, km, lm = _golden_args(golden)
    k, dp = golden_search["best_params"]["k"], golden_search["best_params"]["density_percentile"]
    expected = golden_search["grid"][f"k{k}_dp{dp}"]
    out = adaptive_density_clustering(X, t, km, lm, k, dp, 0, None, 2, None, False, "v1", True)
    loss = compute_total_loss(
        X,
        out[0],
        t,
        lm,
        None,
        -1.0,
        1.0,
        "cross_entropy",
        None,
        False,
        out[6],
        k,
        "prototype",
        None,
        0.0,
        1.0,
        True,
        ["separation", "silhouette"],
        {"silhouette": 3.0, "separation": 0.0},
    )
    assert loss["total_loss"] == pytest.approx(golden_search["score"], abs=1e-6)
    assert loss["l1"] == pytest.approx(expected["l1_loss"], abs=1e-12)
    parts = loss["l2_metrics"]["components"]
    assert parts["silhouette"]["value"] == pytest.approx(expected["silhouette"], abs=1e-6)
    assert parts["separation"]["value"] == pytest.approx(expected["separation_score"], abs=1e-6)
    assert parts["separation"]["contribution"] == 0.0


def test_supervised_l1_accuracy_and_cross_entropy(golden: dict[str, Any]) -> None:
    from ssddbc.evaluation import cluster_acc, l1_loss
    from ssddbc.evaluation.loss_function import compute_supervised_loss_l1

    t, lm = golden["targets"], golden["labeled_mask"]
    pred = golden["labels_k10_dp75"]
    acc_loss, acc_m = compute_supervised_loss_l1(pred, t, lm)
    assert acc_loss == pytest.approx(1 - cluster_acc(t[lm], pred[lm]))
    assert acc_m["n_labeled"] == lm.sum() and acc_m["correct_samples"] <= lm.sum()
    ce, ce_m = compute_supervised_loss_l1(pred, t, lm, None, "cross_entropy")
    assert ce == l1_loss(pred, t, lm) and 0 <= ce_m["equiv_accuracy"] <= 1
    with pytest.raises(SsddbcError):
        compute_supervised_loss_l1(pred, t, lm, None, "hinge")


def test_eval_dense_returns_the_original_high_density_evaluation(golden: dict[str, Any]) -> None:
    from ssddbc.evaluation import split_cluster_acc_v1, split_cluster_acc_v2
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, t, km, lm = _golden_args(golden)
    full = adaptive_density_clustering(X, t, km, lm, 10, 75)
    for version, acc in (("v1", split_cluster_acc_v1), ("v2", split_cluster_acc_v2)):
        dense = adaptive_density_clustering(X, t, km, lm, 10, 75, 0, None, 2, None, True, version)
        assert len(dense) == 10
        core_labels, n_core, unknown, all_acc, old_acc, new_acc, dbcv, nb, cc, rho = dense
        assert unknown == [] and dbcv is None and cc is None
        sel = core_labels >= 0
        # the core labels are the full run's core clusters, numbered the same way
        assert [set(np.flatnonzero(core_labels == c).tolist()) for c in range(n_core)] == full[6]
        assert (all_acc, old_acc, new_acc) == acc(t[sel], core_labels[sel], km[sel])
        np.testing.assert_array_equal(nb, full[5])
        np.testing.assert_array_equal(rho, full[7])


def test_labelled_outside_known_is_used_as_labelled_with_a_warning(
    golden: dict[str, Any],
) -> None:
    """The original ignores known_mask in the clustering: a labelled novel-class sample is a
    labelled sample like any other. Here too, with an SsddbcWarning."""
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, t, km, lm = _golden_args(golden)
    lm2 = lm.copy()
    novel = np.flatnonzero(~km)[:40]
    lm2[novel] = True
    with pytest.warns(SsddbcWarning, match="40 labelled sample"):
        out = adaptive_density_clustering(X, t, km, lm2, 10, 75)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = adaptive_density_clustering(X, t, km | lm2, lm2, 10, 75)
    np.testing.assert_array_equal(out[0], same[0])
    baseline = adaptive_density_clustering(X, t, km, lm, 10, 75)
    # The novel-class clusters were "unknown" (no labelled member); the newly labelled samples
    # make theirs labelled clusters.
    hit = set(out[0][novel].tolist())
    assert hit & set(baseline[2]) and not hit & set(out[2])


def test_merge_functions_follow_the_original_rules() -> None:
    from ssddbc.ssddbc.merging import (
        get_cluster_category_labels,
        merge_clusters_by_category_label,
        merge_clusters_by_label_consistency,
        merge_isolated_clusters,
    )

    pred = np.array([0] * 6 + [1] * 5 + [2] * 6 + [3] * 2)
    t = np.array([0] * 6 + [7] * 5 + [0] * 6 + [0, 0])
    lm = np.array([1, 1, 1, 0, 0, 0] + [0] * 5 + [1, 1, 1, 0, 0, 0] + [1, 0], dtype=bool)
    labels = get_cluster_category_labels(pred, t, lm)
    assert labels == {0: 0, 1: None, 2: 0, 3: None}  # cluster 3 is below 5 members
    merged, info = merge_clusters_by_category_label(pred, labels)
    assert merged.tolist() == [0] * 6 + [1] * 5 + [0] * 6 + [2] * 2
    assert info["n_merges"] == 1 and info["merge_details"][0]["source_clusters"] == [2]
    merged2, details = merge_clusters_by_label_consistency(pred, t, lm)
    np.testing.assert_array_equal(merged2, merged)
    assert details == info["merge_details"]
    X = np.random.default_rng(0).standard_normal((pred.size, 3)).astype(np.float32)
    out, iso = merge_isolated_clusters(pred, X, t, lm)
    # the isolated cluster 3 (label 0) joins the first non-isolated cluster labelled 0
    assert iso["n_isolated_clusters"] == 1 and iso["n_isolated_points"] == 2
    assert iso["merge_details"][0]["merge_strategy"] == "label_match"
    assert out.tolist() == [*pred[:17].tolist(), 0, 0]
    untouched, none = merge_isolated_clusters(pred[:17] + 5, X[:17], t[:17], lm[:17])
    assert none["n_merges"] == 0 and untouched.tolist() == (pred[:17] + 5).tolist()


def test_small_helpers() -> None:
    from ssddbc.density import analyze_knn_average_distances
    from ssddbc.information import compute_labeled_acc_with_unknown_penalty
    from ssddbc.prototypes import build_prototypes
    from ssddbc.ssddbc import compute_cluster_cohesion, ssddbc_conflict_resolution
    from ssddbc.unknown import identify_unknown_clusters
    from ssddbc.utils import apply_co_filter, get_co_mode_description

    X = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]], dtype=np.float32)
    t = np.array([0, 0, 1, 1])
    lm = np.array([True, False, False, False])
    protos, plabels = build_prototypes(X, [{0, 1}, {2, 3}], lm, t)
    np.testing.assert_allclose(protos, [[0.5, 0.0], [10.5, 0.0]])
    assert plabels.tolist() == [0, -1]
    assert identify_unknown_clusters([{0, 1}, {2, 3}], lm) == [1]
    assert compute_cluster_cohesion(X, [0, 1]) == pytest.approx(0.5)
    assert compute_cluster_cohesion(X, [0]) == 0.0
    assert ssddbc_conflict_resolution(0, 1, protos[0], protos[1], X, None) is True
    assert analyze_knn_average_distances(np.array([[1.0, 3.0], [2.0, 2.0]])) == 2.0
    nb = np.array([[1, 2], [0, 2], [3, 1], [2, 1]])
    high = np.array([True, True, True, False])
    assert apply_co_filter(X, [0, 2], 1.5, nb, high) == {0: [1], 2: []}
    assert isinstance(get_co_mode_description(2), str)
    pred = np.array([0, 0, 1, 1])
    acc, m = compute_labeled_acc_with_unknown_penalty(pred, t, np.ones(4, bool), [1])
    assert acc == 0.5 and m["n_assigned_to_unknown"] == 2 and m["n_correct"] == 2


def test_analysis_reports_print_each_cluster(golden: dict[str, Any]) -> None:
    from ssddbc.ssddbc.analysis import (
        analyze_cluster_composition,
        analyze_ssddbc_clustering_result,
    )

    _, t, km, lm = _golden_args(golden)
    out = io.StringIO()
    pred = golden["labels_k10_dp75"]
    assert analyze_cluster_composition(pred, t, km, lm, [], file=out) is None
    text = out.getvalue()
    assert all(f"cluster {c} " in text for c in np.unique(pred).tolist())
    out = io.StringIO()
    clusters = [set(np.flatnonzero(pred == c).tolist()) for c in np.unique(pred).tolist()]
    analyze_ssddbc_clustering_result(clusters, pred, lm, t, km, file=out)
    assert f"core clusters: {len(clusters)}" in out.getvalue()


def test_get_superclass_info_matches_the_original_table() -> None:
    from ssddbc.data import CIFAR100_SUPERCLASS_CONFIG, get_superclass_info

    info = get_superclass_info("mammals")
    assert info["classes"][:3] == [3, 4, 21] and info["unknown_classes"] == [80, 88, 97]
    assert info["known_classes"][-3:] == [15, 19, 42]  # table order, not sorted
    assert info["label_mapping"][3] == 0 and info["label_mapping"][97] == 22
    assert info["unknown_classes_mapped"] == {20, 21, 22}
    assert len(CIFAR100_SUPERCLASS_CONFIG) == 15
    with pytest.raises(ValueError, match="unknown superclass"):
        get_superclass_info("dinosaurs")


def test_cluster_quality_components(golden: dict[str, Any]) -> None:
    from ssddbc.evaluation import separation_score
    from ssddbc.evaluation.cluster_quality import (
        compute_cluster_quality_score,
        compute_cluster_separation,
    )

    X = golden["features"]
    pred = golden["labels_k10_dp75"]
    clusters = [set(np.flatnonzero(pred == c).tolist()) for c in np.unique(pred).tolist()]
    proto, m = compute_cluster_separation(clusters, X)
    assert (
        proto == separation_score(clusters, X)
        and m["n_pairs"] == len(clusters) * (len(clusters) - 1) // 2
    )
    nearest, _ = compute_cluster_separation(clusters, X, "nearest_k", 10)
    every, _ = compute_cluster_separation(clusters, X, "all_pairs")
    assert every < proto < nearest  # closest pairs < centroid distance < mean of all pairs
    q, qm = compute_cluster_quality_score(clusters, X, pred, 10, "prototype", None, 1.0, 0.5)
    assert q == pytest.approx(qm["separation_score"] - 0.5 * qm["penalty_score"])
