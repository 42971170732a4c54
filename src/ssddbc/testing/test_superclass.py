"""Run one SS-DDBC configuration on one superclass of a feature cache and report it.

``run_test_superclass`` loads ``<feature_cache_dir>/<superclass>``, runs
``adaptive_density_clustering`` with one ``(k, density_percentile)`` and, on the same split,
the k-means and semi-supervised k-means baselines; it prints a metrics table (All/Old/New
accuracy v2 on the evaluation samples, number of clusters, SS-DDBC's label-only selection
score) and returns the same numbers as a dict.

Command line::

    python -m ssddbc.testing.test_superclass --feature_cache_dir D --superclass S \\
        --k 10 --density_percentile 75

The original's entry point :func:`test_adaptive_clustering_on_superclass` is here too, with
its parameters and result dict, working on this package's feature caches; and the command
line accepts every flag of the original's ``python -m ssddbc.testing.main`` (``--eval_version
v2 --fast_mode False ...``): given any of them, it runs as that command.

(The module keeps the original's name; it is not a pytest file: its one ``test_*`` function
is marked ``__test__ = False``.)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

from ssddbc._errors import SsddbcError
from ssddbc.baselines import kmeans_baseline, semi_supervised_kmeans
from ssddbc.data import SuperclassData, load_superclass
from ssddbc.evaluation import evaluation_mask, selection_score, split_cluster_acc_v2
from ssddbc.ssddbc._params import AlgorithmParams, add_algorithm_arguments
from ssddbc.ssddbc._result import ClusteringResult

__all__ = [
    "PAIRWISE_MAX_N",
    "format_table",
    "main",
    "run_on_data",
    "run_test_superclass",
    "test_adaptive_clustering_on_superclass",
]

#: Up to this many samples the (N, N) float32 distance matrix (here 256 MB) is computed once
#: and shared by the clustering and the silhouette; above it both work blockwise.
PAIRWISE_MAX_N = 8192

#: The algorithm's defaults, from the one table (ssddbc.ssddbc._params).
_DEFAULTS = AlgorithmParams()

_EVAL_DESCRIPTION = {
    "test": "test part (indices >= train_size)",
    "unlabelled": "unlabelled samples",
    "all": "all samples",
}


def _accuracies(
    targets: np.ndarray, labels: np.ndarray, known: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    all_acc, old_acc, new_acc = split_cluster_acc_v2(targets[mask], labels[mask], known[mask])
    return {"all_acc": all_acc, "old_acc": old_acc, "new_acc": new_acc}


def run_on_data(
    data: SuperclassData,
    *,
    k: int = 10,
    density_percentile: float = 75,
    eval_mode: str = "test",
    dense_method: int = _DEFAULTS.dense_method,
    co_mode: int = _DEFAULTS.co_mode,
    co_manual: float | None = _DEFAULTS.co_manual,
    assign_model: int = _DEFAULTS.assign_model,
    voting_k: int = _DEFAULTS.voting_k,
    n_clusters: int | None = None,
    seed: int = 0,
    baselines: bool = True,
) -> dict[str, Any]:
    """Run and score SS-DDBC (and the baselines) on already loaded data.

    See :func:`run_test_superclass` for the parameters and the result.
    """
    # Imported here: the clustering layer is the heaviest import of the package.
    from ssddbc._distances import pairwise_euclidean
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    mask = evaluation_mask(
        data.n,
        train_size=data.train_size,
        labeled_mask=data.labeled_mask,
        mode=eval_mode,  # type: ignore[arg-type]  # validated there, with a clear error
    )
    pairwise = pairwise_euclidean(data.features) if data.n <= PAIRWISE_MAX_N else None

    start = time.perf_counter()
    out = adaptive_density_clustering(
        data.features,
        data.targets,
        data.known_mask,
        data.labeled_mask,
        k=k,
        density_percentile=density_percentile,
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
        pairwise_distances=pairwise,
    )
    seconds = time.perf_counter() - start
    assert isinstance(out, ClusteringResult)  # eval_dense=False: the named result
    labels = np.asarray(out.labels)
    score = selection_score(
        labels,
        data.targets,
        data.labeled_mask,
        pairwise_distances=pairwise,
        X=data.features,
        core_clusters=out.core_clusters,
    )
    methods: dict[str, dict[str, Any]] = {
        "SS-DDBC": {
            **_accuracies(data.targets, labels, data.known_mask, mask),
            "n_clusters": int(out.n_clusters),
            "n_unknown_clusters": len(out.unknown_clusters),
            "score": score.score,
            "l1_loss": score.l1_loss,
            "silhouette": score.silhouette,
            "separation_score": score.separation_score,
            "seconds": seconds,
        }
    }
    n_base = int(np.unique(data.targets).size) if n_clusters is None else int(n_clusters)
    if baselines:
        # Same samples (train and test together) and the same labels as SS-DDBC.
        runs: tuple[tuple[str, Callable[[], np.ndarray]], ...] = (
            ("k-means", lambda: kmeans_baseline(data.features, n_base, seed=seed)),
            (
                "SS-k-means",
                lambda: semi_supervised_kmeans(
                    data.features, data.targets, data.labeled_mask, n_base, seed=seed
                ),
            ),
        )
        for name, run in runs:
            start = time.perf_counter()
            pred = run()
            methods[name] = {
                **_accuracies(data.targets, pred, data.known_mask, mask),
                "n_clusters": int(np.unique(pred).size),
                "seconds": time.perf_counter() - start,
            }
    return {
        "superclass": data.name,
        "source": str(data.source) if data.source is not None else None,
        "n": data.n,
        "d": data.d,
        "train_size": data.train_size,
        "eval_mode": eval_mode,
        "n_evaluated": int(mask.sum()),
        "params": {
            "k": k,
            "density_percentile": density_percentile,
            "dense_method": dense_method,
            "co_mode": co_mode,
            "co_manual": co_manual,
            "assign_model": assign_model,
            "voting_k": voting_k,
        },
        "baseline_n_clusters": n_base,
        "methods": methods,
        "labels": labels,
        "core_points": np.array(
            sorted(set().union(*out.core_clusters)) if out.core_clusters else [], dtype=np.int64
        ),
        "best_params": {"k": k, "density_percentile": density_percentile},
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """The printed report of :func:`run_test_superclass` (a plain-text table)."""
    p = result["params"]
    head = (
        f"{result['superclass']}: N={result['n']}, d={result['d']}, train {result['train_size']}"
        f" / test {result['n'] - result['train_size']}; SS-DDBC k={p['k']}, "
        f"density_percentile={p['density_percentile']}\n"
        f"accuracy v2 on the {_EVAL_DESCRIPTION.get(result['eval_mode'], result['eval_mode'])}"
        f" ({result['n_evaluated']} samples); baselines with "
        f"{result['baseline_n_clusters']} clusters\n"
    )
    cols = ["method", "All", "Old", "New", "clusters", "score", "L1", "silhouette", "time (s)"]
    rows = []
    for name, m in result["methods"].items():
        rows.append(
            [
                name,
                _fmt(m["all_acc"]),
                _fmt(m["old_acc"]),
                _fmt(m["new_acc"]),
                str(m["n_clusters"]),
                _fmt(m.get("score")),
                _fmt(m.get("l1_loss")),
                _fmt(m.get("silhouette")),
                _fmt(m["seconds"], 2),
            ]
        )
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    body = [line(cols), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    return head + "\n".join(body) + "\n"


def run_test_superclass(
    feature_cache_dir: str | Path,
    superclass: str,
    *,
    k: int = 10,
    density_percentile: float = 75,
    eval_mode: str = "test",
    dense_method: int = _DEFAULTS.dense_method,
    co_mode: int = _DEFAULTS.co_mode,
    co_manual: float | None = _DEFAULTS.co_manual,
    assign_model: int = _DEFAULTS.assign_model,
    voting_k: int = _DEFAULTS.voting_k,
    n_clusters: int | None = None,
    seed: int = 0,
    allow_pickle: bool = False,
    baselines: bool = True,
    print_table: bool = True,
    file: IO[str] | None = None,
) -> dict[str, Any]:
    """Run one SS-DDBC configuration and the baselines on one superclass; print and return.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path
        Cache root holding ``<superclass>/features.npz`` (or the original's
        ``features.pkl``, read by the restricted unpickler; see
        :func:`ssddbc.data.load_superclass`).
    superclass : str
        Superclass folder name.
    k, density_percentile, dense_method, co_mode, co_manual, assign_model, voting_k
        Passed to ``adaptive_density_clustering``.
    eval_mode : {"test", "unlabelled", "all"}
        Samples the accuracies are computed on (see :func:`ssddbc.evaluation.evaluation_mask`);
        ``"test"``, the original's choice, scores indices ``>= train_size``.
    n_clusters : int, optional
        Clusters for the baselines; default the number of classes in the superclass.
    seed : int
        Baselines' seed (SS-DDBC is deterministic).
    allow_pickle : bool
        Unpickle ``features.pkl`` without restriction (only for your own files).
    baselines : bool
        Also run k-means and semi-supervised k-means on the same samples and split.
    print_table : bool
        Print :func:`format_table` of the result to ``file`` (default stdout).
    file : text stream, optional

    Returns
    -------
    dict
        ``superclass``, ``source``, ``n``, ``d``, ``train_size``, ``eval_mode``,
        ``n_evaluated``, ``params``, ``baseline_n_clusters``; ``methods`` maps ``"SS-DDBC"``,
        ``"k-means"``, ``"SS-k-means"`` to ``all_acc``, ``old_acc``, ``new_acc`` (v2, ``nan``
        for an empty split), ``n_clusters`` and ``seconds`` (SS-DDBC adds
        ``n_unknown_clusters``, ``score``, ``l1_loss``, ``silhouette``,
        ``separation_score``); ``labels`` (SS-DDBC's), ``core_points`` and ``best_params``
        as the original returned them.

    Raises
    ------
    FeatureCacheError
        On a missing or malformed cache file.
    InvalidInputError
        On invalid parameters (checked before any clustering work).
    """
    data = load_superclass(feature_cache_dir, superclass, allow_pickle=allow_pickle)
    result = run_on_data(
        data,
        k=k,
        density_percentile=density_percentile,
        eval_mode=eval_mode,
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
        n_clusters=n_clusters,
        seed=seed,
        baselines=baselines,
    )
    if print_table:
        print(format_table(result), end="", file=file if file is not None else sys.stdout)
    return result


_DISTANCE_METHOD = {1: "nearest_k", 2: "all_pairs", 3: "prototype"}


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
    dense_method: int = 1,
    assign_model: int = 3,
    voting_k: int = 5,
    co_mode: int = 2,
    co_manual: float | None = None,
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
        Also run :func:`ssddbc.baseline.kmeans.test_kmeans_baseline` on the test part with
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
        with ``run_kmeans_baseline``, ``kmeans_all_acc`` ... ``kmeans_n_clusters``.

    Raises
    ------
    FeatureCacheError
        No cache for the superclass, or a malformed or refused file.
    InvalidInputError
        Bad parameters, or ``feature_cache_dir`` missing.
    """
    from ssddbc._errors import FeatureCacheError, InvalidInputError
    from ssddbc.baseline.kmeans import test_kmeans_baseline
    from ssddbc.data import EnhancedDataset, FeatureLoader
    from ssddbc.evaluation import compute_total_loss, split_cluster_acc_v1
    from ssddbc.information import compute_labeled_acc_with_unknown_penalty
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
    from ssddbc.ssddbc.analysis import analyze_cluster_composition

    out = sys.stdout if file is None else file
    if feature_cache_dir is None:
        raise InvalidInputError(
            "feature_cache_dir", "give the feature cache root; there is no configured default"
        )
    if eval_version not in ("v1", "v2"):
        raise InvalidInputError("eval_version", f"expected 'v1' or 'v2', got {eval_version!r}")
    if cluster_distance_method not in _DISTANCE_METHOD:
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
        cluster_distance_method=_DISTANCE_METHOD[cluster_distance_method],
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
            f"All {_fmt(all_acc)}  Old {_fmt(old_acc)}  New {_fmt(new_acc)}  "
            f"({eval_version}, test part)  clusters {n_clusters}  loss {_fmt(loss['total_loss'])}",
            file=out,
        )
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


