"""One grid-search configuration as a tiny picklable task, and the worker that runs it.

The main process prepares everything a configuration needs once per feature matrix
(:func:`prepare_inputs`): the KNN graph at ``k_max``, the features, the pairwise distances
used by the silhouette and the split arrays all live in one ``knncache`` entry. A
:class:`ConfigTask` then carries only a :class:`knncache.KnnRef`, the parameters and a few
strings, so sending it to a worker costs a few hundred bytes whatever N is; the worker opens
the entry's files as read-only memory maps (:func:`evaluate_config`), once per process.

Serial and parallel searches call the same :func:`evaluate_config`, so switching modes
changes nothing but speed.

Two paths, chosen by N and recorded in :class:`SharedInputs`:

* N <= :data:`PAIRWISE_MAX_N`: the full ``(N, N)`` distance matrix is shared; every distance
  a configuration needs is read from it and the silhouette is exact over all unlabelled
  points.
* larger N (no N×N array anywhere): the graph is ensured at ``max(k_max,``
  :data:`CANDIDATE_WIDTH` ``)`` columns and handed whole to the clustering, which answers
  within-H neighbours, merges and assignments exactly from those candidates (blocks only for
  the rows they cannot decide); the silhouette is the exact silhouette of a seeded sample of
  :data:`~ssddbc.evaluation.SILHOUETTE_SAMPLE_SIZE` unlabelled points, from their distance
  rows computed once and shared (``ConfigResult.silhouette_sample`` says so). Labels are the
  same as on the matrix path; only the silhouette (hence the score) is an estimate.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash

from knncache import (
    EntryNotFoundError,
    KnnCacheWarning,
    KnnRef,
    KnnStore,
    compute_knn,
    fingerprint,
)

__all__ = [
    "CANDIDATE_WIDTH",
    "PAIRWISE_ARRAY",
    "PAIRWISE_MAX_N",
    "AlgorithmParams",
    "ConfigResult",
    "ConfigTask",
    "SharedInputs",
    "cap_threads",
    "evaluate_config",
    "init_worker",
    "prepare_inputs",
]

#: Name of the shared pairwise-distance array inside a knncache entry. The suffix is bumped
#: whenever :func:`ssddbc._distances.pairwise_euclidean` changes its numbers.
PAIRWISE_ARRAY = "pairwise_euclidean_v1"

#: Largest N for which the full (N, N) float32 distance matrix is precomputed and shared
#: (20,000² × 4 bytes = 1.6 GB on disk, paged in on demand). Above it every configuration
#: works blockwise from the features instead.
PAIRWISE_MAX_N = 20_000

#: Columns of the neighbour graph ensured for N > PAIRWISE_MAX_N: the clustering uses all of
#: them as exact candidates (see ssddbc.ssddbc._candidates); wider answers more rows from the
#: graph at the price of a larger graph.
CANDIDATE_WIDTH = 64

# Rows of the shared split array (one int64 (4, N) array, so one file and one checksum).
_TARGETS, _KNOWN, _LABELED, _EVAL = range(4)


@dataclass(frozen=True)
class AlgorithmParams:
    """The SS-DDBC options that stay fixed across one grid search."""

    dense_method: int = 1
    co_mode: int = 2
    co_manual: float | None = None
    assign_model: int = 3
    voting_k: int = 5


@dataclass(frozen=True)
class SharedInputs:
    """What the main process prepared once for one feature matrix.

    Attributes
    ----------
    ref : KnnRef
        The knncache entry holding the graph at ``k_max``, the features, the split array and,
        for N <= :data:`PAIRWISE_MAX_N`, the pairwise distances.
    split_array : str
        Name of the (4, N) int64 array holding targets, known mask, labelled mask and the
        evaluation mask.
    has_pairwise : bool
        Whether the entry holds :data:`PAIRWISE_ARRAY` (the matrix path).
    searched : bool
        Whether preparing the entry ran a neighbour search (False on a cache hit).
    candidate_width : int
        0 on the matrix path; else the graph's column count, all passed to the clustering as
        candidates.
    silhouette_sample : int
        0 when the silhouette is exact over all unlabelled points; else the size of the
        seeded sample it is averaged over.
    silhouette_index_array, silhouette_rows_array : str
        Names of the sample's indices and distance rows in the entry ("" when unsampled).
    """

    ref: KnnRef
    split_array: str
    has_pairwise: bool
    searched: bool
    candidate_width: int = 0
    silhouette_sample: int = 0
    silhouette_index_array: str = ""
    silhouette_rows_array: str = ""


@dataclass(frozen=True)
class ConfigTask:
    """One (k, density percentile) configuration: what crosses the process boundary.

    Attributes
    ----------
    shared : SharedInputs
        Handles to the shared, memory-mapped inputs (never arrays).
    k, density_percentile : int
        The configuration.
    params : AlgorithmParams
        The fixed algorithm options.
    group : str
        Which feature matrix this belongs to (the superclass name in the batch runner).
    feature_source : str or None
        Path of the feature-cache file the features came from. Only used when the knncache
        entry vanished mid-run (someone cleared the store): the worker then reloads the
        features from it, checks their fingerprint and computes what it needs itself.
    eval_split : str
        ``"test"`` or ``"unlabelled"``: how the evaluation mask was made from the feature
        file (only needed for that same fallback).
    """

    shared: SharedInputs
    k: int
    density_percentile: int
    params: AlgorithmParams = field(default_factory=AlgorithmParams)
    group: str = ""
    feature_source: str | None = None
    eval_split: str = "test"


@dataclass
class ConfigResult:
    """Metrics of one configuration (small: no per-sample arrays).

    ``silhouette_sample`` is 0 when ``silhouette`` is exact over all unlabelled points, else
    the size of the seeded sample of unlabelled points it was averaged over (large N).
    """

    group: str
    k: int
    density_percentile: int
    ok: bool
    score: float = float("nan")
    l1_loss: float = float("nan")
    silhouette: float = float("nan")
    silhouette_sample: int = 0
    all_acc: float = float("nan")
    old_acc: float = float("nan")
    new_acc: float = float("nan")
    n_clusters: int = -1
    n_unknown_clusters: int = -1
    knn_fallback: bool = False
    seconds: float = float("nan")
    error: str = ""
    pid: int = 0

    def metrics(self) -> dict[str, Any]:
        """The metrics as a plain dict (what ``results_grid`` maps a configuration to)."""
        return {
            "score": self.score,
            "l1_loss": self.l1_loss,
            "silhouette": self.silhouette,
            "silhouette_sample": self.silhouette_sample,
            "all_acc": self.all_acc,
            "old_acc": self.old_acc,
            "new_acc": self.new_acc,
            "n_clusters": self.n_clusters,
            "n_unknown_clusters": self.n_unknown_clusters,
        }


def _split_name(split: np.ndarray) -> str:
    digest = xxhash.xxh3_64_hexdigest(np.ascontiguousarray(split).tobytes())
    return f"split_{digest}"


def _sample_names(split_name: str, size: int, seed: int) -> tuple[str, str]:
    digest = split_name.removeprefix("split_")
    tag = f"s{size}_seed{seed}_{digest}"
    return f"silhouette_index_{tag}", f"silhouette_rows_{tag}"


def _sample_arrays(
    features: Any, labeled_mask: np.ndarray, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from ssddbc.evaluation import silhouette_rows, silhouette_sample_indices

    index = silhouette_sample_indices(labeled_mask, size, seed)
    return index, silhouette_rows(features, index)


def prepare_inputs(
    store: KnnStore,
    features: np.ndarray,
    targets: np.ndarray,
    known_mask: np.ndarray,
    labeled_mask: np.ndarray,
    eval_mask: np.ndarray,
    *,
    k_max: int,
) -> SharedInputs:
    """Ensure everything the configurations of one feature matrix share, once.

    Runs at most one neighbour search and computes the pairwise distances (N <=
    :data:`PAIRWISE_MAX_N`) or the sampled silhouette rows (larger N) at most once per
    feature matrix; on a warm store it runs none of them.

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

    Returns
    -------
    SharedInputs
    """
    n = int(features.shape[0])
    has_pairwise = n <= PAIRWISE_MAX_N
    width = k_max if has_pairwise else min(n - 1, max(k_max, CANDIDATE_WIDTH))
    searches_before = store.stats["searches"]
    ref = store.ensure(features, width, store_features=True)
    searched = store.stats["searches"] > searches_before

    split = np.stack(
        [
            np.asarray(targets, dtype=np.int64),
            np.asarray(known_mask, dtype=np.int64),
            np.asarray(labeled_mask, dtype=np.int64),
            np.asarray(eval_mask, dtype=np.int64),
        ]
    )
    name = _split_name(split)
    store.ensure_array(ref, name, lambda _features: split)

    if has_pairwise:
        from ssddbc._distances import pairwise_euclidean

        store.ensure_array(ref, PAIRWISE_ARRAY, pairwise_euclidean)
        return SharedInputs(ref=ref, split_array=name, has_pairwise=True, searched=searched)

    from ssddbc.evaluation import SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED

    labeled = np.asarray(labeled_mask, dtype=bool)
    size = min(SILHOUETTE_SAMPLE_SIZE, int(np.count_nonzero(~labeled)))
    index_name, rows_name = _sample_names(name, SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED)
    if size:
        computed: dict[str, np.ndarray] = {}

        def sample_index(feats: Any) -> np.ndarray:
            index, rows = _sample_arrays(feats, labeled, SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED)
            computed["rows"] = rows
            return index

        def sample_rows(feats: Any) -> np.ndarray:
            rows = computed.pop("rows", None)
            if rows is None:
                rows = _sample_arrays(feats, labeled, SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED)[1]
            return rows

        store.ensure_array(ref, index_name, sample_index)
        store.ensure_array(ref, rows_name, sample_rows)
        computed.clear()
    return SharedInputs(
        ref=ref,
        split_array=name,
        has_pairwise=False,
        searched=searched,
        candidate_width=int(ref.k),
        silhouette_sample=size,
        silhouette_index_array=index_name if size else "",
        silhouette_rows_array=rows_name if size else "",
    )


@dataclass
class _Resources:
    features: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    pairwise: np.ndarray | None
    split: np.ndarray
    fallback: bool
    sample_index: np.ndarray | None = None
    sample_rows: np.ndarray | None = None


# Per-process cache of opened memory maps: a worker opens an entry's files once and every
# later task on the same feature matrix only slices them. Bounded, since a batch run visits
# one feature matrix after another. Locked: a Dask worker runs tasks in several threads.
_RESOURCES: OrderedDict[SharedInputs, _Resources] = OrderedDict()
_RESOURCES_MAX = 2
_RESOURCES_LOCK = threading.Lock()


def _open_resources(task: ConfigTask) -> _Resources:
    shared = task.shared
    key = shared  # frozen: the entry, the split and which shared arrays are in use
    with _RESOURCES_LOCK:
        cached = _RESOURCES.get(key)
        if cached is not None:
            _RESOURCES.move_to_end(key)
            return cached
        res = _load_resources(task)
        _RESOURCES[key] = res
        while len(_RESOURCES) > _RESOURCES_MAX:
            _RESOURCES.popitem(last=False)
        return res


def _load_resources(task: ConfigTask) -> _Resources:
    shared = task.shared
    try:
        graph = shared.ref.load()
        res = _Resources(
            features=shared.ref.features(),
            neighbors=graph.neighbors,
            distances=graph.distances,
            pairwise=shared.ref.array(PAIRWISE_ARRAY) if shared.has_pairwise else None,
            split=shared.ref.array(shared.split_array),
            fallback=False,
        )
        if shared.silhouette_rows_array:
            res.sample_index = shared.ref.array(shared.silhouette_index_array)
            res.sample_rows = shared.ref.array(shared.silhouette_rows_array)
    except EntryNotFoundError:
        res = _recompute_resources(task)
    return res


def _recompute_resources(task: ConfigTask) -> _Resources:
    """The entry vanished mid-run: rebuild its contents here from the feature file."""
    shared = task.shared
    if task.feature_source is None:
        raise EntryNotFoundError(
            shared.ref.path,
            shared.ref.fingerprint,
            "the knncache entry vanished mid-run and this task has no feature file to "
            "recompute it from",
        )
    from ssddbc.data import load_superclass

    source = os.path.abspath(task.feature_source)
    data = load_superclass(os.path.dirname(os.path.dirname(source)), task.group)
    if fingerprint(data.features, shared.ref.metric) != shared.ref.fingerprint:
        raise EntryNotFoundError(
            shared.ref.path,
            shared.ref.fingerprint,
            f"the knncache entry vanished and the features in {source!r} changed since the "
            "run started; rerun the search",
        )
    warnings.warn(
        f"knncache entry {shared.ref.path} vanished mid-run; worker {os.getpid()} is "
        f"recomputing the neighbour graph of {task.group!r} itself",
        KnnCacheWarning,
        stacklevel=2,
    )
    graph = compute_knn(data.features, shared.ref.k, shared.ref.metric)
    pairwise = None
    if shared.has_pairwise:
        from ssddbc._distances import pairwise_euclidean

        pairwise = pairwise_euclidean(data.features)
    from ssddbc.evaluation import evaluation_mask

    eval_mask = evaluation_mask(
        data.n, train_size=data.train_size, labeled_mask=data.labeled_mask, mode=task.eval_split
    )
    split = np.stack(
        [
            data.targets.astype(np.int64),
            data.known_mask.astype(np.int64),
            data.labeled_mask.astype(np.int64),
            np.asarray(eval_mask, dtype=np.int64),
        ]
    )
    if _split_name(split) != shared.split_array:
        raise EntryNotFoundError(
            shared.ref.path,
            shared.ref.fingerprint,
            f"the knncache entry vanished and the split in {source!r} changed since the run "
            "started; rerun the search",
        )
    res = _Resources(
        features=data.features,
        neighbors=graph.neighbors,
        distances=graph.distances,
        pairwise=pairwise,
        split=split,
        fallback=True,
    )
    if shared.silhouette_rows_array:
        from ssddbc.evaluation import SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED

        res.sample_index, res.sample_rows = _sample_arrays(
            data.features, data.labeled_mask, SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED
        )
    return res


def run_configuration(
    task: ConfigTask,
) -> tuple[tuple[Any, ...], _Resources]:
    """Run SS-DDBC for one task; return the algorithm's 8 outputs and the inputs used."""
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    res = _open_resources(task)
    p = task.params
    out = adaptive_density_clustering(
        res.features,
        res.split[_TARGETS],
        res.split[_KNOWN].astype(bool),
        res.split[_LABELED].astype(bool),
        k=task.k,
        density_percentile=task.density_percentile,
        dense_method=p.dense_method,
        co_mode=p.co_mode,
        co_manual=p.co_manual,
        assign_model=p.assign_model,
        voting_k=p.voting_k,
        # Matrix path: the first k columns. Otherwise the whole graph, whose extra columns
        # the clustering uses as exact candidates.
        precomputed_knn=(
            (res.neighbors[:, : task.k], res.distances[:, : task.k])
            if res.pairwise is not None
            else (res.neighbors, res.distances)
        ),
        pairwise_distances=res.pairwise,
    )
    return tuple(out), res


