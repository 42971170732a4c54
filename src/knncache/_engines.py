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
    (raised to the candidate count when smaller). Built single-threaded, so that two builds
    of the same data are the same index and the same graph (a store relies on it).
``"ivf"``
    faiss ``IndexIVFFlat`` with ``nlist`` k-means lists (``"auto"``: ``round(sqrt(N))``,
    at most ``N // 39`` so that k-means has its 39 training points per list), searched in
    the ``nprobe`` nearest lists. Trained and filled single-threaded (reproducible).

A row for which an approximate index returns fewer candidates than needed (faiss pads with
``-1``) is searched exactly, so every graph is complete; measure recall with
:func:`recall_at_k`. Prefix property (the first ``k`` columns of a graph at ``k_max`` are
the graph at ``k``): exact, always; ``"ivf"`` up to float32 near-ties at the ``k``-th
candidate; ``"hnsw"`` not guaranteed (a store keeps it anyway: it serves the first ``k``
columns of the graph at ``k_max``). Every route ends in ``check_graph``: a graph with a
non-finite distance or an invalid index is refused with ``InvalidFeaturesError``.

Limits (checked before faiss sees a value, ``InvalidParameterError`` naming it): every
parameter within :data:`ENGINE_LIMITS` (what faiss accepts: ``M >= 2``, C ``int`` values),
and, once the features' shape is known, an approximate index whose estimated size
(:func:`index_bytes`) exceeds the machine's physical memory (:func:`memory_bound`) is
refused rather than left to end in ``std::bad_alloc``.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import xxhash

from knncache._engine_workers import SHIP_RE, SHIP_TEMP_RE, distributed_exact
from knncache._entry import ENGINE_KEYED_PARAMS, ENGINE_META_KEYS, FEATURES_FILE
from knncache._errors import InvalidParameterError
from knncache._fingerprint import fingerprint
from knncache._graph import KnnGraph, check_graph, validate_features, validate_k, validate_metric
from knncache._search import search_rows

__all__ = [
    "ENGINE_DEFAULTS",
    "ENGINE_LIMITS",
    "ENGINE_META_KEYS",
    "METHODS",
    "SHIP_RE",
    "SHIP_TEMP_RE",
    "Engine",
    "check_engine",
    "compute_knn",
    "engine_meta",
    "entry_key",
    "index_bytes",
    "make_engine",
    "memory_bound",
    "private_features",
    "recall_at_k",
]

METHODS: tuple[str, ...] = tuple(ENGINE_KEYED_PARAMS)

#: Parameters of each method and their defaults (``ivf``'s ``nlist="auto"`` is resolved from
#: N). ``exact`` takes parameters only with an executor: ``blocks`` (number of query blocks,
#: default twice the executor's workers), ``scratch_dir`` (where the temporary ``.npy`` copy
#: for the workers goes, default the temp directory) and ``features_npy`` (an existing
#: ``.npy`` file holding exactly ``X``, mapped by the workers instead of a copy; a regular
#: file: a link or FIFO at that name is refused with ``ForeignObjectError``, not followed).
ENGINE_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "exact": MappingProxyType({"blocks": None, "scratch_dir": None, "features_npy": None}),
        "hnsw": MappingProxyType({"M": 32, "efConstruction": 80, "efSearch": 96}),
        "ivf": MappingProxyType({"nlist": "auto", "nprobe": 24}),
    }
)

RECALL_SAMPLE = 1000

#: The largest C ``int`` (faiss takes ``M``, ``efConstruction``, ``efSearch`` and the k-means
#: cluster count ``nlist`` as one).
C_INT_MAX = 2**31 - 1

#: The range of each approximate parameter, checked before faiss sees it. ``M >= 2``: faiss
#: draws HNSW levels with probabilities built from ``1 / log(M)``, which ``M = 1`` makes
#: empty, and the build then crashes the process (SIGSEGV). ``M <= 65536``: far beyond any
#: useful graph degree, each node's neighbour count (a C ``int`` of ``3 * M``) far from
#: overflow. The rest: at most :data:`C_INT_MAX`.
ENGINE_LIMITS: Mapping[str, Mapping[str, tuple[int, int]]] = MappingProxyType(
    {
        "exact": MappingProxyType({"blocks": (1, C_INT_MAX)}),
        "hnsw": MappingProxyType(
            {"M": (2, 65536), "efConstruction": (1, C_INT_MAX), "efSearch": (1, C_INT_MAX)}
        ),
        "ivf": MappingProxyType({"nlist": (1, C_INT_MAX), "nprobe": (1, C_INT_MAX)}),
    }
)


