"""In-memory SS-DDBC grid search for training code (the training-loop scenario).

Training code reclusters every few epochs on features that changed, so by default every
call opens a private :class:`knncache.EphemeralStore` and removes it on every exit path: the
next call, on new features, can never be served an old graph. Pass ``store=`` to reuse a
store across calls (a :class:`knncache.PersistentStore` keyed by the features' fingerprint
can never serve a stale graph either) and ``executor=`` to run the configurations elsewhere.

Selection uses only the label-only score (``-L1 + 3 * silhouette``, see
:func:`ssddbc.evaluation.selection_score`): ground truth outside the labelled samples never
influences which parameters are chosen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knncache import EphemeralStore, KnnStore
from ssddbc._errors import SearchConfigError, SsddbcError
from ssddbc.grid_search._execution import Engine, ProgressReporter, make_engine, run_tasks
from ssddbc.grid_search._inputs import (
    SharedInputs,
    hold,
    prepare_inputs,
    prepare_with_fallback,
)
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search._summary import select_best
from ssddbc.grid_search._tasks import (
    ConfigResult,
    ConfigTask,
    clear_resources,
    run_configuration,
)
from ssddbc.grid_search._validate import validate_grid, validate_search_inputs
from ssddbc.grid_search._workers import resolve_n_jobs
from ssddbc.ssddbc._params import AlgorithmParams

__all__ = [
    "AlgorithmParams",
    "ClusteringSearchResult",
    "SearchFailedError",
    "SearchPlan",
    "run_clustering_search_on_features",
    "select_best",
]


class SearchFailedError(SsddbcError, RuntimeError):
    """Every configuration of a search raised; ``errors`` maps (k, dp) to the error text."""

    def __init__(self, errors: dict[tuple[int, int], str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.items()), ((0, 0), "no configuration ran"))
        super().__init__(
            f"all {len(self.errors)} configurations failed; first, k={first[0][0]} "
            f"density_percentile={first[0][1]}: {first[1]}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


@dataclass
class ClusteringSearchResult:
    """What :func:`run_clustering_search_on_features` returns.

    Attributes
    ----------
    labels : ndarray of shape (N,)
        Final cluster id of every sample at the selected configuration.
    core_points : ndarray
        Sorted indices of the samples in the core clusters (pseudo-label anchors).
    best_params : dict
        ``{"k": ..., "density_percentile": ...}`` selected by the label-only score.
    score : float
        The selected configuration's score (higher is better); also readable as ``loss``,
        the original code's name for it.
    n_clusters : int
        Number of clusters at the selected configuration.
    densities : ndarray of shape (N,) or None
        Absolute densities at the selected configuration.
    results_grid : dict or None
        With ``return_all=True``: ``(k, density_percentile)`` → metrics dict (score, l1_loss,
        silhouette, all/old/new accuracy (v2) on the evaluation mask, n_clusters).
    errors : dict
        ``(k, density_percentile)`` → error text for configurations that raised.
    knn_searches : int
        Neighbour searches this call ran (0 when the store already held the graph).
    """

    labels: np.ndarray
    core_points: np.ndarray
    best_params: dict[str, int]
    score: float
    n_clusters: int
    densities: np.ndarray | None = None
    results_grid: dict[tuple[int, int], dict[str, Any]] | None = None
    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    knn_searches: int = 0

    @property
    def loss(self) -> float:
        """The original code's name for :attr:`score` (it is a score: higher is better)."""
        return self.score


