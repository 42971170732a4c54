"""The search engines and ``compute_knn``, which routes to them.

The route is decided once, by :func:`make_engine`, into an :class:`Engine` (method, resolved
parameters, executor) that both :func:`compute_knn` and ``KnnStore.ensure`` carry. Every
engine shares the exact search's second half (:func:`knncache._search.search_rows`):
candidates' distances recomputed in float64, self dropped, rows sorted by (distance,
index). What differs is where the candidates come from:

``"exact"``
    faiss ``IndexFlatL2``, then widened until provably exact; with an executor, split into
    blocks of query rows searched by its workers (:mod:`knncache._engine_workers`),
    bit-identical to the local search.
``"hnsw"``
    faiss ``IndexHNSWFlat(d, M)`` with ``efConstruction``, searched with ``efSearch``
    (raised to the candidate count when smaller).
``"ivf"``
    faiss ``IndexIVFFlat`` with ``nlist`` k-means lists (``"auto"``: ``round(sqrt(N))``,
    at most ``N // 39`` so that k-means has its 39 training points per list), searched in
    the ``nprobe`` nearest lists.

Both build (train, add) and search with ``threads`` faiss threads (default: every core
the caller allows, ``faiss.omp_get_max_threads()`` at the call). A multi-threaded build may
differ from run to run (insertion order races, SIMD paths across machines); ``threads=1``
is the deterministic build: the same data on the same machine gives a bit-identical graph.
A store does not rely on either: each approximate build names its files with a random tag
(see :mod:`knncache._write`).

A row for which an approximate index returns fewer candidates than needed (faiss pads with
``-1``) is searched exactly, so every graph is complete; measure recall with
:func:`recall_at_k`. Prefix property (the first ``k`` columns of a graph at ``k_max`` are
the graph at ``k``): exact, always; ``"ivf"`` up to float32 near-ties at the ``k``-th
candidate; ``"hnsw"`` not guaranteed (a store keeps it anyway: it serves the first ``k``
columns of the graph at ``k_max``). Every route ends in ``check_graph``: a graph with a
non-finite distance or an invalid index is refused with ``InvalidFeaturesError``.

The parameters, their limits and the memory bound: :mod:`knncache._engine_params`.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import xxhash

from knncache._engine_params import (
    check_memory,
    positive_int,
    resolve_params,
)
from knncache._engine_workers import SHIP_RE, SHIP_TEMP_RE, distributed_exact
from knncache._entry import ENGINE_KEYED_PARAMS, ENGINE_META_KEYS, FEATURES_FILE
from knncache._errors import InvalidParameterError
from knncache._fingerprint import fingerprint
from knncache._graph import KnnGraph, check_graph, validate_features, validate_k, validate_metric
from knncache._search import search_rows

__all__ = [
    "ENGINE_META_KEYS",
    "SHIP_RE",
    "SHIP_TEMP_RE",
    "Engine",
    "compute_knn",
    "engine_meta",
    "entry_key",
    "make_engine",
    "private_features",
    "recall_at_k",
]

RECALL_SAMPLE = 1000


@dataclass(frozen=True)
class Engine:
    """A decided route: method, resolved parameters, and the executor (exact only).

    Attributes
    ----------
    method : str
    params : dict
        Every parameter of the method, defaults filled in.
    executor : object or None
    """

    method: str
    params: Mapping[str, Any]
    executor: Any = field(default=None, compare=False)

    @property
    def keyed_params(self) -> dict[str, Any]:
        """The parameters that change the graph (written to the meta and hashed in the key)."""
        return {name: self.params[name] for name in ENGINE_KEYED_PARAMS[self.method]}

    def key(self, fp: str) -> str:
        """The store key of this engine's graph of features with fingerprint ``fp``.

        The exact engine keeps ``fp`` itself (existing entries stay valid). Any other engine
        hashes, with XXH3-128, ``b"knncache-engine\\0"``, ``fp`` and the sorted-keys JSON of
        ``{"method": method, "params": keyed_params}``, so each method and parameter set is
        its own entry.
        """
        if self.method == "exact":
            return fp
        h = xxhash.xxh3_128(b"knncache-engine\0")
        h.update(fp.encode())
        spec = {"method": self.method, "params": self.keyed_params}
        h.update(json.dumps(spec, sort_keys=True).encode())
        return h.hexdigest()

    def in_entry(self, entry: Path, old: Mapping[str, Any] | None) -> Engine:
        """This engine as a store runs it for the entry directory ``entry``.

        With an executor, unless told otherwise, the workers map the features from the
        entry's ``features.npy`` when the committed meta ``old`` lists it (the same bytes:
        the entry is keyed by them), else from a temporary ``.npy`` in the store root, which
        workers must see anyway to use the refs.
        """
        if self.executor is None:
            return self
        params = dict(self.params)
        if params["scratch_dir"] is None:
            params["scratch_dir"] = os.fspath(entry.parent)
        if params["features_npy"] is None and old is not None and FEATURES_FILE in old["files"]:
            params["features_npy"] = os.fspath(entry / FEATURES_FILE)
        return Engine(self.method, MappingProxyType(params), self.executor)

    def compute(self, arr: npt.NDArray[Any], k: int, metric: str, exclude_self: bool) -> KnnGraph:
        """Run the search on validated features.

        Raises
        ------
        InvalidFeaturesError
            ``"overflow"``: the graph cannot be valid (see :func:`knncache._graph.check_graph`),
            whatever the method or executor.
        InvalidParameterError
            An approximate index estimated beyond :func:`memory_bound` (before faiss runs).
        """
        if self.method != "exact":
            check_memory(self.method, self.params, arr.shape[0], arr.shape[1])
        if self.method == "exact":
            if self.executor is None:
                graph = search_rows(arr, k, metric, exclude_self)
            else:
                graph = distributed_exact(arr, k, metric, exclude_self, self.executor, self.params)
        else:
            graph = _approximate(arr, k, metric, exclude_self, self.method, self.params)
        check_graph(graph, arr.shape[0], arr)
        return graph

    def meta_fields(self, graph: KnnGraph, arr: npt.NDArray[Any], metric: str) -> dict[str, Any]:
        """What an entry's ``meta.json`` records about the engine (nothing for exact).

        ``method``, ``params`` (the keyed ones), ``recall``: ``{"k": k, "value":
        recall_at_k(...), "sample": queries, "seed": 0}`` measured on the stored graph, and
        ``build``: ``{"threads": T, "deterministic": T == 1, "faiss": faiss.__version__,
        "tag": 16 random hex}``, the tag naming this build's graph files.
        """
        if self.method == "exact":
            return {}
        k = int(graph.neighbors.shape[1])
        sample = min(RECALL_SAMPLE, arr.shape[0])
        value = recall_at_k(graph.neighbors, arr, k, sample=sample, seed=0, metric=metric)
        return {
            "method": self.method,
            "params": self.keyed_params,
            "recall": {"k": k, "value": value, "sample": sample, "seed": 0},
            "build": {
                "threads": int(self.params["threads"]),
                "deterministic": int(self.params["threads"]) == 1,
                "faiss": str(faiss.__version__),
                "tag": secrets.token_hex(8),
            },
        }


def engine_meta(
    engine: Engine,
    graph: KnnGraph | None,
    arr: npt.NDArray[Any],
    metric: str,
    old: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The engine's fields of a new ``meta.json``: measured on ``graph`` when one was just
    computed, else carried over from the ``old`` meta whose graph files are kept."""
    if graph is not None:
        return engine.meta_fields(graph, arr, metric)
    return {key: old[key] for key in ENGINE_META_KEYS if old is not None and key in old}


