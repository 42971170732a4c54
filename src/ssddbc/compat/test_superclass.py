"""The original's ``test_adaptive_clustering_on_superclass`` on this package's feature caches."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from ssddbc._errors import FeatureCacheError, InvalidInputError
from ssddbc.compat.analysis import analyze_cluster_composition
from ssddbc.compat.cluster_quality import CLUSTER_DISTANCE_METHODS
from ssddbc.compat.kmeans import test_kmeans_baseline
from ssddbc.compat.labeled_acc import compute_labeled_acc_with_unknown_penalty
from ssddbc.compat.loss import compute_total_loss
from ssddbc.compat.superclass import format_value, score_note
from ssddbc.data import EnhancedDataset, FeatureLoader
from ssddbc.evaluation import split_cluster_acc_v1, split_cluster_acc_v2
from ssddbc.ssddbc._params import AlgorithmParams
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

__all__ = ["test_adaptive_clustering_on_superclass"]

#: The algorithm's defaults, from the one table (ssddbc.ssddbc._params).
_DEFAULTS = AlgorithmParams()


def test_adaptive_clustering_on_superclass(
    superclass_name: str,
    model_path: str | None,
    use_train_and_test: bool = True,
    k: int = 10,
    density_percentile: float = 75,
    random_state: int = 0,
    eval_version: str = "v1",
    run_kmeans_baseline: bool = False,
    use_l2: bool = True,
    feature_cache_dir: str | Path | None = None,
    eval_dense: bool = False,
    fast_mode: bool = False,
    dense_method: int = _DEFAULTS.dense_method,
    assign_model: int = _DEFAULTS.assign_model,
    voting_k: int = _DEFAULTS.voting_k,
    co_mode: int = _DEFAULTS.co_mode,
    co_manual: float | None = _DEFAULTS.co_manual,
    detail_dense: bool = False,
    label_guide: bool = False,
    use_cluster_quality: bool = False,
    cluster_distance_method: int = 1,
    l1_type: str = "cross_entropy",
    separation_weight: float = 1.0,
    penalty_weight: float = 1.0,
    l2_components: Sequence[str] | str | None = None,
    l2_component_weights: dict[str, float] | None = None,
    l2_component_params: dict[str, dict[str, Any]] | None = None,
    *,
    allow_pickle: bool = False,
    file: IO[str] | None = None,
) -> dict[str, Any]:
    """The original's one-superclass test: cluster, score, optionally compare with k-means.

    Reads ``<feature_cache_dir>/<superclass_name>/features.npz`` (or the original's
    ``features.pkl``, with the restricted unpickler) through :class:`ssddbc.data.FeatureLoader`,
    runs :func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering` on all
    samples, evaluates the test part (v1 or v2), computes the original's total loss
    (:func:`ssddbc.evaluation.compute_total_loss`) and the labelled accuracy with the
    unknown-cluster penalty, and returns the original's result dict.

    Parameters
    ----------
    superclass_name : str
        Superclass folder of the cache (CIFAR-100 names or any other, e.g. ``digits_low``).
    model_path : str or None
        Accepted for compatibility: features are never extracted here, so it is unused (said
        so unless ``fast_mode``). A missing cache is an error naming it.
    use_train_and_test : bool
        Accepted; a cache always holds both splits and all samples are clustered (the
        original ignored it when the cache existed, too).
    k, density_percentile, random_state, dense_method, assign_model, voting_k, co_mode,
    co_manual, detail_dense, label_guide, eval_dense, fast_mode
        Passed to ``adaptive_density_clustering``. ``dense_method=1`` and ``assign_model=3``
        are the defaults here: the original's (0 and 2) made it raise.
    eval_version : {"v1", "v2"}
        Accuracy version.
    run_kmeans_baseline : bool
        Also run :func:`ssddbc.compat.kmeans.test_kmeans_baseline` on the test part with
        the true number of test classes (adds ``kmeans_*`` keys).
    use_l2 : bool
        Read ``feature_cache_dir`` (True) or the ``features_nol2`` cache beside it.
    feature_cache_dir : str or pathlib.Path
        Cache root; required (the original defaulted to its configuration file's path).
    use_cluster_quality, cluster_distance_method, l1_type, separation_weight,
    penalty_weight, l2_components, l2_component_weights, l2_component_params
        The loss, as in the original: without ``l2_components``, ``use_cluster_quality``
        selects ``separation`` and ``penalty``; ``cluster_distance_method`` 1, 2, 3 is
        ``nearest_k``, ``all_pairs``, ``prototype``.
    allow_pickle : bool
        Keyword-only: unpickle ``features.pkl`` without restriction (only your own files).
    file : text stream, optional
        Keyword-only: where the report goes unless ``fast_mode`` (standard output).

    Returns
    -------
    dict
        The original's keys: ``method``, ``all_acc``, ``old_acc``, ``new_acc``,
        ``n_clusters``, ``unknown_clusters``, ``dbcv`` (None), ``labeled_acc``, ``loss``,
        ``l1``, ``l2``, ``loss_dict``, ``l2_components``, ``l2_component_weights``,
        ``l2_component_params``, ``dataset`` (an :class:`ssddbc.data.EnhancedDataset`), the
        ``train_*`` / ``test_*`` arrays, ``labels``, ``core_points``, ``best_params`` and,
        with ``run_kmeans_baseline``, ``kmeans_all_acc`` ... ``kmeans_n_clusters`` (the
        original's keys, exactly). Unless ``fast_mode``, a closing ``note:`` line says how
        ``loss`` differs from ``ssddbc-search``'s score of the same cell;
        :func:`ssddbc.compat.superclass.run_test_superclass` records the same in its
        result's ``score_note``.

    Raises
    ------
    FeatureCacheError
        No cache for the superclass, or a malformed or refused file.
    InvalidInputError
        Bad parameters, or ``feature_cache_dir`` missing.
    """
    out = sys.stdout if file is None else file
    if feature_cache_dir is None:
        raise InvalidInputError(
            "feature_cache_dir", "give the feature cache root; there is no configured default"
        )
    if eval_version not in ("v1", "v2"):
        raise InvalidInputError("eval_version", f"expected 'v1' or 'v2', got {eval_version!r}")
    if cluster_distance_method not in CLUSTER_DISTANCE_METHODS:
        raise InvalidInputError(
            "cluster_distance_method", f"expected 1, 2 or 3, got {cluster_distance_method!r}"
        )
    loader = FeatureLoader(feature_cache_dir)
    root = Path(loader.cache_base_dir if use_l2 else loader.cache_base_dir_nol2)
    if not root.is_dir():
        raise FeatureCacheError(str(root), "feature cache directory does not exist")
    feature_dict = loader.load(superclass_name, use_l2=use_l2, allow_pickle=allow_pickle)
    if feature_dict is None:
        raise FeatureCacheError(
            loader.get_cache_path(superclass_name, use_l2=use_l2),
            "no feature cache for this superclass (features are not extracted from a model "
            "here: write the cache first)",
        )
    dataset = EnhancedDataset(feature_dict, superclass_name, use_l2, "cache")
    if not fast_mode:
        print(
            f"SS-DDBC on {superclass_name}: k={k}, density_percentile={density_percentile}",
            file=out,
        )
        if model_path is not None:
            print(f"model_path {model_path!r} unused: features read from the cache", file=out)
        dataset.print_summary(file=out)
    X, targets, known_mask, labeled_mask, train_size = dataset.get_clustering_input()
    result = adaptive_density_clustering(
        X,
        targets,
        known_mask,
        labeled_mask,
        k,
        density_percentile,
        random_state,
        train_size,
        co_mode,
        co_manual,
        eval_dense,
        eval_version,
        fast_mode,
        dense_method,
        assign_model,
        voting_k,
        detail_dense,
        label_guide,
    )
    acc = split_cluster_acc_v1 if eval_version == "v1" else split_cluster_acc_v2
    if eval_dense:
        predictions, n_clusters, unknown, all_acc, old_acc, new_acc = result[:6]
        neighbors, core_clusters = result[7], result[8]
        category: dict[int, int] = {}
        test_data = dataset.get_test_subset()
    else:
        predictions, n_clusters, unknown, _, category, neighbors, core_clusters, _ = result
        test_data = dataset.get_test_subset(predictions)
        all_acc, old_acc, new_acc = acc(
            test_data["targets"], test_data["predictions"], test_data["known_mask"]
        )
        if not fast_mode:
            analyze_cluster_composition(
                predictions, targets, known_mask, labeled_mask, unknown, file=out
            )

    if l2_components is None:
        names = ["separation", "penalty"] if use_cluster_quality else []
    elif isinstance(l2_components, str):
        names = [c.strip() for c in l2_components.split(",") if c.strip()]
    else:
        names = list(l2_components)
    weights = {str(key): float(val) for key, val in (l2_component_weights or {}).items()}
    if "separation" in names:
        weights.setdefault("separation", separation_weight)
    if "penalty" in names:
        weights.setdefault("penalty", penalty_weight)
    params = {str(key): dict(val) for key, val in (l2_component_params or {}).items()}
    quality_flag = use_cluster_quality and l2_components is None
    clusters_for_l2 = None
    if quality_flag or "separation" in names:
        if core_clusters is None:
            raise InvalidInputError(
                "l2_components", "the separation component needs core clusters (not eval_dense)"
            )
        clusters_for_l2 = core_clusters
    loss = compute_total_loss(
        X=X,
        predictions=predictions,
        targets=targets,
        labeled_mask=labeled_mask,
        cluster_category_labels=category,
        l1_weight=1.0,
        l2_weight=1.0,
        l1_type=l1_type,
        # use_cluster_quality is already resolved into the components above; passing it on
        # would only trigger compute_total_loss's "ignored" warning, as the original did.
        use_cluster_quality=False,
        clusters=clusters_for_l2,
        k=k,
        cluster_distance_method=CLUSTER_DISTANCE_METHODS[cluster_distance_method],
        neighbors=neighbors,
        separation_weight=separation_weight,
        penalty_weight=penalty_weight,
        silent=fast_mode,
        l2_components=names,
        l2_component_weights=weights,
        l2_component_params=params,
    )
    if not eval_dense:
        labeled_acc, metrics = compute_labeled_acc_with_unknown_penalty(
            predictions, targets, labeled_mask, unknown
        )
        loss["l1_metrics"]["accuracy"] = labeled_acc
        loss["l1_metrics"].update(metrics)
    kmeans: dict[str, Any] = {}
    if run_kmeans_baseline:
        base = test_kmeans_baseline(
            test_data["features"],
            test_data["targets"],
            test_data["known_mask"],
            n_clusters=int(np.unique(test_data["targets"]).size),
            random_state=0,
            eval_version=eval_version,
        )
        kmeans = {f"kmeans_{key}": base[key] for key in ("all_acc", "old_acc", "new_acc")}
        kmeans["kmeans_n_clusters"] = base["n_clusters"]
    if not fast_mode:
        print(
            f"All {format_value(all_acc)}  Old {format_value(old_acc)}  "
            f"New {format_value(new_acc)}  ({eval_version}, test part)  clusters {n_clusters}  "
            f"loss {format_value(loss['total_loss'])}",
            file=out,
        )
        print(f"note: {_loss_note(names, len(X))}", file=out)
    results: dict[str, Any] = {
        "method": "SS-DDBC",
        "all_acc": all_acc,
        "old_acc": old_acc,
        "new_acc": new_acc,
        "n_clusters": n_clusters,
        "unknown_clusters": unknown,
        "dbcv": None,
        "labeled_acc": loss["l1_metrics"].get("accuracy"),
        "loss": loss["total_loss"],
        "l1": loss["l1"],
        "l2": loss["l2"],
        "loss_dict": loss,
        "l2_components": names,
        "l2_component_weights": weights,
        "l2_component_params": params,
        "dataset": dataset,
        "test_features": dataset.test_features,
        "test_targets": dataset.test_targets,
        "test_known_mask": dataset.test_known_mask,
        "train_features": dataset.train_features,
        "train_targets": dataset.train_targets,
        "train_known_mask": dataset.train_known_mask,
        "train_labeled_mask": dataset.train_labeled_mask,
        "labels": predictions,
        "core_points": np.flatnonzero(np.asarray(predictions) != -1).tolist(),
        "best_params": {"k": k, "density_percentile": density_percentile},
    }
    results.update(kmeans)
    return results


def _loss_note(components: Sequence[str], n: int) -> str:
    """How ``loss`` relates to ``ssddbc-search``'s label-only score of the same cell."""
    text = (
        "loss is the original's total loss (+L1 + L2 of the components given), not "
        "ssddbc-search's label-only score (-L1 + 3 * silhouette)"
    )
    sampled = score_note(n)
    if "silhouette" in components and sampled is not None:
        text += f"; {sampled}"
    return text


# A library function that keeps the original's name: not a pytest test.
test_adaptive_clustering_on_superclass.__test__ = False  # type: ignore[attr-defined]
