"""Search engines behind ``compute_knn(method=...)``: approximate faiss indexes, the exact
search split across an executor's workers, recall measurement, and the engine's entry key.

The route is decided once, by :func:`make_engine`, into an :class:`Engine` (method, resolved
parameters, executor) that both :func:`knncache.compute_knn` and ``KnnStore.ensure`` carry.

Every engine shares the exact search's second half (``knncache._knn._search_rows``):
candidates' distances recomputed in float64, self dropped, rows sorted by (distance,
index). What differs is where the candidates come from:

``"exact"``
    faiss ``IndexFlatL2``, then widened until provably exact. With an executor, the query
    rows are split into blocks, each searched by a worker against the whole matrix (a
    ``.npy`` memory map), and the blocks concatenated: bit-identical to the local search,
    because each row's result depends only on that row and the whole matrix.
``"hnsw"``
    faiss ``IndexHNSWFlat(d, M)`` with ``efConstruction``, searched with ``efSearch``
    (raised to the candidate count when smaller). Built single-threaded, so that two builds
    of the same data are the same index and the same graph (a store relies on it); searched
    with all threads.
``"ivf"``
    faiss ``IndexIVFFlat`` with ``nlist`` k-means lists (``"auto"``: ``round(sqrt(N))``,
    at most ``N // 39`` so that k-means has its 39 training points per list), searched in
    the ``nprobe`` nearest lists. Trained and filled single-threaded (reproducible).

A row for which an approximate index returns fewer candidates than needed (faiss pads with
``-1``) is searched exactly, so every graph is complete. The defaults
(:data:`ENGINE_DEFAULTS`) give recall@20 >= 0.95 on the test suite's seeded 20,000 x 128 set
(a Gaussian mixture); measure your data with :func:`recall_at_k`.

Prefix property (the first ``k`` columns of a graph at ``k_max`` are the graph at ``k``):
exact, always. ``"ivf"``: the candidate set (the probed lists) does not depend on ``k``, so
it holds up to float32 near-ties at the ``k``-th candidate. ``"hnsw"``: not guaranteed (the
beam search explores more for a larger ``k``); a store keeps it anyway, since it stores
the graph at ``k_max`` and serves its first ``k`` columns.

Overflow: every engine runs through ``_search_rows``, which rescales features whose float32
squared norms would overflow by one power of two of the whole matrix (so blocks searched on
different workers agree), and every route ends in ``check_graph``: a graph with a
non-finite distance or an invalid index is refused with ``InvalidFeaturesError``.

Shipping (exact on an executor): workers map the matrix from a ``.npy`` whose last path
component is never followed (a link or FIFO there is refused): the entry's
``features.npy``, the caller's ``features_npy``, or a copy ``.knncache-ship-{hex}.npy``
written by :func:`knncache.atomic_write` into the store root (or ``scratch_dir``) and held
with a shared ``flock`` until its owner removes it. ``clear`` and ``gc`` remove such a copy
only when they can lock it exclusively and it is older than the store's grace period (a
dead owner's), and an ``atomic_write`` leftover of one past that period; nothing is
followed and nothing outside the root is touched. A read-only store refuses a miss before
anything is shipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import math
import numbers
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

from knncache._atomic import atomic_write, temp_pattern
from knncache._entry import ENGINE_KEYED_PARAMS, ENGINE_META_KEYS, FEATURES_FILE
from knncache._errors import CorruptEntryError, InvalidParameterError
from knncache._knn import KnnGraph, _search_rows, check_graph, validate_features, validate_metric
from knncache._locks import names_fd
from knncache._ref import open_at
from knncache._safefs import open_dir, open_regular

__all__ = [
    "ENGINE_DEFAULTS",
    "ENGINE_META_KEYS",
    "METHODS",
    "SHIP_RE",
    "SHIP_TEMP_RE",
    "Engine",
    "engine_meta",
    "entry_key",
    "make_engine",
    "recall_at_k",
    "run_engine",
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

# Parameters that change the graph (part of an entry's key). The exact engine's parameters
# only say how the work is spread.
_KEYED = ENGINE_KEYED_PARAMS

#: The features shipped to an executor's workers (a ``.npy`` in the store root or scratch
#: directory, held with a shared ``flock`` while in use) and ``atomic_write``'s temporary
#: file of one. Housekeeping removes an unheld one past the grace period.
SHIP_PREFIX = ".knncache-ship-"
SHIP_RE = re.compile(re.escape(SHIP_PREFIX) + r"[0-9a-f]{32}\.npy")
SHIP_TEMP_RE = re.compile(temp_pattern(SHIP_RE.pattern))

RECALL_SAMPLE = 1000


def _positive_int(method: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InvalidParameterError(
            name, value, f"{method} parameter {name} must be a positive integer"
        )
    return int(value)


def _resolve(method: str, params: Mapping[str, Any], n: int, executor: Any) -> dict[str, Any]:
    """Validate ``params`` for ``method`` and fill in the defaults (``nlist="auto"`` too)."""
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidParameterError("method", method, f"expected one of {METHODS!r}")
    defaults = ENGINE_DEFAULTS[method]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidParameterError(
            "params",
            dict(params),
            f"unknown {method} parameter(s) {unknown!r}; expected some of {sorted(defaults)!r}",
        )
    out = {**defaults, **params}
    if method == "exact":
        if executor is None and any(v is not None for v in params.values()):
            raise InvalidParameterError(
                "params", dict(params), "exact parameters apply only with an executor"
            )
        if out["blocks"] is not None:
            out["blocks"] = _positive_int(method, "blocks", out["blocks"])
        for name in ("scratch_dir", "features_npy"):
            if out[name] is not None and not isinstance(out[name], (str, os.PathLike)):
                raise InvalidParameterError(name, out[name], "expected a path or None")
        return out
    if executor is not None:
        raise InvalidParameterError(
            "executor",
            type(executor).__name__,
            f"only the exact method runs on an executor, not {method!r}",
        )
    if method == "hnsw":
        for name in ("M", "efConstruction", "efSearch"):
            out[name] = _positive_int(method, name, out[name])
    else:
        if out["nlist"] == "auto":
            out["nlist"] = max(1, min(round(math.sqrt(n)), n // 39))
        out["nlist"] = _positive_int(method, "nlist", out["nlist"])
        if out["nlist"] > n:
            raise InvalidParameterError("nlist", out["nlist"], f"ivf needs nlist <= N ({n} points)")
        out["nprobe"] = min(_positive_int(method, "nprobe", out["nprobe"]), out["nlist"])
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
        return {name: self.params[name] for name in _KEYED[self.method]}

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
            ``"overflow"``: the graph cannot be valid (see :func:`knncache._knn.check_graph`),
            whatever the method or executor.
        """
        if self.method == "exact":
            if self.executor is None:
                graph = _search_rows(arr, k, metric, exclude_self)
            else:
                graph = _distributed_exact(arr, k, metric, exclude_self, self.executor, self.params)
        else:
            graph = _approximate(arr, k, metric, exclude_self, self.method, self.params)
        check_graph(graph, arr.shape[0])
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
    method: object, params: Mapping[str, Any] | None, n: int, executor: Any = None
) -> Engine:
    """Validate a method, its parameters and an executor into an :class:`Engine`.

    Raises
    ------
    InvalidParameterError
        Unknown method or parameter, a value out of range, an executor with an approximate
        method, or an executor without ``submit``.
    """
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameterError("params", params, "expected a mapping of names to values")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidParameterError(
            "executor",
            type(executor).__name__,
            "expected a concurrent.futures.Executor or distributed.Client",
        )
    resolved = _resolve(method, dict(params or {}), n, executor)  # type: ignore[arg-type]
    return Engine(str(method), MappingProxyType(resolved), executor)


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
        Bad ``X``, ``metric``, ``method`` or ``params`` (the checks of ``ensure``).
    """
    from knncache._fingerprint import fingerprint

    validate_metric(metric)
    arr = validate_features(X, metric)
    return make_engine(method, params, arr.shape[0]).key(fingerprint(arr, metric))


def run_engine(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    method: str,
    executor: Any,
    params: Mapping[str, Any],
) -> KnnGraph:
    """``compute_knn``'s non-default routes (validated input)."""
    return make_engine(method, params, arr.shape[0], executor).compute(arr, k, metric, exclude_self)


