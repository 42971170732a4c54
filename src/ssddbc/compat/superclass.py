"""One SS-DDBC configuration and the k-means baselines on one superclass of a feature cache.

:func:`run_test_superclass` loads ``<feature_cache_dir>/<superclass>``, runs
``adaptive_density_clustering`` with one ``(k, density_percentile)`` and, on the same split,
k-means and semi-supervised k-means; it prints a metrics table (All/Old/New accuracy v2,
clusters, the label-only selection score) and returns the same numbers as a dict.

Its score uses the exact silhouette over all unlabelled points; ``ssddbc-search`` samples the
silhouette above ``SearchPlan.exact_silhouette_max_n`` points (see
:mod:`ssddbc.grid_search._plan`), so above it the two scores of one cell differ:
:func:`score_note` says so, in the table and the result's ``score_note``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from ssddbc._distances import pairwise_euclidean
from ssddbc.baselines import run_baselines
from ssddbc.data import SuperclassData, load_superclass
from ssddbc.evaluation import evaluation_mask, selection_score, split_cluster_acc_v2
from ssddbc.grid_search._plan import DEFAULT_PLAN
from ssddbc.ssddbc._params import AlgorithmParams
from ssddbc.ssddbc._result import ClusteringResult
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

__all__ = ["PAIRWISE_MAX_N", "format_table", "run_on_data", "run_test_superclass", "score_note"]

#: Up to this many samples the (N, N) float32 distance matrix (here 256 MB) is computed once
#: and shared by the clustering and the silhouette; above it both work blockwise.
PAIRWISE_MAX_N = 8192

#: The algorithm's defaults, from the one table (ssddbc.ssddbc._params).
_DEFAULTS = AlgorithmParams()

#: ``eval_mode`` -> how the report names the scored samples.
EVAL_DESCRIPTION = {
    "test": "test part (indices >= train_size)",
    "unlabelled": "unlabelled samples",
    "all": "all samples",
}


def score_note(n: int, exact_max_n: int = DEFAULT_PLAN.exact_silhouette_max_n) -> str | None:
    """Why this module's score of a cell differs from ``ssddbc-search``'s (None: it does not).

    Parameters
    ----------
    n : int
        Samples of the superclass.
    exact_max_n : int
        The search plan's ``exact_silhouette_max_n``: the largest N whose silhouette the
        search computes exactly (the default plan's unless given).
    """
    if n <= exact_max_n:
        return None
    return (
        f"score: exact silhouette over all unlabelled points; ssddbc-search samples the "
        f"silhouette above N={exact_max_n:,} (here N={n:,}), so its score for this cell "
        "differs (by about the standard error it reports)"
    )


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
        # Same samples (train and test together), labels and split as SS-DDBC.
        methods.update(
            run_baselines(
                data.features,
                data.targets,
                data.known_mask,
                data.labeled_mask,
                mask,
                n_clusters=n_base,
                seed=seed,
            )
        )
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
        "silhouette": "exact",
        "score_note": score_note(data.n),
        "labels": labels,
        "core_points": np.array(
            sorted(set().union(*out.core_clusters)) if out.core_clusters else [], dtype=np.int64
        ),
        "best_params": {"k": k, "density_percentile": density_percentile},
    }


def format_value(value: Any, digits: int = 4) -> str:
    """A report cell: ``n/a`` for None or NaN, floats to ``digits`` places."""
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
        f"accuracy v2 on the {EVAL_DESCRIPTION.get(result['eval_mode'], result['eval_mode'])}"
        f" ({result['n_evaluated']} samples); baselines with "
        f"{result['baseline_n_clusters']} clusters\n"
    )
    cols = ["method", "All", "Old", "New", "clusters", "score", "L1", "silhouette", "time (s)"]
    rows = []
    for name, m in result["methods"].items():
        rows.append(
            [
                name,
                format_value(m["all_acc"]),
                format_value(m["old_acc"]),
                format_value(m["new_acc"]),
                str(m["n_clusters"]),
                format_value(m.get("score")),
                format_value(m.get("l1_loss")),
                format_value(m.get("silhouette")),
                format_value(m["seconds"], 2),
            ]
        )
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    body = [line(cols), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if result.get("score_note"):
        body.append(f"note: {result['score_note']}")
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
        ``separation_score``); ``silhouette`` (``"exact"``: how the score's silhouette was
        computed) and ``score_note`` (:func:`score_note`: why ``ssddbc-search``'s score of
        this cell differs, or None); ``labels`` (SS-DDBC's), ``core_points`` and
        ``best_params`` as the original returned them.

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
