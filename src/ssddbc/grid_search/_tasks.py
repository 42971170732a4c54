"""Grid-search configurations as tiny picklable tasks, and the functions that run them.

A :class:`ConfigTask` carries only the :class:`~ssddbc.grid_search._inputs.SharedInputs`
handle (a :class:`knncache.KnnRef` and the route), the parameters and a few strings, so
sending it to a worker costs a few hundred bytes whatever N is. :func:`evaluate_config` opens
the entry's files as read-only memory maps once per process (a small per-process cache,
emptied by :func:`clear_resources` when a run or call ends) and scores the configuration.
Serial and parallel searches call the same functions, so switching modes changes nothing but
speed.

The unit that crosses the process boundary is a :class:`KTask`: the wanted percentiles of
one ``k`` (:func:`group_by_k` forms them from the per-configuration tasks, in order).
:func:`evaluate_k` runs them through
:func:`ssddbc.ssddbc._per_k.iter_cluster_percentiles` on structures shared across them and
returns one :class:`ConfigResult` per configuration, each equal to what
:func:`evaluate_config` gives for it alone.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import ssddbc.ssddbc._per_k as per_k  # looked up on use: tests replace its functions
import ssddbc.ssddbc.adaptive_clustering as adaptive_clustering  # the same
from knncache import EntryNotFoundError, KnnCacheWarning, compute_knn, entry_key
from ssddbc._errors import SsddbcWarning
from ssddbc.data import load_superclass
from ssddbc.evaluation import (
    SILHOUETTE_WEIGHT,
    evaluation_mask,
    l1_loss,
    selection_score,
    split_cluster_acc_v2,
)
from ssddbc.evaluation._sample import SilhouetteSample
from ssddbc.grid_search._inputs import (
    EVAL,
    KNOWN,
    LABELED,
    TARGETS,
    SharedInputs,
    metric_rows,
    pairwise_array,
    pairwise_matrix,
    prepare_inputs,
    sample_arrays,
    split_array,
    split_name,
)
from ssddbc.ssddbc._params import AlgorithmParams
from ssddbc.ssddbc._result import ClusteringResult

__all__ = [
    "AlgorithmParams",
    "ConfigResult",
    "ConfigTask",
    "KTask",
    "SharedInputs",
    "cell",
    "clear_resources",
    "drop_removed_resources",
    "evaluate_config",
    "evaluate_k",
    "group_by_k",
    "prepare_inputs",
    "run_configuration",
]


@dataclass(frozen=True)
class ConfigTask:
    """One (k, density percentile) configuration: what crosses the process boundary.

    Attributes
    ----------
    shared : SharedInputs
        Handles to the shared, memory-mapped inputs (never arrays) and the route.
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


def cell(task: ConfigTask) -> tuple[str, int, int]:
    """The task's grid cell ``(group, k, density_percentile)``."""
    return task.group, task.k, task.density_percentile


@dataclass(frozen=True)
class KTask:
    """The configurations of one ``k`` (one feature matrix, one set of options), run together.

    Attributes
    ----------
    configs : tuple of ConfigTask
        At least one; all share ``shared``, ``k``, ``params``, ``group``,
        ``feature_source`` and ``eval_split`` (see :func:`group_by_k`), with distinct
        percentiles.
    """

    configs: tuple[ConfigTask, ...]

    @property
    def k(self) -> int:
        """The shared ``k``."""
        return self.configs[0].k

    @property
    def cells(self) -> list[tuple[str, int, int]]:
        """The grid cells of its configurations, in order."""
        return [cell(c) for c in self.configs]


def _k_key(task: ConfigTask) -> tuple[Any, ...]:
    return (task.shared, task.k, task.params, task.group, task.feature_source, task.eval_split)


def group_by_k(tasks: Sequence[ConfigTask]) -> list[KTask]:
    """One :class:`KTask` per ``k`` (and feature matrix), in the order of first appearance.

    Percentiles keep their order within a ``k``; a resumed run passes only its missing
    configurations, so a ``k`` task then holds only those.
    """
    groups: dict[tuple[Any, ...], list[ConfigTask]] = {}
    for task in tasks:
        groups.setdefault(_k_key(task), []).append(task)
    return [KTask(tuple(group)) for group in groups.values()]