def make_engine(
    method: object,
    params: Mapping[str, Any] | None,
    n: int,
    executor: Any = None,
    *,
    dim: int | None = None,
) -> Engine:
    """Validate a method, its parameters and an executor into an :class:`Engine`.

    With ``dim`` (the features' dimension), an approximate index whose estimated size
    (:func:`index_bytes`) exceeds :func:`memory_bound` is refused here; without it,
    :meth:`Engine.compute` refuses it before faiss runs.

    Raises
    ------
    InvalidParameterError
        Unknown method or parameter, a value out of range (:data:`ENGINE_LIMITS`), an index
        beyond the memory bound, an executor with an approximate method, or an executor
        without ``submit``.
    """
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameterError("params", params, "expected a mapping of names to values")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidParameterError(
            "executor",
            type(executor).__name__,
            "expected a concurrent.futures.Executor or distributed.Client",
        )
    resolved = resolve_params(method, dict(params or {}), n, executor, dim)
    return Engine(str(method), MappingProxyType(resolved), executor)


def private_features(X: Any, metric: str) -> tuple[npt.NDArray[Any], str]:
    """A validated private copy of ``X`` and its :func:`knncache.fingerprint`.

    What a store's miss keys, searches and writes: one C-ordered copy of ``X`` (the same
    dtype: ``N x d`` values more memory, freed with the call) that nothing else
    references, so a caller that changes ``X`` meanwhile (another thread, another writer
    of a memmap's file) cannot make an entry hold the graph or features of other bytes
    than its key names. The copy is validated (:func:`knncache._graph.validate_features`)
    and then fingerprinted: if ``X`` changed since the store's first fingerprint (its
    lock-free hit check), the entry is that of the copy's bytes.

    Raises
    ------
    InvalidFeaturesError, UnknownMetricError
        As :func:`validate_features`.
    """
    arr = _private_copy(X, metric)
    return arr, fingerprint(arr, metric)


