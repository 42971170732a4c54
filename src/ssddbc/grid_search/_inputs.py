"""Shared inputs: what the main process prepares once per feature matrix, in one store entry.

:func:`prepare_inputs` ensures the KNN graph (at the plan's width), the features, the split
array and, by route, the pairwise distances or the sampled silhouette rows, all in one
``knncache`` entry; :class:`SharedInputs` is the small, frozen handle to them (and the route
decided for them) that every :class:`~ssddbc.grid_search._tasks.ConfigTask` carries.

:func:`prepare_with_fallback` is the one home of the store-failure policy: a store that cannot
be written must not kill a long search, so the inputs are prepared in a private
:class:`knncache.EphemeralStore` instead, with a :class:`knncache.KnnCacheWarning`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from knncache import (
    EphemeralStore,
    KnnCacheWarning,
    KnnRef,
    KnnStore,
    StoreWriteError,
    fingerprint,
)
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan

__all__ = [
    "PAIRWISE_ARRAY",
    "Prepared",
    "SharedInputs",
    "hold",
    "prepare_inputs",
    "prepare_with_fallback",
    "sample_arrays",
    "split_array",
    "split_name",
]

#: Name of the shared pairwise-distance array inside a knncache entry. The suffix is bumped
#: whenever :func:`ssddbc._distances.pairwise_euclidean` changes its numbers.
PAIRWISE_ARRAY = "pairwise_euclidean_v1"

# Rows of the shared split array (one int64 (4, N) array, so one file and one checksum).
TARGETS, KNOWN, LABELED, EVAL = range(4)


@dataclass(frozen=True)
class SharedInputs:
    """What the main process prepared once for one feature matrix, and the route chosen.

    Attributes
    ----------
    ref : KnnRef
        The knncache entry holding the graph, the features, the split array and, on the
        matrix route, the pairwise distances.
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
    silhouette_index_array, silhouette_rows_array : str
        Names of the sample's indices and distance rows in the entry ("" when unsampled).
    silhouette_request, silhouette_seed : int
        The plan's sample size and seed (what a worker needs to rebuild the sample).
    """

    ref: KnnRef
    split_array: str
    has_pairwise: bool
    searched: bool
    candidate_width: int = 0
    silhouette_sample: int = 0
    silhouette_index_array: str = ""
    silhouette_rows_array: str = ""
    silhouette_request: int = 0
    silhouette_seed: int = 0


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


def _sample_names(split: str, size: int, seed: int) -> tuple[str, str]:
    tag = f"s{size}_seed{seed}_{split.removeprefix('split_')}"
    return f"silhouette_index_{tag}", f"silhouette_rows_{tag}"


def sample_arrays(
    features: Any, labeled_mask: Any, size: int, seed: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The silhouette sample's indices and their distance rows to every sample."""
    from ssddbc.evaluation import silhouette_rows, silhouette_sample_indices

    index = silhouette_sample_indices(np.asarray(labeled_mask, dtype=bool), size, seed)
    return index, silhouette_rows(features, index)


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
) -> SharedInputs:
    """Ensure everything the configurations of one feature matrix share, once.

    Runs at most one neighbour search (at the plan's graph width) and computes the pairwise
    distances (N <= ``pairwise_max_n``) and the sampled silhouette rows (N >
    ``exact_silhouette_max_n``) at most once per feature matrix; on a warm store it runs
    none of them.

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
        workers read it.

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
    if pin_into is not None:
        pin_into.enter_context(store.pin(fingerprint(features)))
    searches_before = store.stats["searches"]
    ref = store.ensure(features, route.graph_width, store_features=True)
    searched = store.stats["searches"] > searches_before

    split = split_array(targets, known_mask, labeled_mask, eval_mask)
    name = split_name(split)
    store.ensure_array(ref, name, lambda _features: split)

    has_pairwise = route.pairwise
    if has_pairwise:
        from ssddbc._distances import pairwise_euclidean

        store.ensure_array(ref, PAIRWISE_ARRAY, pairwise_euclidean)
    if route.exact_silhouette:
        return SharedInputs(
            ref=ref,
            split_array=name,
            has_pairwise=has_pairwise,
            searched=searched,
            candidate_width=int(ref.k),
        )

    labeled = np.asarray(labeled_mask, dtype=bool)
    request, seed = route.silhouette_sample_size, route.silhouette_seed
    size = min(request, int(np.count_nonzero(~labeled)))
    index_name, rows_name = _sample_names(name, request, seed)
    if size:
        computed: dict[str, np.ndarray[Any, Any]] = {}

        def sample_index(feats: Any) -> np.ndarray[Any, Any]:
            index, rows = sample_arrays(feats, labeled, request, seed)
            computed["rows"] = rows
            return index

        def sample_rows(feats: Any) -> np.ndarray[Any, Any]:
            rows = computed.pop("rows", None)
            return sample_arrays(feats, labeled, request, seed)[1] if rows is None else rows

        store.ensure_array(ref, index_name, sample_index)
        store.ensure_array(ref, rows_name, sample_rows)
        computed.clear()
    return SharedInputs(
        ref=ref,
        split_array=name,
        has_pairwise=has_pairwise,
        searched=searched,
        candidate_width=int(ref.k),
        silhouette_sample=size,
        silhouette_index_array=index_name if size else "",
        silhouette_rows_array=rows_name if size else "",
        silhouette_request=request,
        silhouette_seed=seed,
    )


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