@dataclass
class ConfigResult:
    """Metrics of one configuration (small: no per-sample arrays).

    ``silhouette_sample`` is 0 when ``silhouette`` is exact over all unlabelled points, else
    the size of the seeded sample of unlabelled points it was averaged over (large N);
    ``silhouette_se`` is the standard error of a sampled silhouette (0.0 when exact; see
    :func:`ssddbc.evaluation.sampled_silhouette`).
    """

    group: str
    k: int
    density_percentile: int
    ok: bool
    score: float = float("nan")
    l1_loss: float = float("nan")
    silhouette: float = float("nan")
    silhouette_se: float = float("nan")
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

    @property
    def cell(self) -> tuple[str, int, int]:
        """``(group, k, density_percentile)``."""
        return self.group, self.k, self.density_percentile

    def metrics(self) -> dict[str, Any]:
        """The metrics as a plain dict (what ``results_grid`` maps a configuration to)."""
        return {
            "score": self.score,
            "l1_loss": self.l1_loss,
            "silhouette": self.silhouette,
            "silhouette_se": self.silhouette_se,
            "silhouette_sample": self.silhouette_sample,
            "all_acc": self.all_acc,
            "old_acc": self.old_acc,
            "new_acc": self.new_acc,
            "n_clusters": self.n_clusters,
            "n_unknown_clusters": self.n_unknown_clusters,
        }

    @classmethod
    def failed(cls, task: ConfigTask, error: str) -> ConfigResult:
        """A failed result for ``task`` with a one-line ``error``."""
        return cls(
            group=task.group,
            k=task.k,
            density_percentile=task.density_percentile,
            ok=False,
            error=" ".join(error.split()),
        )


@dataclass
class _Resources:
    features: np.ndarray[Any, Any]  # as stored; the algorithm applies the metric itself
    rows: np.ndarray[Any, Any]  # what the silhouette measures: ``metric_rows(features)``
    neighbors: np.ndarray[Any, Any]
    distances: np.ndarray[Any, Any]
    pairwise: np.ndarray[Any, Any] | None
    split: np.ndarray[Any, Any]
    fallback: bool
    # The sampled silhouette (N above the plan's exact_silhouette_max_n): it keeps the last
    # partition's cluster sums, so each configuration adds only the points that moved.
    silhouette: SilhouetteSample | None = None


# Per-process cache of opened memory maps: a worker opens an entry's files once and every
# later task on the same feature matrix only slices them. Bounded, since a batch run visits
# one feature matrix after another. Locked: a Dask worker runs tasks in several threads.
# The main process empties it when its run or call ends (clear_resources), so it maps no
# file of a store it closed.
_RESOURCES: OrderedDict[SharedInputs, _Resources] = OrderedDict()
_RESOURCES_MAX = 2
_RESOURCES_LOCK = threading.Lock()


def clear_resources() -> None:
    """Drop every memory map this process opened for tasks (call when a store closes)."""
    with _RESOURCES_LOCK:
        _RESOURCES.clear()


def drop_removed_resources() -> int:
    """Drop the cached memory maps of entries whose files were removed; return how many.

    A long-lived worker calls it every second (see
    :func:`~ssddbc.grid_search._workers.init_worker`), so that, idle between two calls,
    it keeps no deleted file open. Entries rebuilt in memory because their files vanished
    mid-run hold no file and stay (dropping them would rebuild them for every task).
    """
    with _RESOURCES_LOCK:
        stale = [k for k, res in _RESOURCES.items() if not res.fallback and _removed(k)]
        for key in stale:
            del _RESOURCES[key]
    if stale:
        gc.collect()  # the maps close when their arrays are collected
    return len(stale)


def _removed(shared: SharedInputs) -> bool:
    try:
        gone = shared.arrays is not None and not shared.arrays.path.exists()
        return gone or not shared.ref.path.exists()
    except (OSError, ValueError):
        return True


def _open_resources(task: ConfigTask) -> _Resources:
    key = task.shared  # frozen: the entry, the split and which shared arrays are in use
    with _RESOURCES_LOCK:
        cached = _RESOURCES.get(key)
        if cached is not None:
            _RESOURCES.move_to_end(key)
            return cached
        # A new entry: first drop the maps of entries that were removed since (a
        # SearchSession removes each call's entries from its store when the call ends), so
        # a long-lived worker never keeps deleted files alive.
        for stale in [k for k in _RESOURCES if _removed(k)]:
            del _RESOURCES[stale]
        res = _load_resources(task)
        _RESOURCES[key] = res
        while len(_RESOURCES) > _RESOURCES_MAX:
            _RESOURCES.popitem(last=False)
        return res


