"""Shared inputs: what the main process prepares once per feature matrix, and where it lives.

:func:`prepare_inputs` ensures the KNN graph (at the plan's width), the features and the
split array in the given store, and the per-run arrays (by route, the pairwise distances or
the sampled silhouette columns); :class:`SharedInputs` is the small, frozen handle to them
(and the route decided for them) that every :class:`~ssddbc.grid_search._tasks.ConfigTask`
carries.

What a persistent store keeps is what is costly to recompute: the graph (a neighbour search)
and the features workers map, plus the split (``4 x N`` integers: too small to matter). The
per-run arrays are large and cheap beside the search (the pairwise matrix of 4,701 points is
84 MiB and one GEMM; the sample columns are ``N x 2,000`` floats), so a run with a scope
(``pin_into``) puts them in a run-scoped :class:`knncache.EphemeralStore` entered into that
scope: removed when the run ends, on every exit path. It is created beside the persistent
store (workers of other hosts mount that folder), or in the temporary directory when that
folder cannot be written; when neither can be written (a full disk), each worker computes
them in memory (``SharedInputs.in_memory``), the same values. A store that is not persistent
(the API's private store, the fallback) already lives only for the run and holds them itself.

:func:`prepare_with_fallback` is the one home of the store-failure policy: a store that cannot
be written must not kill a long search, so the inputs are prepared in a private
:class:`knncache.EphemeralStore` instead, with a :class:`knncache.KnnCacheWarning`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

import ssddbc._distances as distances  # looked up on use: tests replace its functions
from knncache import (
    ENGINE_DEFAULTS,
    EphemeralStore,
    InvalidParameterError,
    KnnCacheWarning,
    KnnRef,
    KnnStore,
    StoreWriteError,
    check_engine,
    entry_key,
)
from ssddbc._errors import SearchConfigError
from ssddbc._metric import l2_normalize
from ssddbc.evaluation import silhouette_rows, silhouette_sample_indices
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan

__all__ = [
    "APPROXIMATE_NOTE",
    "KNN_METHODS",
    "PAIRWISE_ARRAY",
    "PAIRWISE_COSINE_ARRAY",
    "GraphEngine",
    "Prepared",
    "SharedInputs",
    "check_knn",
    "check_knn_for",
    "describe_graph",
    "hold",
    "metric_rows",
    "pairwise_array",
    "prepare_inputs",
    "prepare_with_fallback",
    "sample_arrays",
    "split_array",
    "split_name",
]

#: Name of the shared pairwise-distance array inside a knncache entry. The suffix is bumped
#: whenever :func:`ssddbc._distances.pairwise_euclidean` changes its numbers.
PAIRWISE_ARRAY = "pairwise_euclidean_v1"
#: Under ``metric="cosine"``: the Euclidean distances of the L2-normalised features
#: (:mod:`ssddbc._metric`), under a name of its own so it is never read as the other.
PAIRWISE_COSINE_ARRAY = "pairwise_euclidean_l2normalized_v1"

# Rows of the shared split array (one int64 (4, N) array, so one file and one checksum).
TARGETS, KNOWN, LABELED, EVAL = range(4)


#: The neighbour-graph engines a search may use (knncache's); ``"exact"`` is the default.
KNN_METHODS: tuple[str, ...] = tuple(ENGINE_DEFAULTS)

#: Said wherever a search used an approximate graph.
APPROXIMATE_NOTE = "approximate: partitions may differ from the exact search"


def check_knn(method: object, params: object) -> tuple[str, dict[str, Any]]:
    """Validate a neighbour-graph method and its parameters (what needs no data).

    knncache's own check (:func:`knncache.check_engine`), with its error reported as the
    search's option: ``knn_method`` for the method, ``knn_params`` for the parameters. What
    depends on N (``nlist <= N``) is checked by :func:`check_knn_for`.

    Raises
    ------
    SearchConfigError
        Naming ``knn_method`` or ``knn_params`` and the bad value.
    """
    try:
        return check_engine(method, params)
    except InvalidParameterError as exc:
        option = "knn_method" if exc.name == "method" else "knn_params"
        raise SearchConfigError(option, str(exc)) from None


def check_knn_for(
    features: Any, method: str, params: Mapping[str, Any], metric: str = "euclidean"
) -> str:
    """The store key of ``features``' graph by ``method``; its N-dependent checks as ours.

    Raises
    ------
    SearchConfigError
        A parameter out of range for these features (ivf ``nlist`` above N).
    """
    try:
        return entry_key(features, metric, method=method, params=params)
    except InvalidParameterError as exc:
        raise SearchConfigError("knn_params", str(exc)) from None


@dataclass(frozen=True)
class GraphEngine:
    """Which engine built the neighbour graph a search used, and its measured recall.

    Attributes
    ----------
    method : str
        ``"exact"``, ``"hnsw"`` or ``"ivf"``.
    params : tuple of (str, value)
        The engine's resolved parameters, sorted by name (empty for exact).
    recall : float
        Recall@``recall_k`` measured by knncache on ``recall_sample`` seeded queries against
        the exact search when the graph was built; 1.0 for the exact graph (by construction).
    recall_k, recall_sample : int
        0 for the exact graph.
    """

    method: str = "exact"
    params: tuple[tuple[str, Any], ...] = ()
    recall: float = 1.0
    recall_k: int = 0
    recall_sample: int = 0

    @property
    def approximate(self) -> bool:
        """Whether the graph may miss true neighbours."""
        return self.method != "exact"

    def as_dict(self) -> dict[str, Any]:
        """The fields a ``summary.json`` knn block gets."""
        out: dict[str, Any] = {"method": self.method, "params": dict(self.params)}
        if self.approximate:
            out["recall"] = {"k": self.recall_k, "value": self.recall, "sample": self.recall_sample}
            out["note"] = APPROXIMATE_NOTE
        return out

    def describe(self) -> str:
        """One line: ``hnsw (M=32, ...), recall@k 0.998 on 1000 sampled queries — ...``."""
        return describe_graph(self.as_dict())


def describe_graph(block: Mapping[str, Any]) -> str:
    """The line a knn block (:meth:`GraphEngine.as_dict`) is printed as."""
    if block.get("method", "exact") == "exact":
        return "exact"
    names = ", ".join(f"{k}={v}" for k, v in block["params"].items())
    recall = block["recall"]
    return (
        f"{block['method']} ({names}), recall@{recall['k']} {recall['value']:.3f} on "
        f"{recall['sample']} sampled queries \u2014 {APPROXIMATE_NOTE}"
    )


@dataclass(frozen=True)
class SharedInputs:
    """What the main process prepared once for one feature matrix, and the route chosen.

    Attributes
    ----------
    ref : KnnRef
        The knncache entry holding the graph, the features and the split array.
    split_array : str
        Name of the (4, N) int64 array holding targets, known mask, labelled mask and the
        evaluation mask.
    has_pairwise : bool
        Whether the entry holds :data:`PAIRWISE_ARRAY` (N <= the plan's ``pairwise_max_n``):
        fallback rows of the clustering and the exact silhouette.
    searched : bool
        Whether preparing the entry ran a neighbour search (False on a cache hit).
    candidate_width : int
        The graph's column count (all of them serve the clustering as exact candidates).
    silhouette_sample : int
        0 when the silhouette is exact over all unlabelled points; else the size of the
        seeded sample it is averaged over.
    silhouette_index_array, silhouette_columns_array : str
        Names of the sample's indices and of its distance columns, ``(N, s)`` float32 (the
        transposed rows: one contiguous vector per point), in the entry ("" when unsampled).
    silhouette_request, silhouette_seed : int
        The plan's sample size and seed (what a worker needs to rebuild the sample).
    graph : GraphEngine
        The engine that built the graph (a worker rebuilding a vanished entry uses it).
    arrays : KnnRef or None
        The run-scoped entry holding the per-run arrays (the pairwise matrix, the silhouette
        sample); None when they are in ``ref``'s entry (or ``in_memory``). Read every shared
        array with :meth:`array`.
    in_memory : bool
        The run store could not be written: each process that reads the per-run arrays
        computes them (the same values) in memory.
    """

    ref: KnnRef
    split_array: str
    has_pairwise: bool
    searched: bool
    candidate_width: int = 0
    silhouette_sample: int = 0
    silhouette_index_array: str = ""
    silhouette_columns_array: str = ""
    silhouette_request: int = 0
    silhouette_seed: int = 0
    graph: GraphEngine = GraphEngine()
    arrays: KnnRef | None = None
    in_memory: bool = False

    def array(self, name: str) -> np.ndarray[Any, Any]:
        """The shared array ``name``: a read-only memory map, or computed here if ``in_memory``.

        Raises
        ------
        knncache.EntryNotFoundError, knncache.StoreClosedError
            As :meth:`knncache.KnnRef.array` (the run ended, or the entry vanished).
        """
        if name == self.split_array:
            return self.ref.array(name)
        if not self.in_memory:
            return (self.arrays or self.ref).array(name)
        features, metric = self.ref.features(), self.ref.metric
        if self.has_pairwise and name == pairwise_array(metric):
            return pairwise_matrix(features, metric)
        if self.silhouette_sample and name in (
            self.silhouette_index_array,
            self.silhouette_columns_array,
        ):
            labeled = self.ref.array(self.split_array)[LABELED].astype(bool)
            index, columns = sample_arrays(
                features, labeled, self.silhouette_request, self.silhouette_seed, metric
            )
            return index if name == self.silhouette_index_array else columns
        return self.ref.array(name)  # not a per-run array: the entry's own (or its KeyError)


#: The run store's anchor: a knncache entry holds extra arrays only beside a graph, and the
#: graph that matters is in the persistent store, so the run store anchors its arrays on a
#: two-point entry (its "search" is one distance). Its arrays are computed from the
#: persistent entry's features, never from these.
_ANCHOR = np.array([[0.0], [1.0]], dtype=np.float32)

# Where a run store goes: beside the persistent store (a shared folder for remote workers).
_RUN_PREFIX = "knn_run_"


def _run_store(store: KnnStore, scope: contextlib.ExitStack | None) -> KnnStore:
    """The store the per-run arrays go to (see the module docstring)."""
    if scope is None or not store.is_persistent:
        return store
    try:
        runs = EphemeralStore(prefix=_RUN_PREFIX, dir=store.root.parent)
    except StoreWriteError:  # a read-only folder: the local temporary directory serves
        runs = EphemeralStore(prefix=_RUN_PREFIX)
    return scope.enter_context(runs)


def metric_rows(features: Any, metric: str) -> np.ndarray[Any, Any]:
    """The rows every distance after the neighbour graph is measured between.

    The features themselves for ``"euclidean"``; their L2-normalised rows for ``"cosine"``
    (:func:`ssddbc._metric.l2_normalize`, the rows knncache searched). The pairwise matrix,
    the sampled silhouette columns and the silhouette over ``X`` all use these rows.
    """
    if metric == "cosine":
        return l2_normalize(features, "features")
    return np.asarray(features)


def pairwise_array(metric: str) -> str:
    """The entry array name of the shared pairwise matrix under ``metric``."""
    return PAIRWISE_COSINE_ARRAY if metric == "cosine" else PAIRWISE_ARRAY


def pairwise_matrix(features: Any, metric: str) -> np.ndarray[Any, Any]:
    """The shared pairwise matrix: Euclidean distances of :func:`metric_rows`."""
    return distances.pairwise_euclidean(metric_rows(features, metric))


def split_array(
    targets: Any, known_mask: Any, labeled_mask: Any, eval_mask: Any
) -> np.ndarray[Any, Any]:
    """The (4, N) int64 array of targets, known, labelled and evaluation masks."""
    return np.stack(
        [
            np.asarray(targets, dtype=np.int64),
            np.asarray(known_mask, dtype=np.int64),
            np.asarray(labeled_mask, dtype=np.int64),
            np.asarray(eval_mask, dtype=np.int64),
        ]
    )


def split_name(split: np.ndarray[Any, Any]) -> str:
    """The entry array name of a split: its content hash, so another split never collides."""
    digest = xxhash.xxh3_64_hexdigest(np.ascontiguousarray(split).tobytes())
    return f"split_{digest}"


def _sample_names(split: str, size: int, seed: int, metric: str) -> tuple[str, str]:
    tag = f"s{size}_seed{seed}_{split.removeprefix('split_')}"
    if metric != "euclidean":
        tag += f"_{metric}"
    return f"silhouette_index_{tag}", f"silhouette_columns_{tag}"


def sample_arrays(
    features: Any, labeled_mask: Any, size: int, seed: int, metric: str = "euclidean"
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The silhouette sample's indices and distance columns (between :func:`metric_rows`).

    The columns are the transpose of :func:`ssddbc.evaluation.silhouette_rows` (the same
    values), ``(N, s)`` float32, computed a few sampled points at a time.
    """
    index = silhouette_sample_indices(np.asarray(labeled_mask, dtype=bool), size, seed)
    rows = metric_rows(features, metric)
    columns = np.empty((rows.shape[0], index.size), dtype=np.float32)
    for lo in range(0, index.size, _SAMPLE_STEP):
        columns[:, lo : lo + _SAMPLE_STEP] = silhouette_rows(rows, index[lo : lo + _SAMPLE_STEP]).T
    return index, columns