def evaluate_config(task: ConfigTask) -> ConfigResult:
    """Run and score one configuration; never raises for a failing configuration.

    A configuration that raises is returned with ``ok=False`` and the error text, so one bad
    cell never stops a search of hundreds.
    """
    from ssddbc.evaluation import selection_score, split_cluster_acc_v2

    start = time.perf_counter()
    result = ConfigResult(
        group=task.group,
        k=task.k,
        density_percentile=task.density_percentile,
        ok=False,
        pid=os.getpid(),
    )
    try:
        out, res = run_configuration(task)
        labels = np.asarray(out[0])
        targets = res.split[_TARGETS]
        labeled = res.split[_LABELED].astype(bool)
        known = res.split[_KNOWN].astype(bool)
        evaluated = res.split[_EVAL].astype(bool)
        sampled = res.sample_rows is not None and res.pairwise is None
        score = selection_score(
            labels,
            targets,
            labeled,
            pairwise_distances=res.pairwise,
            X=None if res.pairwise is not None else res.features,
            silhouette_rows=(res.sample_index, res.sample_rows) if sampled else None,
        )
        all_acc, old_acc, new_acc = split_cluster_acc_v2(
            targets[evaluated], labels[evaluated], known[evaluated]
        )
        result.ok = True
        result.score = float(score.score)
        result.l1_loss = float(score.l1_loss)
        result.silhouette = float(score.silhouette)
        if sampled and res.sample_index is not None:
            result.silhouette_sample = int(res.sample_index.size)
        result.all_acc = float(all_acc)
        result.old_acc = float(old_acc)
        result.new_acc = float(new_acc)
        result.n_clusters = int(out[1])
        result.n_unknown_clusters = len(out[2])
        result.knn_fallback = res.fallback
    except Exception as exc:
        # Recorded, not raised: the search goes on and the exit status reports it.
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        result.error = f"{type(exc).__name__}: {exc}{where}"
    result.seconds = time.perf_counter() - start
    return result


def _exit_with_parent(interval: float = 0.5) -> None:
    """Start a daemon thread that ends this process once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:  # re-parented: the main process died
                os._exit(1)

    threading.Thread(target=watch, name="ssddbc-parent-watch", daemon=True).start()


def init_worker(threads: int) -> None:
    """Process-pool initializer: cap BLAS/OpenMP threads so workers × threads <= cores.

    Workers also ignore SIGINT: Ctrl-C reaches the whole process group, and only the main
    process should react (journal what finished, cancel the rest, tell how to resume). And
    they exit when the main process dies (SIGKILL, OOM): a pool worker otherwise waits on
    its task queue forever.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    cap_threads(threads)


def cap_threads(threads: int) -> None:
    """Cap BLAS (threadpoolctl), OpenMP and faiss threads of this process at ``threads``.

    The environment variables cover libraries loaded later (and their child processes);
    threadpoolctl and faiss cover the ones already loaded.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss is a hard dependency of knncache
        pass