def memory_bound() -> int:
    """The most bytes an approximate index may be estimated to take: the physical memory.

    An index estimated (:func:`index_bytes`) beyond the machine's physical memory could only
    end in a ``MemoryError`` (``std::bad_alloc``) inside faiss, or in swapping, so it is
    refused first. Where the size is unknown (no ``sysconf``), ``2**63 - 1``.
    """
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 2**63 - 1
    if pages <= 0 or size <= 0:  # pragma: no cover - unknown
        return 2**63 - 1
    return int(pages) * int(size)


def index_bytes(method: str, params: Mapping[str, Any], n: int, dim: int) -> int:
    """Estimated peak bytes of the faiss index of ``method`` on ``n`` points of ``dim``.

    ``"hnsw"``: the float32 vectors (``4 n d``), the neighbour lists (``2 M`` C ``int``
    slots per point at level 0 and ``M`` per higher level, ``M / (M - 1)`` higher levels
    expected), their offsets and levels (12 bytes a point), and, for each of faiss's search
    threads, a visited table (``n`` bytes) and the ``efSearch`` candidate heap (16 bytes a
    slot; the single-threaded build's ``efConstruction`` heap likewise, at most ``n``
    slots). ``"ivf"``: the vectors and their ids (``4 n d + 8 n``), the ``nlist``
    centroids, and k-means' assignment of every point (16 bytes). ``"exact"``: the float32
    vectors. Parameters are the resolved ones (:data:`ENGINE_DEFAULTS` filled in).
    """
    vectors = 4 * n * dim
    if method == "hnsw":
        m = int(params["M"])
        slots = 2 * m + m / (m - 1)
        graph = n * (4 * slots + 12)
        threads = max(1, int(faiss.omp_get_max_threads()))
        search = threads * (n + 16 * int(params["efSearch"]))
        build = n + 16 * min(int(params["efConstruction"]), n)
        return int(vectors + graph + max(search, build))
    if method == "ivf":
        return vectors + 8 * n + 4 * int(params["nlist"]) * dim + 16 * n
    return vectors


def _check_memory(method: str, params: Mapping[str, Any], n: int, dim: int) -> None:
    need = index_bytes(method, params, n, dim)
    bound = memory_bound()
    if need > bound:
        named = {key: params[key] for key in ENGINE_LIMITS[method] if key in params}
        raise InvalidParameterError(
            "params",
            named,
            f"the {method} index of {n} points of dimension {dim} would take about "
            f"{need / 2**30:.3g} GiB, more than this machine's {bound / 2**30:.3g} GiB of "
            "memory; lower the parameters (or the data)",
        )


def _positive_int(method: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InvalidParameterError(
            name, value, f"{method} parameter {name} must be a positive integer"
        )
    return int(value)


def _bounded_int(method: str, name: str, value: object) -> int:
    """``value`` as an int within ``ENGINE_LIMITS[method][name]``, else raise."""
    low, high = ENGINE_LIMITS[method][name]
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not low <= int(value) <= high
    ):
        raise InvalidParameterError(
            name, value, f"{method} parameter {name} must be an integer in [{low}, {high}]"
        )
    return int(value)


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidParameterError("method", method, f"expected one of {METHODS!r}")
    return method


def _check_names(method: str, params: Mapping[str, Any]) -> None:
    defaults = ENGINE_DEFAULTS[method]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidParameterError(
            "params",
            dict(params),
            f"unknown {method} parameter(s) {unknown!r}; expected some of {sorted(defaults)!r}",
        )