# Sampled points whose distance rows are computed at once (256 x N float32).
_SAMPLE_STEP = 256


def prepare_inputs(
    store: KnnStore,
    features: np.ndarray[Any, Any],
    targets: np.ndarray[Any, Any],
    known_mask: np.ndarray[Any, Any],
    labeled_mask: np.ndarray[Any, Any],
    eval_mask: np.ndarray[Any, Any],
    *,
    k_max: int,
    plan: SearchPlan = DEFAULT_PLAN,
    pin_into: contextlib.ExitStack | None = None,
    metric: str = "euclidean",
    report: Callable[[str], None] | None = None,
    knn_method: str = "exact",
    knn_params: Mapping[str, Any] | None = None,
) -> SharedInputs:
    """Ensure everything the configurations of one feature matrix share, once.

    Runs at most one neighbour search (at the plan's graph width; none on a warm store) and
    computes the pairwise distances (N <= ``pairwise_max_n``) and the sampled silhouette
    columns (N > ``exact_silhouette_max_n``) at most once per run: with a scope
    (``pin_into``) and a persistent store they go into a run-scoped store (see the module
    docstring), otherwise into ``store``'s entry (a warm one computes none of them).

    Parameters
    ----------
    store : KnnStore
        Any knncache backend.
    features : ndarray of shape (N, d)
        Validated features.
    targets, known_mask, labeled_mask, eval_mask : ndarray of shape (N,)
        Validated split arrays.
    k_max : int
        The largest k of the grid.
    plan : SearchPlan
        Chooses the route (see :mod:`ssddbc.grid_search._plan`).
    pin_into : contextlib.ExitStack, optional
        The run's scope. The entry is pinned (:meth:`knncache.KnnStore.pin`) before it is
        ensured and stays pinned until the scope ends, so a ``clear``/``gc`` or an eviction in
        another process can neither break this preparation nor remove the entry while
        workers read it. A persistent ``store``'s per-run arrays go into an
        :class:`knncache.EphemeralStore` entered into this scope.
    metric : {"euclidean", "cosine"}
        Part of the entry's key (knncache's fingerprint); under cosine the shared distances
        are those of the L2-normalised rows (:func:`metric_rows`).
    report : callable or None
        Called with one line per preparation step (what runs, then its timing or "cached").
    knn_method, knn_params : keyword-only
        The neighbour-graph engine (validated with :func:`check_knn`; default exact). An
        approximate graph is its own store entry, keyed by the method and its parameters.

    Returns
    -------
    SharedInputs

    Raises
    ------
    knncache.StoreWriteError
        The store cannot be written (see :func:`prepare_with_fallback`).
    """
    n = int(features.shape[0])
    route = plan.route(n, k_max)
    method, params = check_knn(knn_method, knn_params)
    if pin_into is not None:
        # The key the store will use: the features' fingerprint under the metric, or for an
        # approximate engine the one its method and parameters give.
        pin_into.enter_context(store.pin(check_knn_for(features, method, params, metric)))
    say = report or (lambda _line: None)

    def step(what: str, run: Callable[[], Any], ran: Callable[[], bool]) -> Any:
        say(f"{what} ...")
        start = time.perf_counter()
        out = run()
        took = time.perf_counter() - start
        say(f"{what}: {'done in ' + format(took, '.1f') + 's' if ran() else 'cached'}")
        return out

    before = dict(store.stats)

    def grew(key: str) -> Callable[[], bool]:
        return lambda: store.stats.get(key, 0) > before.get(key, 0)

    engine = "" if method == "exact" else f", {method}"
    ref: KnnRef = step(
        f"neighbour graph (N={n}, k={route.graph_width}, {metric}{engine})",
        lambda: store.ensure(
            features,
            route.graph_width,
            metric,
            store_features=True,
            method=method,
            params=params,
        ),
        grew("searches"),
    )
    searched = store.stats["searches"] > before.get("searches", 0)
    graph = GraphEngine()
    if method != "exact":
        info = store.info(ref)
        assert info.recall is not None  # knncache records it for every approximate entry
        graph = GraphEngine(
            method,
            tuple(sorted(info.params.items())),
            float(info.recall["value"]),
            int(info.recall["k"]),
            int(info.recall["sample"]),
        )

    # The split: 32 bytes a point, kept with the graph (a warm run then writes nothing there).
    split = split_array(targets, known_mask, labeled_mask, eval_mask)
    name = split_name(split)
    store.ensure_array(ref, name, lambda _features: split)

    has_pairwise = route.pairwise
    # The sampled silhouette (N above the plan's exact_silhouette_max_n): its seeded sample
    # and distance columns; all zero and empty when the silhouette is exact.
    request = seed = size = 0
    index_name = columns_name = ""
    labeled = np.asarray(labeled_mask, dtype=bool)
    if not route.exact_silhouette:
        request, seed = route.silhouette_sample_size, route.silhouette_seed
        size = min(request, int(np.count_nonzero(~labeled)))
        if size:
            index_name, columns_name = _sample_names(name, request, seed, metric)
    arrays: KnnRef | None = None
    in_memory = False
    if has_pairwise or size:
        runs: KnnStore | None = None
        try:
            runs = _run_store(store, pin_into)
            arrays = ref if runs is store else runs.ensure(_ANCHOR, 1, store_features=True)
            _fill_run_arrays(
                runs, arrays, ref, step, n, metric, has_pairwise, labeled,
                (request, seed, size, index_name, columns_name),
            )  # fmt: skip
        except StoreWriteError as exc:
            if runs is store:
                raise  # the store itself cannot be written: prepare_with_fallback's case
            if runs is not None:
                runs.close()
            arrays, in_memory = None, True
            say(f"per-run arrays computed in each worker (cannot write a run store: {exc})")
    return SharedInputs(
        ref=ref,
        split_array=name,
        has_pairwise=has_pairwise,
        searched=searched,
        candidate_width=int(ref.k),
        silhouette_sample=size,
        silhouette_index_array=index_name,
        silhouette_columns_array=columns_name,
        silhouette_request=request,
        silhouette_seed=seed,
        graph=graph,
        arrays=None if arrays is ref else arrays,
        in_memory=in_memory,
    )