def run_clustering_search_on_features(
    features: np.ndarray,
    targets: Sequence[int] | np.ndarray,
    known_mask: Sequence[bool] | np.ndarray,
    labeled_mask: Sequence[bool] | np.ndarray | None = None,
    *,
    k_range: Iterable[int],
    density_range: Iterable[int],
    random_state: int = 0,
    silent: bool = True,
    max_workers: int | None = None,
    return_all: bool = False,
    store: KnnStore | None = None,
    executor: Executor | None = None,
    eval_mask: Sequence[bool] | np.ndarray | None = None,
    params: AlgorithmParams | None = None,
    plan: SearchPlan | None = None,
) -> ClusteringSearchResult:
    """Grid-search SS-DDBC's ``k`` and density percentile on in-memory features.

    Parameters
    ----------
    features : array of shape (N, d)
        Features (cast to float32, as the original did).
    targets : array of shape (N,)
        Class ids; only the labelled samples' values influence the selection.
    known_mask : array of shape (N,)
        True for samples of known classes (boolean or 0/1).
    labeled_mask : array of shape (N,) or None
        True where the label may be used; None means ``known_mask`` (the original's default).
    k_range, density_range : iterables of int
        The grid, e.g. ``range(3, 21)`` and ``range(40, 100, 5)``.
    random_state : int
        Kept for compatibility; SS-DDBC is deterministic.
    silent : bool
        False shows a progress bar.
    max_workers : int or None
        Local worker processes, as joblib's ``n_jobs``: None or -1 every usable core, -2
        all but one, 1 in this process (same code path); more than the usable cores is
        capped with an :class:`~ssddbc.SsddbcWarning`; 0 is an error.
    return_all : bool
        Also return every configuration's metrics in ``results_grid``.
    store : KnnStore or None
        Where the neighbour graph and shared arrays live. None: a private
        :class:`knncache.EphemeralStore`, removed when the call returns or raises.
    executor : Executor or None
        Run the configurations on this executor instead of a local pool, for example a Dask
        ``client.get_executor()`` (optional extra ``knncache[dask]``). Its workers open the
        store's files by path: on workers of other hosts, pass a ``store`` on a filesystem
        they all mount at the same path (a ``PersistentStore`` there, or
        ``EphemeralStore(dir=...)`` inside it); the default temporary store is local. A
        configuration the executor fails to run (a Dask ``KilledWorker``) is reported in
        ``errors`` like one that raised.
    eval_mask : array of shape (N,) or None
        Samples the reported accuracies are computed on (default: the unlabelled samples,
        the standard GCD protocol). Never used for the selection.
    params : AlgorithmParams or None
        Fixed algorithm options (default: ``AlgorithmParams()``, the table in
        :mod:`ssddbc.ssddbc._params`).
    plan : SearchPlan or None
        Route thresholds (pairwise matrix or candidate graph; default
        :data:`~ssddbc.grid_search._plan.DEFAULT_PLAN`).

    Returns
    -------
    ClusteringSearchResult

    Raises
    ------
    InvalidInputError
        Bad features, targets or masks (raised before any work).
    SearchConfigError
        Empty or invalid ``k_range`` / ``density_range``.
    SearchFailedError
        Every configuration raised.
    """
    del random_state  # deterministic algorithm: nothing to seed
    inputs = validate_search_inputs(features, targets, known_mask, labeled_mask, eval_mask)
    ks, dps = validate_grid(k_range, density_range, n_samples=inputs.features.shape[0])
    if params is None:
        params = AlgorithmParams()
    elif not isinstance(params, AlgorithmParams):
        raise SearchConfigError("params", f"expected an AlgorithmParams, got {params!r}")
    plan = plan or DEFAULT_PLAN
    n_workers = 1 if executor is not None else resolve_n_jobs(max_workers, name="max_workers")

    with contextlib.ExitStack() as scope:
        # This call's scope: the memory maps this process opened (the rerun of the selected
        # cell) are dropped, and a temporary store removed, when it ends.
        if store is None:
            store = scope.enter_context(EphemeralStore())
        scope.callback(clear_resources)
        prepared = prepare_with_fallback(
            store,
            scope,
            lambda into: prepare_inputs(
                into,
                inputs.features,
                inputs.targets,
                inputs.known_mask,
                inputs.labeled_mask,
                inputs.eval_mask,
                k_max=max(ks),
                plan=plan,
                pin_into=scope,
            ),
            what=f"knncache store {store.root}",
        )
        hold(scope, prepared)
        order = [(k, dp) for k in ks for dp in dps]
        engine = make_engine(n_workers, len(order), executor)
        return _search(
            prepared.shared, order, params, engine, silent, return_all, prepared.searches
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _search(
    shared: SharedInputs,
    order: list[tuple[int, int]],
    params: AlgorithmParams,
    engine: Engine,
    silent: bool,
    return_all: bool,
    searches: int,
) -> ClusteringSearchResult:
    tasks = [
        ConfigTask(shared=shared, k=k, density_percentile=dp, params=params) for k, dp in order
    ]
    results: list[ConfigResult] = []
    progress = ProgressReporter(len(tasks), "SS-DDBC grid search", enabled=not silent)
    try:
        with engine:
            run_tasks(tasks, engine=engine, on_result=results.append, progress=progress)
    finally:
        progress.close()

    errors = {(r.k, r.density_percentile): r.error for r in results if not r.ok}
    try:
        best = select_best(results, order)
    except ValueError:
        raise SearchFailedError(errors) from None

    # Rerun the selected cell here to get its per-sample outputs: results crossing the
    # process boundary stay small, and the algorithm is deterministic.
    best_task = ConfigTask(
        shared=shared, k=best.k, density_percentile=best.density_percentile, params=params
    )
    out, _ = run_configuration(best_task)
    core_clusters = out.core_clusters
    core = sorted({int(i) for cluster in core_clusters for i in cluster})
    grid = None
    if return_all:
        by_cell = {(r.k, r.density_percentile): r for r in results}
        grid = {cell: by_cell[cell].metrics() for cell in order if by_cell[cell].ok}
    return ClusteringSearchResult(
        labels=np.array(out.labels, copy=True),
        core_points=np.asarray(core, dtype=np.int64),
        best_params={"k": best.k, "density_percentile": best.density_percentile},
        score=best.score,
        n_clusters=int(out.n_clusters),
        densities=np.array(out.densities, copy=True),
        results_grid=grid,
        errors=errors,
        knn_searches=searches,
    )
