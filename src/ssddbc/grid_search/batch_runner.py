"""Offline SS-DDBC grid search over per-superclass feature caches (``ssddbc-search``).

For every superclass ``S`` of a feature cache, the neighbour graph lives in a persistent
knncache store at ``<feature_cache_dir>/S/knn_cache/``, keyed by the features' fingerprint:
a second run over unchanged features runs no neighbour search at all, and changed features
are detected and recomputed without any flag. Every configuration is journaled to
``results.csv`` as it finishes; ``--resume RUN_DIR`` completes only what is missing, and
refuses if any input changed since the run started.

Run ``ssddbc-search --help`` for the flags. With no ``--feature_cache_dir`` it builds the
built-in digits demo cache and searches it. ``--scheduler`` runs the configurations on a Dask
cluster instead of a local process pool (optional extra ``knncache[dask]``; ``distributed`` is
imported only then).

Every flag of the original research code's batch runner is accepted with its meaning
(half-open ``--k_max`` / ``--density_max``, its defaults k 3..20 x density 40..90 step 5 = 198
configurations, ``--superclass_file``, ``--model_path``, its fixed-behaviour flags). Its
library functions are here too: :func:`run_grid_search` (one superclass, through this
package's grid search, writing the original's text report and returning its path) and
:func:`parse_superclasses`.

This module is the console script's entry point; the flow starts in
:mod:`ssddbc.grid_search._cli` (argv → :class:`~ssddbc.grid_search._batch_config.BatchConfig`
→ the run → summary and plots).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from knncache import PersistentStore
from ssddbc._errors import InvalidInputError, SearchConfigError
from ssddbc.data import FeatureLoader, load_superclass
from ssddbc.evaluation import evaluation_mask
from ssddbc.grid_search._cli import run_batch
from ssddbc.grid_search._console import EXIT_BAD_INPUT
from ssddbc.grid_search._original_flags import ORIGINAL_L2_COMPONENTS, parse_superclasses
from ssddbc.grid_search._parser import DEFAULT_DEMO_DIR, DEFAULT_OUTPUT_DIR, build_parser
from ssddbc.grid_search._report import format_text_report, write_text_report
from ssddbc.grid_search._workers import usable_cores
from ssddbc.grid_search.api import run_clustering_search_on_features
from ssddbc.ssddbc._params import AlgorithmParams

__all__ = [
    "DEFAULT_DEMO_DIR",
    "DEFAULT_OUTPUT_DIR",
    "EXIT_BAD_INPUT",
    "build_parser",
    "main",
    "parse_superclasses",
    "run_batch",
    "run_grid_search",
]


def run_grid_search(
    superclass: str,
    model_path: str | None,
    k_values: Iterable[int],
    density_values: Iterable[int],
    *,
    output_dir: Path,
    eval_version: str,
    co_mode: int,
    co_manual: float | None,
    use_l2: bool,
    eval_dense: bool,
    dense_method: int,
    assign_model: int,
    voting_k: int,
    use_train_and_test: bool,
    detail_dense: bool,
    use_cluster_quality: bool = False,
    cluster_distance_method: int = 1,
    l1_type: str = "cross_entropy",
    l2_components: Sequence[str] | None = None,
    max_workers: int | None = None,
    feature_cache_dir: str | None = None,
    use_parallel: bool = True,
    allow_pickle: bool = False,
    silent: bool = False,
) -> Path:
    """The original's one-superclass grid search: search, write its text report, return it.

    Runs :func:`ssddbc.grid_search.api.run_clustering_search_on_features` on
    ``<feature_cache_dir>/<superclass>`` with the neighbour graph in that superclass's
    persistent knncache store (``<feature_cache_dir>/<superclass>/knn_cache/``), the
    accuracies (v2) on the test part (indices >= train size), as the original did, and writes
    ``<output_dir>/<superclass>_<MM_DD_HH_MM>[_parallel].txt`` in the original's format (see
    :mod:`ssddbc.grid_search._report`): ``Best params`` is the original's test-accuracy
    choice, the next line the label-only selection.

    Parameters
    ----------
    superclass : str
        Superclass folder of the feature cache.
    model_path : str or None
        Accepted: features are never extracted here (a missing cache is an error).
    k_values, density_values : iterables of int
        The grid, e.g. ``range(3, 21)`` and ``range(40, 95, 5)``.
    output_dir : pathlib.Path
        Folder of the report (created if needed).
    eval_version : {"v2"}
        The grid search reports accuracy v2 (the original runner's fixed value).
    co_mode, co_manual, dense_method, assign_model, voting_k
        The algorithm options (:class:`~ssddbc.ssddbc._params.AlgorithmParams`).
    use_l2 : bool
        Read ``feature_cache_dir`` (True) or the ``features_nol2`` root beside it, as
        :class:`ssddbc.data.FeatureLoader` does.
    eval_dense : bool
        Must be False (the original runner's fixed value; the high-density-only evaluation
        is :func:`~ssddbc.ssddbc.adaptive_clustering.adaptive_density_clustering`'s).
    use_train_and_test, detail_dense, use_cluster_quality, cluster_distance_method
        Accepted (train and test are always clustered together; nothing is printed per
        configuration; the label-only score is fixed). ``cluster_distance_method`` must be
        1, 2 or 3.
    l1_type : {"cross_entropy"}
        The L1 of the score.
    l2_components : sequence of str or None
        None or the original runner's ``["separation", "silhouette"]``; echoed in the report.
    max_workers : int or None
        Worker processes; None is the original's default, half the usable cores (at least
        one, at most the number of configurations).
    feature_cache_dir : str
        Feature cache root (required: there is no configured default here).
    use_parallel : bool
        False runs in this process (``max_workers`` 1); it also drops the ``_parallel``
        suffix, as in the original.
    allow_pickle : bool
        Keyword-only addition: unpickle ``features.pkl`` without restriction.
    silent : bool
        Keyword-only addition: no progress output.

    Returns
    -------
    pathlib.Path
        The report written.

    Raises
    ------
    InvalidInputError, SearchConfigError
        A bad or unsupported option, before any work.
    FeatureCacheError
        No cache for ``superclass``, or a malformed one.
    SearchFailedError
        Every configuration raised.
    """
    ks, dps = list(k_values), list(density_values)
    if eval_version != "v2":
        raise SearchConfigError(
            "eval_version", f"the grid search reports accuracy v2 only, got {eval_version!r}"
        )
    if eval_dense:
        raise SearchConfigError(
            "eval_dense",
            "the grid search evaluates every sample (eval_dense=False), as the original runner",
        )
    if l1_type != "cross_entropy":
        raise SearchConfigError("l1_type", f"only 'cross_entropy' is supported, got {l1_type!r}")
    if cluster_distance_method not in (1, 2, 3):
        raise SearchConfigError(
            "cluster_distance_method", f"expected 1, 2 or 3, got {cluster_distance_method!r}"
        )
    if l2_components is not None and (
        isinstance(l2_components, str) or set(l2_components) != ORIGINAL_L2_COMPONENTS
    ):
        raise SearchConfigError(
            "l2_components",
            f"only ['separation', 'silhouette'] is supported, got {l2_components!r}",
        )
    if feature_cache_dir is None:
        raise InvalidInputError(
            "feature_cache_dir", "give the feature cache root; there is no configured default"
        )
    params = AlgorithmParams(
        dense_method=dense_method,
        co_mode=co_mode,
        co_manual=co_manual,
        assign_model=assign_model,
        voting_k=voting_k,
    )
    if not use_parallel:
        workers = 1
    elif max_workers is None:
        workers = max(1, min(usable_cores() // 2, len(ks) * len(dps)))
    else:
        workers = max_workers
    del use_train_and_test, detail_dense, use_cluster_quality  # accepted, no effect here
    loader = FeatureLoader(feature_cache_dir)
    root = Path(loader.cache_base_dir if use_l2 else loader.cache_base_dir_nol2)
    data = load_superclass(root, superclass, allow_pickle=allow_pickle)
    mask = evaluation_mask(
        data.n, train_size=data.train_size, labeled_mask=data.labeled_mask, mode="test"
    )
    output_dir = Path(output_dir)
    started = time.monotonic()
    result = run_clustering_search_on_features(
        data.features,
        data.targets,
        data.known_mask,
        data.labeled_mask,
        k_range=ks,
        density_range=dps,
        silent=silent,
        max_workers=workers,
        return_all=True,
        store=PersistentStore(root / superclass / "knn_cache"),
        eval_mask=mask,
        params=params,
    )
    seconds = time.monotonic() - started
    stamp = datetime.now().strftime("%m_%d_%H_%M")
    path = output_dir / f"{superclass}_{stamp}{'_parallel' if use_parallel else ''}.txt"
    text = format_text_report(
        superclass,
        result.results_grid or {},
        k_values=ks,
        density_values=dps,
        model_path=None if model_path is None else str(model_path),
        feature_cache_dir=str(feature_cache_dir),
        workers=workers,
        seconds=seconds,
        selected=(result.best_params["k"], result.best_params["density_percentile"]),
        l2_components=None if l2_components is None else list(l2_components),
        failed=list(result.errors),
    )
    return write_text_report(path, text)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``ssddbc-search``: run and exit with its status."""
    raise SystemExit(run_batch(argv))


if __name__ == "__main__":
    main()