def check_engine(method: object, params: object) -> tuple[str, dict[str, Any]]:
    """Validate a search method and its graph parameters, without data.

    The checks :func:`compute_knn` and ``KnnStore.ensure`` make of an approximate method's
    parameters before they look at the features; what depends on N (``nlist <= N``) is
    checked when the features come.

    Parameters
    ----------
    method : {"exact", "hnsw", "ivf"}
    params : mapping or None
        ``"exact"`` takes none here (its executor parameters belong to a call of
        :func:`compute_knn`); ``"hnsw"`` and ``"ivf"`` take some of their names in
        :data:`ENGINE_DEFAULTS`, each an integer in its range of :data:`ENGINE_LIMITS`
        (hnsw ``M`` in ``[2, 65536]``, the others in ``[1, 2**31 - 1]``; ivf's ``nlist``
        also ``"auto"``). ``None`` means no parameters.

    Returns
    -------
    (method, params)
        The method, and a new dict of the given parameters with integer values as ``int``
        (defaults are not filled in).

    Raises
    ------
    InvalidParameterError
        Naming the bad method, the unknown parameter names or the bad value.
    """
    name = _check_method(method)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidParameterError("params", params, "expected a mapping of names to values")
    out = dict(params)
    if name == "exact":
        if out:
            raise InvalidParameterError("params", out, "the exact method takes no parameters")
        return name, out
    _check_names(name, out)
    for key in ENGINE_DEFAULTS[name]:
        if key in out and not (key == "nlist" and out[key] == "auto"):
            out[key] = _bounded_int(name, key, out[key])
    return name, out


def _resolve(
    method: object, params: Mapping[str, Any], n: int, executor: Any, dim: int | None
) -> dict[str, Any]:
    """Validate ``params`` for ``method`` and fill in the defaults (``nlist="auto"`` too);
    with ``dim``, refuse an index beyond :func:`memory_bound`."""
    name = _check_method(method)
    _check_names(name, params)
    if name == "exact":
        out = {**ENGINE_DEFAULTS[name], **params}
        if executor is None and any(v is not None for v in params.values()):
            raise InvalidParameterError(
                "params", dict(params), "exact parameters apply only with an executor"
            )
        if out["blocks"] is not None:
            out["blocks"] = _bounded_int(name, "blocks", out["blocks"])
        for key in ("scratch_dir", "features_npy"):
            if out[key] is not None and not isinstance(out[key], (str, os.PathLike)):
                raise InvalidParameterError(key, out[key], "expected a path or None")
        return out
    if executor is not None:
        raise InvalidParameterError(
            "executor",
            type(executor).__name__,
            f"only the exact method runs on an executor, not {name!r}",
        )
    out = {**ENGINE_DEFAULTS[name], **check_engine(name, params)[1]}
    if name == "ivf":
        if out["nlist"] == "auto":
            out["nlist"] = max(1, min(round(math.sqrt(n)), n // 39))
        if out["nlist"] > n:
            raise InvalidParameterError("nlist", out["nlist"], f"ivf needs nlist <= N ({n} points)")
        out["nprobe"] = min(out["nprobe"], out["nlist"])
    if dim is not None:
        _check_memory(name, out, n, dim)
    return out


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
            _check_memory(self.method, self.params, arr.shape[0], arr.shape[1])
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

        ``method``, ``params`` (the keyed ones) and ``recall``: ``{"k": k, "value":
        recall_at_k(...), "sample": queries, "seed": 0}`` measured on the stored graph.
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
    resolved = _resolve(method, dict(params or {}), n, executor, dim)
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
        :func:`recall_at_k`.
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
        with _faiss_threads(1):  # one thread: the same data always builds the same index
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
    k_int = width if k is None else _positive_int("recall_at_k", "k", k)
    if k_int > min(width, n - 1):
        raise InvalidParameterError(
            "k", k, f"expected 1 <= k <= {min(width, n - 1)} (graph width and N - 1)"
        )
    size = _positive_int("recall_at_k", "sample", sample)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidParameterError("seed", seed, "expected an integer")
    rng = np.random.default_rng(int(seed))
    rows = np.sort(rng.choice(n, size=min(size, n), replace=False)).astype(np.int64)
    exact = search_rows(arr, k_int, metric, True, rows=rows).neighbors
    found = nb[rows, :k_int]
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return float(hits) / float(exact.size)