def _fill_run_arrays(
    runs: KnnStore,
    arrays: KnnRef,
    ref: KnnRef,
    step: Callable[[str, Callable[[], Any], Callable[[], bool]], Any],
    n: int,
    metric: str,
    has_pairwise: bool,
    labeled: np.ndarray[Any, Any],
    sample: tuple[int, int, int, str, str],
) -> None:
    """Ensure the pairwise matrix and the silhouette sample in ``arrays``' entry of ``runs``,
    computed from ``ref``'s stored features (the rows searched)."""

    def stored(_anchor_or_features: Any) -> np.ndarray[Any, Any]:
        return ref.features()

    def ran(key: str) -> Callable[[], bool]:
        start = runs.stats.get(key, 0)
        return lambda: runs.stats.get(key, 0) > start

    if has_pairwise:
        step(
            f"distance matrix ({n} x {n})",
            lambda: runs.ensure_array(
                arrays, pairwise_array(metric), lambda f: pairwise_matrix(stored(f), metric)
            ),
            ran("array_computes"),
        )
    request, seed, size, index_name, columns_name = sample
    if not size:
        return
    computed: dict[str, np.ndarray[Any, Any]] = {}

    def sample_index(feats: Any) -> np.ndarray[Any, Any]:
        index, columns = sample_arrays(stored(feats), labeled, request, seed, metric)
        computed["columns"] = columns
        return index

    def sample_columns(feats: Any) -> np.ndarray[Any, Any]:
        columns = computed.pop("columns", None)
        if columns is None:
            return sample_arrays(stored(feats), labeled, request, seed, metric)[1]
        return columns

    def ensure_sample() -> None:
        runs.ensure_array(arrays, index_name, sample_index)
        runs.ensure_array(arrays, columns_name, sample_columns)

    step(f"silhouette sample ({n} x {size})", ensure_sample, ran("array_computes"))
    computed.clear()


