"""In-memory SS-DDBC grid search for training code (the training-loop scenario).

Training code reclusters every few epochs on features that changed, so by default every
call opens a private :class:`knncache.EphemeralStore` and removes it on every exit path: the
next call, on new features, can never be served an old graph. Pass ``store=`` to reuse a
store across calls (a :class:`knncache.PersistentStore` keyed by the features' fingerprint
can never serve a stale graph either) and ``executor=`` to run the configurations elsewhere.

A training loop that reclusters every few epochs keeps one :class:`SearchSession` open: its
worker pool starts once and serves every call, its private store holds only the current
call's entry (each call's entries are removed when the call ends), and
:func:`run_clustering_search_on_features` is a one-shot session whose local workers are the
process's warm pool (:mod:`ssddbc.grid_search._warm`), so repeated calls do not start
processes either.

Selection uses only the label-only score (``-L1 + 3 * silhouette``, see
:func:`ssddbc.evaluation.selection_score`): ground truth outside the labelled samples never
influences which parameters are chosen.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from knncache import EphemeralStore, KnnStore
from ssddbc._errors import SearchConfigError
from ssddbc._metric import check_metric, check_nonzero_rows
from ssddbc.grid_search._diagnose import selection_warnings
from ssddbc.grid_search._execution import Engine, ProgressReporter, make_engine, run_tasks
from ssddbc.grid_search._inputs import (
    SharedInputs,
    check_knn,
    check_knn_for,
    hold,
    prepare_inputs,
    prepare_with_fallback,
)
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search._result import ClusteringSearchResult, SearchFailedError
from ssddbc.grid_search._summary import select_best
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, clear_resources
from ssddbc.grid_search._validate import validate_grid, validate_search_inputs
from ssddbc.grid_search._warm import borrow, shutdown_workers
from ssddbc.grid_search._workers import resolve_n_jobs
from ssddbc.grid_search.pseudo_labels import PseudoLabels, rerun_selected
from ssddbc.ssddbc._params import AlgorithmParams

__all__ = [
    "AlgorithmParams",
    "ClusteringSearchResult",
    "PseudoLabels",
    "SearchFailedError",
    "SearchPlan",
    "SearchSession",
    "run_clustering_search_on_features",
    "select_best",
    "shutdown_workers",
]


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
    metric: str = "euclidean",
    knn_method: str = "exact",
    knn_params: dict[str, Any] | None = None,
) -> ClusteringSearchResult:
    """Grid-search SS-DDBC's ``k`` and density percentile on in-memory features.

    With two or more local workers (and no ``executor``), the worker processes stay up
    between calls, so a training loop that calls this every few epochs pays their start-up
    once: they end after ``ssddbc.grid_search._warm.IDLE_TIMEOUT`` seconds (300) without a
    call, at interpreter exit, or with :func:`shutdown_workers`. Results are the same as
    with fresh workers; a call made while another thread's call runs starts workers of its
    own, and an interrupted call (Ctrl-C) kills the workers it used.

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
        False reports progress on stderr. First each preparation step (the neighbour
        graph, the pairwise matrix or the silhouette sample) as two lines, ``[SS-DDBC grid
        search] <step> ...`` and ``<step>: done in Ts`` (or ``cached``); then a tqdm bar
        on an interactive terminal, elsewhere (a notebook, a log file) a line ``[SS-DDBC
        grid search] done/total configurations, best score S, F failed, Ts`` after the
        first configuration, at most every 5 seconds and after the last one (so a short
        search prints two such lines).
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
    metric : {"euclidean", "cosine"}
        ``"cosine"`` runs SS-DDBC on the L2-normalised rows (see :mod:`ssddbc._metric`): the
        rows equal a ``"euclidean"`` search of ``l2_normalize(features)``. Part of the
        store's key, so graphs of the two metrics never mix.
    knn_method : {"exact", "hnsw", "ivf"}
        The neighbour-graph engine (knncache's). Default exact: the partitions are the
        original's. ``"hnsw"`` or ``"ivf"`` only when asked: faster at large N, but a true
        neighbour may be missing, so the partitions may differ; the result's ``knn_method``
        and ``knn_recall`` say so. On the candidate route (large N) the graph's extra
        columns then serve as approximate candidates too (the code runs the same; only the
        exactness argument of :mod:`ssddbc.ssddbc._candidates` no longer holds).
    knn_params : dict or None
        The engine's parameters (:data:`knncache.ENGINE_DEFAULTS`), e.g. ``{"efSearch":
        128}``; none for exact.

    Returns
    -------
    ClusteringSearchResult

    Raises
    ------
    InvalidInputError
        Bad features, targets or masks, an unknown ``metric``, or under cosine an all-zero
        feature row (raised before any work).
    SearchConfigError
        Empty or invalid ``k_range`` / ``density_range``, or a bad ``knn_method`` /
        ``knn_params`` (raised before any work).
    SearchFailedError
        Every configuration raised.
    """
    with _OneShot(max_workers=max_workers, store=store, executor=executor) as session:
        return session._call(
            features,
            targets,
            known_mask,
            labeled_mask,
            k_range=k_range,
            density_range=density_range,
            random_state=random_state,
            silent=silent,
            return_all=return_all,
            eval_mask=eval_mask,
            params=params,
            plan=plan,
            metric=metric,
            knn_method=knn_method,
            knn_params=knn_params,
        )
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _GraphRequest:
    """The validated metric and neighbour-graph engine of one call."""

    metric: str
    knn_method: str
    knn_params: dict[str, Any]


class SearchSession:
    """Repeated grid searches that pay the worker pool and the store set-up once.

    A context manager: the worker pool is started by the first :meth:`run` and kept until
    the session closes; every call then runs on the same processes. Its store policy: the
    given ``store`` is used as :func:`run_clustering_search_on_features` uses it (entries
    stay, each call's pin and in-use mark end with the call); without one, a private
    :class:`knncache.EphemeralStore` lives as long as the session and each call's entries
    are removed from it when the call ends, so a training loop on changing features does not
    accumulate graphs. Closing the session (leaving the ``with`` block, for any reason)
    ends every worker and removes that store.

    A session may be shared between threads: its calls run one at a time (a call made while
    another runs waits for it, since both would use the one pool and store), and
    :meth:`close` waits for a running call to end. For searches that run side by side, open
    one session per thread.

    Parameters
    ----------
    max_workers : int or None
        Local worker processes, as in :func:`run_clustering_search_on_features`.
    store : KnnStore or None
        Where the neighbour graphs and shared arrays live (see above).
    executor : Executor or None
        Run the configurations on this executor instead of a local pool (it is neither
        started nor shut down by the session).

    Examples
    --------
    >>> with SearchSession(max_workers=2) as session:  # doctest: +SKIP
    ...     for epoch in range(epochs):
    ...         feats = model.embed(data)
    ...         result = session.run(feats, y, known, labeled, k_range=range(3, 21),
    ...                              density_range=range(40, 100, 5))
    """

    def __init__(
        self,
        max_workers: int | None = None,
        store: KnnStore | None = None,
        *,
        executor: Executor | None = None,
    ) -> None:
        self._n_workers = (
            1 if executor is not None else resolve_n_jobs(max_workers, name="max_workers")
        )
        self._executor = executor
        self._store = store
        self._owned: EphemeralStore | None = None
        self._engine: Engine | None = None
        self._closed = False
        # Serialises run() and close() across threads (reentrant: a signal handler in the
        # running thread may close the session).
        self._lock = threading.RLock()

    def __enter__(self) -> SearchSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(interrupted=kind is not None)

    def close(self) -> None:
        """End every worker and remove the session's own store (idempotent)."""
        self._close(interrupted=False)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def _close(self, *, interrupted: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._stop_engine(interrupted=interrupted)
            finally:
                owned, self._owned = self._owned, None
                clear_resources()
                if owned is not None:
                    owned.close()

    def _stop_engine(self, *, interrupted: bool) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            # An interruption kills running configurations instead of waiting for them.
            error = KeyboardInterrupt() if interrupted else None
            engine.__exit__(type(error) if error else None, error, None)

    def _engine_for(self, n_tasks: int, scope: contextlib.ExitStack) -> Engine:
        """The engine of one call (``scope`` ends with the call)."""
        current = self._engine
        if current is not None and (
            self._executor is not None or current.workers >= min(self._n_workers, n_tasks)
        ):
            return current  # the running pool serves this call (no start-up)
        self._stop_engine(interrupted=False)
        self._engine = make_engine(self._n_workers, n_tasks, self._executor).__enter__()
        return self._engine

    def run(
        self,
        features: np.ndarray,
        targets: Sequence[int] | np.ndarray,
        known_mask: Sequence[bool] | np.ndarray,
        labeled_mask: Sequence[bool] | np.ndarray | None = None,
        *,
        k_range: Iterable[int],
        density_range: Iterable[int],
        random_state: int = 0,
        silent: bool = True,
        return_all: bool = False,
        eval_mask: Sequence[bool] | np.ndarray | None = None,
        params: AlgorithmParams | None = None,
        plan: SearchPlan | None = None,
        metric: str = "euclidean",
        knn_method: str = "exact",
        knn_params: dict[str, Any] | None = None,
    ) -> ClusteringSearchResult:
        """One grid search on this session's pool and store.

        Takes the arguments of :func:`run_clustering_search_on_features` except the
        session's own (``max_workers``, ``store``, ``executor``) and returns what it returns
        for them.

        Raises
        ------
        SearchConfigError
            The session is closed, or an invalid grid / ``params``.
        InvalidInputError, SearchFailedError
            As :func:`run_clustering_search_on_features`.
        """
        return self._call(
            features,
            targets,
            known_mask,
            labeled_mask,
            k_range=k_range,
            density_range=density_range,
            random_state=random_state,
            silent=silent,
            return_all=return_all,
            eval_mask=eval_mask,
            params=params,
            plan=plan,
            metric=metric,
            knn_method=knn_method,
            knn_params=knn_params,
        )

    def _call(
        self,
        features: Any,
        targets: Any,
        known_mask: Any,
        labeled_mask: Any,
        *,
        k_range: Iterable[int],
        density_range: Iterable[int],
        random_state: int,
        silent: bool,
        return_all: bool,
        eval_mask: Any,
        params: AlgorithmParams | None,
        plan: SearchPlan | None,
        metric: str = "euclidean",
        knn_method: str = "exact",
        knn_params: dict[str, Any] | None = None,
    ) -> ClusteringSearchResult:
        """:meth:`run`; called by it and by :func:`run_clustering_search_on_features`, so
        a warning about the inputs names their caller (5 frames up from the warning)."""
        with self._lock:  # one call at a time: they share the pool and the store
            if self._closed:
                raise SearchConfigError("session", "this SearchSession is closed")
            del random_state  # deterministic algorithm: nothing to seed
            inputs = validate_search_inputs(
                features, targets, known_mask, labeled_mask, eval_mask, stacklevel=5
            )
            ks, dps = validate_grid(k_range, density_range, n_samples=inputs.features.shape[0])
            if params is None:
                params = AlgorithmParams()
            elif not isinstance(params, AlgorithmParams):
                raise SearchConfigError("params", f"expected an AlgorithmParams, got {params!r}")
            plan = plan or DEFAULT_PLAN
            metric = check_metric(metric)
            if metric == "cosine":
                check_nonzero_rows(inputs.features, "features")
            knn_method, knn_params = check_knn(knn_method, knn_params)
            if knn_method != "exact":
                check_knn_for(inputs.features, knn_method, knn_params, metric)
            graph = _GraphRequest(metric, knn_method, knn_params)
            try:
                return self._run(inputs, ks, dps, params, plan, silent, return_all, graph)
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Interrupted: the workers may be mid-configuration; start afresh next time.
                    self._stop_engine(interrupted=True)
                raise

    def _run(
        self,
        inputs: Any,
        ks: list[int],
        dps: list[int],
        params: AlgorithmParams,
        plan: SearchPlan,
        silent: bool,
        return_all: bool,
        graph: _GraphRequest,
    ) -> ClusteringSearchResult:
        owned = self._store is None
        if self._store is not None:
            store: KnnStore = self._store
        else:
            if self._owned is None:
                self._owned = EphemeralStore()
            store = self._owned
        with contextlib.ExitStack() as scope:
            # This call's scope: the memory maps this process opened (the rerun of the
            # selected cell) are dropped, and the call's pin and in-use mark end, when it
            # ends; in the session's own store the call's entries are removed then too.
            if owned:
                scope.callback(store.clear)
            scope.callback(clear_resources)
            start = time.perf_counter()
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
                    metric=graph.metric,
                    knn_method=graph.knn_method,
                    knn_params=graph.knn_params,
                    report=None if silent else _report,
                ),
                what=f"knncache store {store.root}",
            )
            prepare_s = time.perf_counter() - start
            hold(scope, prepared)
            order = [(k, dp) for k in ks for dp in dps]
            engine = self._engine_for(len(ks), scope)
            n_classes = int(np.unique(inputs.targets).size)
            return _search(
                prepared.shared,
                order,
                params,
                engine,
                silent,
                return_all,
                prepared.searches,
                n_classes,
                prepare_s,
            )
        raise AssertionError("unreachable")  # pragma: no cover