def _private_copy(X: Any, metric: str) -> npt.NDArray[Any]:
    """Validated C-ordered copy of ``X`` (anything but a 2-D real array refused uncopied)."""
    validate_metric(metric)
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    if arr.dtype.kind in "iuf" and arr.ndim == 2:
        arr = np.array(arr, order="C", copy=True, subok=False)
    return validate_features(arr, metric)


def entry_key(
    X: Any,
    metric: str = "euclidean",
    *,
    method: str = "exact",
    params: Mapping[str, Any] | None = None,
) -> str:
    """The store key of the graph ``KnnStore.ensure(X, k, metric, method=, params=)`` keeps.

    For the exact method this is :func:`knncache.fingerprint` of ``X``; an approximate
    method and its resolved parameters give their own key (see :meth:`Engine.key`). Pass it
    to ``store.pin`` before ``ensure`` to pin an approximate entry, or to ``store.get``.

    Raises
    ------
    InvalidFeaturesError, UnknownMetricError, InvalidParameterError
        Bad ``X``, ``metric``, ``method`` or ``params`` (the checks of ``ensure``, the
        memory bound included).
    """
    validate_metric(metric)
    arr = validate_features(X, metric)
    engine = make_engine(method, params, arr.shape[0], dim=arr.shape[1])
    return engine.key(fingerprint(arr, metric))


def compute_knn(
    X: Any,
    k: int,
    metric: str = "euclidean",
    *,
    exclude_self: bool = True,
    method: str = "exact",
    executor: Any = None,
    **params: Any,
) -> KnnGraph:
    """k-nearest-neighbour graph of the rows of ``X``: exact by default, or approximate.

    faiss (``IndexFlatL2``, float32) proposes ``k`` plus a margin of candidates per row; their
    distances are then recomputed exactly in float64 (difference norm) and cast to float32,
    the row's own index is dropped wherever it appears (duplicates of a point are still its
    neighbours, itself is not), and each row is sorted by (distance, index). Rows where the
    candidate window might hide a tie or a near-tie (within the float32 error bound of the
    faiss distances) are recomputed by exact brute force. The output therefore does not depend
    on faiss' thread count or BLAS blocking: the same input gives bit-identical output.

    Because of the (distance, index) order, ``graph.neighbors[:, :k2]`` of a graph computed at
    ``k`` is the graph at any ``k2 <= k``.

    Parameters
    ----------
    X : array_like
        Feature matrix ``(N, d)``, integer or floating dtype (float64 accepted; the candidate
        search runs in float32, the final distances in float64), of any finite magnitude.
        It is copied once (``N x d`` values of its dtype, freed on return) and the copy
        searched, so a change to ``X`` during the call (another thread) cannot mix two
        matrices into one graph.
    k : int
        Number of neighbours, ``1 <= k <= N - 1`` (``<= N`` with ``exclude_self=False``).
    metric : {"euclidean", "cosine"}
        ``"euclidean"`` returns true (not squared) distances; ``"cosine"`` returns
        ``1 - cos(x_i, x_j)``, computed on L2-normalised rows.
    exclude_self : bool, keyword-only
        Drop each point from its own neighbour list (default). With ``False`` a point is its
        own neighbour at distance 0 (listed first unless a duplicate has a smaller index).
    method : {"exact", "hnsw", "ivf"}, keyword-only
        ``"exact"`` is the search described above. ``"hnsw"`` (faiss ``IndexHNSWFlat``) and
        ``"ivf"`` (faiss ``IndexIVFFlat``) replace the candidate search by an approximate
        one; the candidates' distances are still recomputed exactly and each row sorted by
        (distance, index), but a true neighbour may be missing. Their parameters and
        defaults are in :data:`ENGINE_DEFAULTS`; measure the result with
        :func:`recall_at_k`. They build and search with ``threads`` faiss threads (default:
        ``faiss.omp_get_max_threads()`` now, every core the caller allows); a
        multi-threaded build may differ between runs, ``threads=1`` gives the same graph
        bit for bit on the same machine. The exact method's output never depends on the
        thread count.
    executor : concurrent.futures.Executor or distributed.Client, optional, keyword-only
        Exact method only: split the query rows into blocks searched by the executor's
        workers, each against the whole matrix, and merge; the result is bit-identical to
        the local one. Workers must see the same file system (the matrix reaches them as a
        ``.npy`` memory map: the file behind ``X`` when it is one, else a temporary copy).
    **params
        Parameters of ``method`` (see :data:`knncache.ENGINE_DEFAULTS`); unknown names are
        refused.

    Returns
    -------
    KnnGraph
        ``(neighbors int64 (N, k), distances float32 (N, k))``.

    Raises
    ------
    InvalidFeaturesError
        Not a 2-D real array of at least 2 rows, a non-finite value, or (cosine) a
        zero row (the first offending row is named); also ``"overflow"`` when a row's
        distances do not fit in float32 (every method and executor).
    InvalidKError
        If ``k`` is not an integer in range.
    UnknownMetricError
        If ``metric`` is unknown.
    InvalidParameterError
        Unknown ``method``, unknown or out-of-range ``params`` (:data:`ENGINE_LIMITS`), an
        approximate index estimated beyond this machine's memory (:func:`memory_bound`), or
        an ``executor`` with an approximate method.
    """
    validate_metric(metric)
    arr = _private_copy(X, metric)
    n = arr.shape[0]
    k = validate_k(k, n, exclude_self=bool(exclude_self))
    engine = make_engine(method, params, n, executor, dim=arr.shape[1])
    return engine.compute(arr, k, metric, bool(exclude_self))