@dataclass(frozen=True)
class Prepared:
    """The outcome of :func:`prepare_with_fallback`.

    Attributes
    ----------
    shared : SharedInputs
        The handle the tasks carry.
    store : KnnStore
        The store the entry lives in (the given one, or the temporary fallback).
    searches, hits : int
        Neighbour searches and cache hits this preparation caused in ``store``.
    temporary : bool
        Whether the fallback store is in use.
    """

    shared: SharedInputs
    store: KnnStore
    searches: int
    hits: int
    temporary: bool


def prepare_with_fallback(
    store: KnnStore,
    stack: contextlib.ExitStack,
    prepare: Callable[[KnnStore], SharedInputs],
    *,
    what: str,
) -> Prepared:
    """Run ``prepare(store)``; if the store cannot be written, use a temporary store instead.

    This is the one home of the policy "a store that cannot write falls back to a private
    :class:`knncache.EphemeralStore` with a :class:`knncache.KnnCacheWarning`, it does not
    kill the search". The temporary store is entered into ``stack``, so it lives exactly as
    long as the caller's run or call and is removed on every exit path.

    Parameters
    ----------
    store : KnnStore
        The store asked for.
    stack : contextlib.ExitStack
        The caller's run scope.
    prepare : callable
        ``prepare(store) -> SharedInputs`` (usually :func:`prepare_inputs` bound to arrays).
    what : str
        Names the inputs in the warning (``"the knncache store of 'digits_low'"``).
    """
    before = dict(store.stats)
    try:
        shared = prepare(store)
    except StoreWriteError as exc:
        warnings.warn(
            f"cannot write {what} ({exc}); using a temporary store for this run",
            KnnCacheWarning,
            stacklevel=3,
        )
        temp = stack.enter_context(EphemeralStore())
        shared = prepare(temp)
        return Prepared(shared, temp, int(temp.stats["searches"]), int(temp.stats["hits"]), True)
    return Prepared(
        shared,
        store,
        int(store.stats["searches"] - before.get("searches", 0)),
        int(store.stats["hits"] - before.get("hits", 0)),
        False,
    )


def hold(scope: contextlib.ExitStack, prepared: Prepared) -> None:
    """Hold the prepared entry until ``scope`` (the whole run or call) ends.

    Workers read the entry by path for as long as the scope lasts: it was pinned for that
    scope by :func:`prepare_inputs` (``pin_into``) before it was ensured. When the scope
    ends the pin ends and the entry is released, so a size-bounded store may evict it later.
    """
    scope.callback(prepared.store.release, prepared.shared.ref)