def _load_resources(task: ConfigTask) -> _Resources:
    shared = task.shared
    try:
        graph = shared.ref.load()
        features = shared.ref.features()
        metric = shared.ref.metric
        res = _Resources(
            features=features,
            rows=metric_rows(features, metric),
            neighbors=graph.neighbors,
            distances=graph.distances,
            pairwise=shared.array(pairwise_array(metric)) if shared.has_pairwise else None,
            split=shared.array(shared.split_array),
            fallback=False,
        )
        if shared.silhouette_columns_array:
            res.silhouette = SilhouetteSample(
                shared.array(shared.silhouette_index_array),
                shared.array(shared.silhouette_columns_array),
                res.split[LABELED].astype(bool),
            )
    except EntryNotFoundError:
        res = _recompute_resources(task)
    return res


def _recompute_resources(task: ConfigTask) -> _Resources:
    """The entry vanished mid-run: rebuild its contents here from the feature file."""
    shared = task.shared
    if task.feature_source is None:
        raise EntryNotFoundError(
            str(shared.ref.path),
            shared.ref.fingerprint,
            "the knncache entry vanished mid-run and this task has no feature file to "
            "recompute it from",
        )
    source = os.path.abspath(task.feature_source)
    data = load_superclass(os.path.dirname(os.path.dirname(source)), task.group)
    # Rebuilt by the engine that built it, under the same key. An exact graph is the same
    # bytes; an approximate one may differ from the vanished entry's (a threaded build is
    # not reproducible), so this worker's configurations run on its own rebuild.
    engine = shared.graph
    params = dict(engine.params)
    key = entry_key(data.features, shared.ref.metric, method=engine.method, params=params)
    if key != shared.ref.fingerprint:
        raise EntryNotFoundError(
            str(shared.ref.path),
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
    eval_mask = evaluation_mask(
        data.n,
        train_size=data.train_size,
        labeled_mask=data.labeled_mask,
        mode=task.eval_split,  # type: ignore[arg-type]  # validated there
    )
    split = split_array(data.targets, data.known_mask, data.labeled_mask, eval_mask)
    if split_name(split) != shared.split_array:
        raise EntryNotFoundError(
            str(shared.ref.path),
            shared.ref.fingerprint,
            f"the knncache entry vanished and the split in {source!r} changed since the run "
            "started; rerun the search",
        )
    metric = shared.ref.metric
    graph = compute_knn(data.features, shared.ref.k, metric, method=engine.method, **params)
    pairwise = pairwise_matrix(data.features, metric) if shared.has_pairwise else None
    res = _Resources(
        features=data.features,
        rows=metric_rows(data.features, metric),
        neighbors=graph.neighbors,
        distances=graph.distances,
        pairwise=pairwise,
        split=split,
        fallback=True,
    )
    if shared.silhouette_columns_array:
        index, columns = sample_arrays(
            data.features,
            data.labeled_mask,
            shared.silhouette_request,
            shared.silhouette_seed,
            metric,
        )
        res.silhouette = SilhouetteSample(index, columns, data.labeled_mask)
    return res


#: The start of :func:`ssddbc._validation.warn_labeled_outside_known`'s message.
_OUTSIDE_KNOWN = r"labeled_mask: \d+ labelled sample\(s\) are not of a known class"


def run_configuration(task: ConfigTask) -> tuple[ClusteringResult, _Resources]:
    """Run SS-DDBC for one task; return the algorithm's result and the inputs used."""
    res = _open_resources(task)
    with warnings.catch_warnings():
        # The search said so once, when it validated the masks; not again per configuration
        # (and a configuration must not fail under -W error for it).
        warnings.filterwarnings("ignore", message=_OUTSIDE_KNOWN, category=SsddbcWarning)
        out = adaptive_clustering.adaptive_density_clustering(
            res.features,
            res.split[TARGETS],
            res.split[KNOWN].astype(bool),
            res.split[LABELED].astype(bool),
            k=task.k,
            density_percentile=task.density_percentile,
            **task.params.as_kwargs(),
            # Matrix route: the first k columns. Otherwise the whole graph, whose extra
            # columns the clustering uses as exact candidates.
            precomputed_knn=(
                (res.neighbors[:, : task.k], res.distances[:, : task.k])
                if res.pairwise is not None
                else (res.neighbors, res.distances)
            ),
            pairwise_distances=res.pairwise,
            metric=task.shared.ref.metric,
        )
    return ClusteringResult(*out), res


def _split_views(res: _Resources) -> tuple[np.ndarray[Any, Any], ...]:
    """Targets, known, labelled and evaluation masks of the shared split array."""
    split = res.split
    return (
        split[TARGETS],
        split[KNOWN].astype(bool),
        split[LABELED].astype(bool),
        split[EVAL].astype(bool),
    )


def _new_result(task: ConfigTask) -> ConfigResult:
    return ConfigResult(
        group=task.group,
        k=task.k,
        density_percentile=task.density_percentile,
        ok=False,
        pid=os.getpid(),
    )


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _score_into(result: ConfigResult, out: Any, res: _Resources) -> None:
    """Score one partition into ``result``: the selection score, accuracies, counts.

    The silhouette is exact (from the matrix, or from distance blocks without one) unless the
    entry holds a silhouette sample (N above the plan's ``exact_silhouette_max_n``): then it
    is the sample's mean, with its standard error.
    """
    labels = np.asarray(out.labels)
    targets, known, labeled, evaluated = _split_views(res)
    if res.silhouette is not None:
        l1 = l1_loss(labels, targets, labeled)
        # Equal to sampled_silhouette on the sample's rows, whichever partition came before.
        silhouette, se = res.silhouette.score(labels)
        # The expression selection_score evaluates, so the score has the same bits.
        score = -l1 + SILHOUETTE_WEIGHT * silhouette
        result.silhouette_sample = int(res.silhouette.index.size)
    else:
        exact = selection_score(
            labels,
            targets,
            labeled,
            pairwise_distances=res.pairwise,
            X=None if res.pairwise is not None else res.rows,
        )
        l1, silhouette, score, se = exact.l1_loss, exact.silhouette, exact.score, 0.0
    all_acc, old_acc, new_acc = split_cluster_acc_v2(
        targets[evaluated], labels[evaluated], known[evaluated]
    )
    result.ok = True
    result.score = float(score)
    result.l1_loss = float(l1)
    result.silhouette = float(silhouette)
    result.silhouette_se = float(se)
    result.all_acc = float(all_acc)
    result.old_acc = float(old_acc)
    result.new_acc = float(new_acc)
    result.n_clusters = int(out.n_clusters)
    result.n_unknown_clusters = len(out.unknown_clusters)
    result.knn_fallback = res.fallback


def evaluate_config(task: ConfigTask) -> ConfigResult:
    """Run and score one configuration; never raises for a failing configuration.

    A configuration that raises is returned with ``ok=False`` and the error text, so one bad
    cell never stops a search of hundreds.
    """
    start = time.perf_counter()
    result = _new_result(task)
    try:
        out, res = run_configuration(task)
        _score_into(result, out, res)
    except Exception as exc:
        # Recorded, not raised: the search goes on and the exit status reports it.
        result.error = _error_text(exc)
    result.seconds = time.perf_counter() - start
    return result


def evaluate_k(task: KTask) -> list[ConfigResult]:
    """Run and score every configuration of one ``k`` on shared per-k structures.

    Returns one :class:`ConfigResult` per ``task.configs``, in order, each with the values
    :func:`evaluate_config` gives for it alone (the partitions are identical, see
    :func:`ssddbc.ssddbc._per_k.cluster_percentiles`); ``seconds`` is each configuration's
    own time plus an equal share of the per-k work. Never raises for failing
    configurations: if the shared part fails, every configuration runs alone (each with its
    own error); if one percentile fails, it is recorded and the rest run alone.
    """
    configs = task.configs
    start = time.perf_counter()
    try:
        res = _open_resources(configs[0])
        targets, known, labeled, _ = _split_views(res)
        with warnings.catch_warnings():
            # Said once by the search (see run_configuration); validation is eager, so the
            # warning could only come from this call.
            warnings.filterwarnings("ignore", message=_OUTSIDE_KNOWN, category=SsddbcWarning)
            outs = per_k.iter_cluster_percentiles(
                res.features,
                targets,
                known,
                labeled,
                task.k,
                [c.density_percentile for c in configs],
                **configs[0].params.as_kwargs(),
                # The whole graph: its columns beyond k are exact candidates; the matrix,
                # when shared, answers only the rows they leave undecided.
                precomputed_knn=(res.neighbors, res.distances),
                pairwise_distances=res.pairwise,
                metric=configs[0].shared.ref.metric,
            )
    except Exception:
        return [evaluate_config(c) for c in configs]
    shared = (time.perf_counter() - start) / len(configs)
    results: list[ConfigResult] = []
    for i, config in enumerate(configs):
        began = time.perf_counter()
        result = _new_result(config)
        try:
            _score_into(result, next(outs), res)
        except Exception as exc:
            result.error = _error_text(exc)
            result.seconds = time.perf_counter() - began + shared
            results.append(result)
            # The shared iterator stops at an exception: the rest run alone.
            results.extend(evaluate_config(c) for c in configs[i + 1 :])
            break
        result.seconds = time.perf_counter() - began + shared
        results.append(result)
    return results