# ---------------------------------------------------------------------- approximate
@contextlib.contextmanager
def _faiss_threads(count: int) -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _approximate(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    method: str,
    p: Mapping[str, Any],
) -> KnnGraph:
    def build(x32: npt.NDArray[np.float32], kk: int) -> Any:
        d = x32.shape[1]
        index: Any
        if method == "hnsw":
            index = faiss.IndexHNSWFlat(d, p["M"])
            index.hnsw.efConstruction = p["efConstruction"]
            index.add(x32)
        else:
            quantizer = faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, p["nlist"])
            index.train(x32)
            index.add(x32)
        if method == "hnsw":
            index.hnsw.efSearch = max(p["efSearch"], kk)
        else:
            index.nprobe = p["nprobe"]
        return index

    # Build and search with exactly the resolved thread count (1: deterministic).
    with _faiss_threads(int(p["threads"])):
        graph = search_rows(arr, k, metric, exclude_self, index_factory=build, prove=False)
    short = np.flatnonzero(graph.neighbors.min(axis=1) < 0)
    if short.size:
        exact = search_rows(arr, k, metric, exclude_self, rows=short)
        graph.neighbors[short] = exact.neighbors
        graph.distances[short] = exact.distances
    return graph


def recall_at_k(
    approx_neighbors: Any,
    X: Any,
    k: int | None = None,
    *,
    sample: int = RECALL_SAMPLE,
    seed: int = 0,
    metric: str = "euclidean",
) -> float:
    """Recall@k of a neighbour graph against the exact search, on a seeded sample of queries.

    ``sample`` query rows are drawn without replacement with ``numpy.random.default_rng(
    seed)``; their exact ``k`` nearest neighbours (self excluded, the search of
    :func:`knncache.compute_knn`) are computed against all of ``X``, and the recall is the
    fraction of them found among the first ``k`` columns of ``approx_neighbors``. A tie at
    the ``k``-th distance counts only the neighbour the exact search kept (on continuous
    data ties do not occur).

    Parameters
    ----------
    approx_neighbors : array_like
        ``(N, k_graph)`` integer neighbour indices, self excluded (a ``KnnGraph.neighbors``).
    X : array_like
        The features ``(N, d)`` the graph was computed from.
    k : int, optional
        ``1 <= k <= k_graph``; default ``k_graph``.
    sample : int, keyword-only
        Number of query rows (all rows when ``>= N``).
    seed : int, keyword-only
        Seed of the query sample.
    metric : {"euclidean", "cosine"}, keyword-only

    Returns
    -------
    float
        In ``[0, 1]``; 1.0 for an exact graph.

    Raises
    ------
    InvalidFeaturesError, UnknownMetricError
        Bad ``X`` or ``metric``.
    InvalidParameterError
        ``approx_neighbors`` not an ``(N, >=k)`` integer array, or bad ``k``/``sample``/``seed``.
    """
    validate_metric(metric)
    arr = validate_features(X, metric)
    n = arr.shape[0]
    nb = np.asarray(approx_neighbors)
    if nb.ndim != 2 or nb.shape[0] != n or nb.dtype.kind not in "iu" or nb.shape[1] < 1:
        raise InvalidParameterError(
            "approx_neighbors",
            f"array of shape {nb.shape} dtype {nb.dtype}",
            f"expected an integer array of shape ({n}, k) matching X",
        )
    width = nb.shape[1]
    k_int = width if k is None else positive_int("recall_at_k", "k", k)
    if k_int > min(width, n - 1):
        raise InvalidParameterError(
            "k", k, f"expected 1 <= k <= {min(width, n - 1)} (graph width and N - 1)"
        )
    size = positive_int("recall_at_k", "sample", sample)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidParameterError("seed", seed, "expected an integer")
    rng = np.random.default_rng(int(seed))
    rows = np.sort(rng.choice(n, size=min(size, n), replace=False)).astype(np.int64)
    exact = search_rows(arr, k_int, metric, True, rows=rows).neighbors
    found = nb[rows, :k_int]
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return float(hits) / float(exact.size)