#: How the progress lines and bar of a call name it.
_PROGRESS = "SS-DDBC grid search"


def _report(line: str) -> None:
    """A preparation step's progress line on stderr (``silent=False``)."""
    print(f"[{_PROGRESS}] {line}", file=sys.stderr, flush=True)


class _OneShot(SearchSession):
    """The session of one :func:`run_clustering_search_on_features` call: without an
    executor, its local workers are the process's warm pool (:mod:`._warm`), borrowed for
    the call, instead of a pool of its own."""

    def _engine_for(self, n_tasks: int, scope: contextlib.ExitStack) -> Engine:
        if self._executor is not None:
            return super()._engine_for(n_tasks, scope)
        return scope.enter_context(borrow(self._n_workers, n_tasks))


def _search(
    shared: SharedInputs,
    order: list[tuple[int, int]],
    params: AlgorithmParams,
    engine: Engine,
    silent: bool,
    return_all: bool,
    searches: int,
    n_classes: int,
    prepare_s: float,
) -> ClusteringSearchResult:
    tasks = [
        ConfigTask(shared=shared, k=k, density_percentile=dp, params=params) for k, dp in order
    ]
    results: list[ConfigResult] = []
    progress = ProgressReporter(len(tasks), _PROGRESS, enabled=not silent)
    start = time.perf_counter()
    try:
        run_tasks(tasks, engine=engine, on_result=results.append, progress=progress)
    finally:
        progress.close()
    grid_s = time.perf_counter() - start
    start = time.perf_counter()

    errors = {(r.k, r.density_percentile): r.error for r in results if not r.ok}
    try:
        best = select_best(results, order)
    except ValueError:
        raise SearchFailedError(errors) from None

    metrics = best.metrics()
    out, pseudo = rerun_selected(
        shared,
        best.k,
        best.density_percentile,
        params,
        metadata={"selected": metrics, "metric": shared.ref.metric, "knn": shared.graph.as_dict()},
    )
    core_clusters = out.core_clusters
    core = sorted({int(i) for cluster in core_clusters for i in cluster})
    grid = None
    if return_all:
        by_cell = {(r.k, r.density_percentile): r for r in results}
        grid = {cell: by_cell[cell].metrics() for cell in order if by_cell[cell].ok}
    labels = np.array(out.labels, copy=True)
    timings = {"prepare": prepare_s, "grid": grid_s, "selection": time.perf_counter() - start}
    return ClusteringSearchResult(
        labels=labels,
        core_points=np.asarray(core, dtype=np.int64),
        best_params={"k": best.k, "density_percentile": best.density_percentile},
        score=best.score,
        n_clusters=int(out.n_clusters),
        densities=np.array(out.densities, copy=True),
        results_grid=grid,
        errors=errors,
        knn_searches=searches,
        knn_method=shared.graph.method,
        knn_params=dict(shared.graph.params),
        knn_recall=shared.graph.recall,
        silhouette_se=float(best.silhouette_se),
        worker_pids=tuple(sorted({r.pid for r in results if r.pid})),
        metrics=metrics,
        pseudo_labels=pseudo,
        warnings=selection_warnings(
            sorted({k for k, _ in order}),
            sorted({dp for _, dp in order}),
            {**best.metrics(), "k": best.k, "density_percentile": best.density_percentile},
            n_classes,
        ),
        timings=timings,
    )