# ---------------------------------------------------------------------- approximate
@contextlib.contextmanager
def _faiss_threads(count: int) -> Iterator[None]:
    import faiss

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
    import faiss

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

    graph = _search_rows(arr, k, metric, exclude_self, index_factory=build, prove=False)
    short = np.flatnonzero(graph.neighbors.min(axis=1) < 0)
    if short.size:
        exact = _search_rows(arr, k, metric, exclude_self, rows=short)
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
    exact = _search_rows(arr, k_int, metric, True, rows=rows).neighbors
    found = nb[rows, :k_int]
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return float(hits) / float(exact.size)


# ---------------------------------------------------------------------- exact on workers
def _worker_count(executor: Any) -> int:
    with contextlib.suppress(Exception):
        info = executor.scheduler_info()  # distributed.Client
        return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
    count = getattr(executor, "_max_workers", None)  # concurrent.futures executors
    return int(count) if isinstance(count, int) and count > 0 else 4


def _map_npy(path: str, expected_fp: str) -> npt.NDArray[Any]:
    """Read-only map of the ``.npy`` file ``path``: a regular file (its last component is not
    followed, a FIFO or device never opened), truncated or foreign ones refused."""
    directory, name = os.path.split(path)
    dfd = open_dir(directory or ".")
    try:
        return open_at(dfd, name, directory)
    except ValueError as exc:
        raise CorruptEntryError(expected_fp, f"{path!r}: {exc}") from None
    finally:
        os.close(dfd)