# A library function that keeps the original's name: not a pytest test.
test_adaptive_clustering_on_superclass.__test__ = False  # type: ignore[attr-defined]


def _number(text: str) -> float:
    """A percentile as typed: ``40`` stays the int 40 (as the original's grid has it)."""
    value = float(text)
    return int(value) if value.is_integer() else value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


#: Flags this command and the original's testing/main.py share (same meaning).
_SHARED_FLAGS = (
    "k",
    "density_percentile",
    "dense_method",
    "co_mode",
    "co_manual",
    "assign_model",
    "voting_k",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input).

    Every flag of ``python -m ssddbc.testing.main`` is accepted; with any of them besides the
    shared algorithm flags, the command runs as that one (the original's report and result).
    """
    parser = _Parser(
        prog="python -m ssddbc.testing.test_superclass",
        description="Run one SS-DDBC configuration and the k-means / semi-supervised k-means "
        "baselines on one superclass of a feature cache; print All/Old/New accuracy (v2).",
    )
    parser.add_argument("--feature_cache_dir", required=True, help="feature cache root")
    parser.add_argument("--superclass", "--superclass_name", required=True, dest="superclass")
    parser.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    parser.add_argument("--density_percentile", type=_number, default=75, help="0-100 (default 75)")
    parser.add_argument(
        "--eval_mode",
        choices=sorted(_EVAL_DESCRIPTION),
        default="test",
        help="samples scored: test part (default, as the original), unlabelled, all",
    )
    add_algorithm_arguments(parser)
    parser.add_argument("--n_clusters", type=int, default=None, help="baselines' clusters")
    parser.add_argument("--seed", type=int, default=0, help="baselines' seed")
    parser.add_argument(
        "--allow_pickle",
        action="store_true",
        help="unpickle features.pkl without restriction (runs code from the file: only "
        "your own files; by default only arrays and plain containers are read)",
    )
    parser.add_argument("--no_baselines", action="store_true", help="skip the baselines")
    from ssddbc.testing import main as original_cli

    add = original_cli.add_original_arguments
    add(parser, skip=(*_SHARED_FLAGS, "superclass_name"), suppress=True)
    args = parser.parse_args(argv)
    own = {*_SHARED_FLAGS, "superclass_name"}
    given = {
        d: getattr(args, d) for d in original_cli.ORIGINAL_FLAGS if d not in own and d in vars(args)
    }
    if given:
        # Any flag of the original's testing/main.py: run as that command.
        ns = argparse.Namespace(
            **{d: kw.get("default") for d, (_, kw) in original_cli.ORIGINAL_FLAGS.items()}
        )
        vars(ns).update(given)
        try:
            # The shared algorithm flags default to None ("not given"); the one table fills in.
            shared = AlgorithmParams.from_namespace(args)
        except SsddbcError as exc:
            parser.error(str(exc))
        vars(ns).update({"k": args.k, "density_percentile": args.density_percentile})
        vars(ns).update({d: getattr(shared, d) for d in _SHARED_FLAGS[2:]})
        ns.superclass_name = args.superclass
        ns.feature_cache_dir = args.feature_cache_dir
        ns.allow_pickle = args.allow_pickle
        try:
            original_cli.parse_l2_component_weights(ns.l2_component_weights)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --l2_component_weights: {exc}")
        try:
            original_cli.run(ns)
        except SsddbcError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        params = AlgorithmParams.from_namespace(args)
        run_test_superclass(
            args.feature_cache_dir,
            args.superclass,
            k=args.k,
            density_percentile=args.density_percentile,
            eval_mode=args.eval_mode,
            **params.as_kwargs(),
            n_clusters=args.n_clusters,
            seed=args.seed,
            allow_pickle=args.allow_pickle,
            baselines=not args.no_baselines,
        )
    except SsddbcError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