def _search_block(
    path: str,
    expected_fp: str,
    k: int,
    metric: str,
    exclude_self: bool,
    start: int,
    stop: int,
) -> tuple[int, KnnGraph]:
    """Worker side: map the matrix, check it is the caller's, search rows ``start:stop``.

    The block's rows are searched against the whole matrix with the same power-of-two
    scaling as the local search (it depends on the whole matrix), so blocks agree bit for bit
    with it; the caller checks the merged graph.
    """
    from knncache._fingerprint import fingerprint

    arr = _map_npy(path, expected_fp)
    if fingerprint(arr, metric) != expected_fp:
        raise CorruptEntryError(expected_fp, f"{path!r} does not hold the features being searched")
    rows = np.arange(start, stop, dtype=np.int64)
    graph = _search_rows(arr, k, metric, exclude_self, rows=rows)
    return start, KnnGraph(np.ascontiguousarray(graph.neighbors), graph.distances)


_HOLD_TIMEOUT = 10.0


@contextlib.contextmanager
def _shipped(arr: npt.NDArray[Any], scratch_dir: Any) -> Iterator[str]:
    """A ``.npy`` copy of ``arr`` for the workers: its path, for the duration of the block.

    Written with :func:`knncache.atomic_write` (mode ``0o666 & ~umask``, never through a
    link) under a random :data:`SHIP_RE` name, then held with a shared ``flock`` until it is
    removed, so that ``clear`` and ``gc`` of a store whose root holds it (they take it
    exclusively, without waiting) never remove it while it is in use. Where flock is refused
    the copy is simply not held (housekeeping cannot lock it either, so it is kept).
    """
    directory = os.fspath(scratch_dir) if scratch_dir is not None else tempfile.gettempdir()
    name = f"{SHIP_PREFIX}{secrets.token_hex(16)}.npy"
    path = os.path.join(directory, name)
    atomic_write(path, lambda w: np.save(w, np.ascontiguousarray(arr), allow_pickle=False))
    dfd = open_dir(directory)
    fd: int | None = None
    try:
        fd, _ = open_regular(dfd, name, where=directory)
        deadline = time.monotonic() + _HOLD_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # a housekeeper checking it (it keeps a fresh file)
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            except OSError:  # flock unsupported here
                break
        yield path
    finally:
        try:
            if fd is None or names_fd(dfd, name, fd):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)
        finally:
            if fd is not None:
                os.close(fd)
            os.close(dfd)


def _distributed_exact(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    executor: Any,
    p: Mapping[str, Any],
) -> KnnGraph:
    from knncache._fingerprint import fingerprint

    n = arr.shape[0]
    blocks = p["blocks"] if p["blocks"] is not None else 2 * _worker_count(executor)
    bounds = np.unique(np.linspace(0, n, min(blocks, n) + 1).astype(np.int64))
    fp = fingerprint(arr, metric)
    with contextlib.ExitStack() as stack:
        if p["features_npy"] is not None:
            path = os.fspath(p["features_npy"])
        else:
            path = stack.enter_context(_shipped(arr, p["scratch_dir"]))
        futures = [
            executor.submit(_search_block, path, fp, k, metric, exclude_self, int(lo), int(hi))
            for lo, hi in itertools.pairwise(bounds)
        ]
        parts = [f.result() for f in futures]
    parts.sort(key=lambda part: part[0])
    neighbors = np.concatenate([g.neighbors for _, g in parts], axis=0)
    distances = np.concatenate([g.distances for _, g in parts], axis=0)
    return KnnGraph(neighbors, distances)
