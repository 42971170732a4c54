"""Exact k-nearest-neighbour search: validation, faiss candidates, exact float64 refinement."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from knncache._errors import InvalidFeaturesError, InvalidKError, UnknownMetricError

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "METRICS",
    "KnnGraph",
    "check_graph",
    "compute_knn",
    "validate_features",
    "validate_k",
]

METRICS: tuple[str, ...] = ("cosine", "euclidean")

# Refinement blocks hold at most this many float64 values (~2 MB): small enough to stay in
# cache, which measured ~2x faster than large blocks.
_BLOCK_VALUES = 250_000
_EPS32 = float(np.finfo(np.float32).eps)
_F32_MAX = float(np.finfo(np.float32).max)
# Below this largest magnitude, squared distances lose precision to float32 underflow in the
# candidate search: such inputs are rescaled by a power of two (exact) first.
_TINY = 2.0**-20


class KnnGraph(NamedTuple):
    """A k-nearest-neighbour graph; unpacks as ``neighbors, distances = graph``.

    Attributes
    ----------
    neighbors : numpy.ndarray
        ``int64`` array of shape ``(N, k)``: row ``i`` lists the neighbours of point ``i``,
        nearest first, ties broken by the smaller index.
    distances : numpy.ndarray
        ``float32`` array of shape ``(N, k)``: the matching distances (true Euclidean
        distances for ``"euclidean"``, ``1 - cos`` for ``"cosine"``), non-decreasing along
        each row.
    """

    neighbors: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]

    def to_csr(
        self, k: int | None = None, *, mode: str = "distance", include_self: bool = False
    ) -> csr_matrix:
        """The graph as a ``scipy.sparse.csr_matrix`` in scikit-learn's sorted-graph form.

        The same matrix as ``sklearn.neighbors.kneighbors_graph(X, k, mode=mode,
        include_self=include_self)`` on the same data (up to the order of tied neighbours
        and the last bits of the distances): ``N x N``, ``k`` stored values per row, each
        row's values non-decreasing (``sort_graph_by_row_values`` accepts it as is), and
        zero distances of duplicate points kept as explicit zeros, so estimators with
        ``metric="precomputed"`` (DBSCAN, HDBSCAN, Isomap, TSNE, SpectralClustering) see
        every neighbour. scipy is imported here, not by ``knncache``.

        Parameters
        ----------
        k : int, optional
            Neighbours per row, ``1 <= k <= graph width`` (``<= width + 1`` with
            ``include_self``); default: the graph's width (plus one with ``include_self``).
        mode : {"distance", "connectivity"}, keyword-only
            Stored values: the distances, or ones.
        include_self : bool, keyword-only
            Put each point first in its own row at distance 0, counted among the ``k``
            (scikit-learn's ``include_self=True``).

        Returns
        -------
        scipy.sparse.csr_matrix
            ``float64`` values (as scikit-learn's), ``int64`` or ``int32`` indices.

        Raises
        ------
        MissingDependencyError
            If scipy is not installed (``pip install scipy``).
        InvalidParameterError
            If ``mode`` or ``include_self`` is invalid.
        InvalidKError
            If ``k`` is out of range.
        """
        from knncache._export import graph_to_csr  # scipy is optional: imported on use

        return graph_to_csr(self, k, mode=mode, include_self=include_self)


def validate_metric(metric: object) -> str:
    """Return ``metric`` if it is a supported metric name, else raise.

    Raises
    ------
    UnknownMetricError
        If ``metric`` is not one of :data:`METRICS`.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise UnknownMetricError(metric, METRICS)
    return metric


def validate_features(X: Any, metric: str = "euclidean") -> npt.NDArray[Any]:
    """Check that ``X`` is a searchable feature matrix and return it as an ndarray.

    The array is not copied (a memmap stays a memmap).

    Parameters
    ----------
    X : array_like
        Feature matrix of shape ``(N, d)`` with a real numeric dtype.
    metric : str
        ``"cosine"`` additionally refuses rows of norm zero.

    Returns
    -------
    numpy.ndarray
        ``X`` as an ndarray.

    Any finite magnitude is accepted (up to the dtype's maximum): :func:`compute_knn`
    rescales by a power of two where squared norms would overflow, and refuses only a graph
    whose distances do not fit in float32.

    Raises
    ------
    InvalidFeaturesError
        Not 2-D, empty, fewer than 2 rows, non-numeric dtype, a non-finite value (the first
        offending row is named), or (cosine) a zero row.
    UnknownMetricError
        If ``metric`` is unknown.
    """
    validate_metric(metric)
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    if arr.dtype.kind not in "iuf":
        raise InvalidFeaturesError(
            "dtype",
            f"features must be a 2-D real numeric (int or float) array, got shape {arr.shape} "
            f"dtype {arr.dtype}",
        )
    if arr.ndim != 2:
        raise InvalidFeaturesError(
            "not_2d", f"features must be a 2-D array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise InvalidFeaturesError(
            "empty", f"features must be non-empty, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.shape[0] < 2:
        raise InvalidFeaturesError(
            "too_few_rows", f"features need at least 2 rows for a neighbour graph, got {arr.shape}"
        )
    # Row blocks of ~16 MB, so that checking a large memmap needs no full-size temporary.
    step = max(1, (16 << 20) // max(1, arr.shape[1] * arr.dtype.itemsize))
    for start in range(0, arr.shape[0], step):
        block = arr[start : start + step]
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                row = start + int(np.flatnonzero(bad)[0])
                raise InvalidFeaturesError(
                    "non_finite",
                    f"features contain a non-finite value (nan or inf) in row {row}",
                    row=row,
                )
        if metric == "cosine":
            zero = ~(block != 0).any(axis=1)
            if zero.any():
                row = start + int(np.flatnonzero(zero)[0])
                raise InvalidFeaturesError(
                    "zero_norm",
                    f"cosine distance is undefined for a zero vector; row {row} is all zeros",
                    row=row,
                )
    return arr


def validate_k(k: object, n: int, *, exclude_self: bool = True) -> int:
    """Return ``k`` as an int if ``1 <= k < n`` (``<= n`` when self is kept), else raise.

    Raises
    ------
    InvalidKError
        If ``k`` is not an integer (``bool`` included) or out of range.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidKError(k, n, f"k must be an integer, got {k!r} ({type(k).__name__})")
    k_int = int(k)
    upper = n - 1 if exclude_self else n
    if not 1 <= k_int <= upper:
        raise InvalidKError(
            k_int,
            n,
            f"k must satisfy 1 <= k <= {upper} for {n} points "
            f"({'self excluded' if exclude_self else 'self included'}), got k={k_int}",
        )
    return k_int


def check_graph(graph: KnnGraph, n: int) -> None:
    """Refuse a graph that must never be written or served.

    Raises
    ------
    InvalidFeaturesError
        ``"overflow"``: a row's distances are not finite (beyond the float32 range), or a
        neighbour index is outside ``[0, n)``; the first such row is named.
    """
    nb, ds = graph
    bad_ds = np.asarray(~np.isfinite(ds).all(axis=1))
    bad_nb = ((nb < 0) | (nb >= n)).any(axis=1)
    bad = bad_ds | bad_nb
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        why = (
            "its distances exceed the float32 range (about 3.4e38) in which graphs are stored"
            if bool(bad_ds[row])
            else "the search found no valid neighbour index for it"
        )
        raise InvalidFeaturesError(
            "overflow", f"cannot build a valid graph for features row {row}: {why}", row=row
        )


def _pow2_scale(max_abs: float, dim: int) -> float:
    """A power of two ``s`` with ``max_abs * s`` safe for the float32 candidate search.

    1.0 (no scaling, the bit-exact historical path) unless squared norms could overflow
    float32 (``4 * (dim + 4) * max_abs**2`` beyond its range) or underflow it. Scaling by a
    power of two is exact, so neighbours and tie order are unchanged.
    """
    if max_abs == 0.0:
        return 1.0
    safe_max = float(np.sqrt(_F32_MAX / (16.0 * (dim + 4))))
    if _TINY <= max_abs <= safe_max:
        return 1.0
    _, exp = np.frexp(max_abs)  # max_abs = m * 2**exp, 0.5 <= m < 1
    return float(np.ldexp(1.0, -int(exp)))


def _refine_threads() -> int:
    try:
        import faiss

        wanted = int(faiss.omp_get_max_threads())
    except Exception:  # pragma: no cover - faiss always has it
        wanted = 1
    return max(1, min(wanted, os.cpu_count() or 1))


def _faiss_index(x32: npt.NDArray[np.float32]) -> Any:
    import faiss  # imported lazily: it is slow to import and not needed to load a graph

    index = faiss.IndexFlatL2(x32.shape[1])
    index.add(x32)
    return index


def _faiss_search(index: Any, queries: npt.NDArray[np.float32], kk: int) -> tuple[Any, Any]:
    dist_sq, idx = index.search(np.ascontiguousarray(queries), kk)
    return dist_sq.astype(np.float64, copy=False), idx.astype(np.int64, copy=False)


def _exact_sq(
    src: npt.NDArray[Any], rows: npt.NDArray[np.int64], cand: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Squared distances between ``src[rows[i]]`` and each ``src[cand[i, j]]`` in float64.

    ``src`` may be narrower than float64 (gathering float32 halves the memory traffic); the
    difference is taken in float64, where float32 and int32 values are exact.
    """
    diff = np.subtract(src[cand], src[rows][:, None, :], dtype=np.float64)
    out: npt.NDArray[np.float64] = np.einsum("nkd,nkd->nk", diff, diff)
    return out


def _to_distance(sq: npt.NDArray[np.float64], metric: str) -> npt.NDArray[np.float32]:
    # Cosine on unit vectors: 1 - cos = |u - v|^2 / 2, more accurate than 1 - u.v near 0.
    d = np.sqrt(sq) if metric == "euclidean" else sq * 0.5
    return d.astype(np.float32)


def _select(
    row_ids: npt.NDArray[np.int64],
    cand: npt.NDArray[np.int64],
    dist32: npt.NDArray[np.float32],
    k: int,
    exclude_self: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Per row: drop self, sort by (distance, index), keep the first ``k``."""
    m = cand.shape[1]
    d = dist32.astype(np.float64)
    if exclude_self:
        d[cand == row_ids[:, None]] = np.inf
    # Invalid faiss slots (-1) sort last.
    d[cand < 0] = np.inf
    order = np.lexsort((cand, d), axis=-1) if m else np.empty_like(cand)
    order = order[:, :k]
    nb = np.take_along_axis(cand, order, axis=1)
    ds = np.take_along_axis(dist32, order, axis=1)
    return nb, ds


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
        search runs in float32, the final distances in float64).
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
        defaults are in :data:`knncache.ENGINE_DEFAULTS`; measure the result with
        :func:`knncache.recall_at_k`.
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
        See :func:`validate_features`; also ``"overflow"`` when a row's distances do not fit
        in float32 (every method and executor: see :func:`check_graph`).
    InvalidKError
        If ``k`` is not an integer in range.
    UnknownMetricError
        If ``metric`` is unknown.
    InvalidParameterError
        Unknown ``method``, unknown or out-of-range ``params``, or an ``executor`` with an
        approximate method.
    """
    validate_metric(metric)
    arr = validate_features(X, metric)
    n = arr.shape[0]
    k = validate_k(k, n, exclude_self=bool(exclude_self))
    if method != "exact" or executor is not None or params:
        from knncache._engines import run_engine  # the engines import this module

        return run_engine(arr, k, metric, bool(exclude_self), method, executor, params)
    graph = _search_rows(arr, k, metric, bool(exclude_self))
    check_graph(graph, n)
    return graph


def _search_rows(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    index_factory: Callable[[npt.NDArray[np.float32], int], Any] | None = None,
    prove: bool = True,
) -> KnnGraph:
    """The search behind :func:`compute_knn`, on validated input, for some query rows.

    ``rows`` (default: all) are the query rows, searched against all of ``arr``; the result
    has one row per query, identical to the same rows of the full search (each row's result
    depends on that row and the whole matrix only). ``index_factory(x32, candidates)``
    builds the candidate index from the float32 matrix (default: exact ``IndexFlatL2``);
    ``prove=False`` skips the widening that proves exactness (approximate engines: their
    candidates are final).

    Features of any finite magnitude are searched: where float32 squared norms would
    overflow (or underflow), every engine's candidate search runs on the matrix scaled by
    one power of two (exact, the same for every block of rows, so blocks searched apart
    agree bit for bit) and distances are scaled back. The result is not checked here (an
    approximate row may still hold ``-1``); callers apply :func:`check_graph` to the whole
    graph before it is returned, written or served.
    """
    n, dim = arr.shape

    max_abs = _max_abs(arr)
    scale = _pow2_scale(max_abs, dim) if metric == "euclidean" else 1.0
    if metric == "euclidean" and arr.dtype.itemsize <= 4 and scale == 1.0:
        # float64 holds these values exactly: the refinement reads them as they are.
        src: npt.NDArray[Any] = np.ascontiguousarray(arr)
        x32 = np.ascontiguousarray(arr, dtype=np.float32)
    else:
        x64 = np.asarray(arr, dtype=np.float64)
        if scale != 1.0:
            x64 = x64 * scale  # exact (a power of two); distances are scaled back below
        if metric == "cosine":
            x64 = _unit_rows(x64)
        src = np.ascontiguousarray(x64)
        x32 = np.ascontiguousarray(src, dtype=np.float32)

    kk = min(n, k + 1 + max(8, k // 4))
    queries = np.arange(n, dtype=np.int64) if rows is None else rows
    index = _faiss_index(x32) if index_factory is None else index_factory(x32, kk)
    faiss_sq, cand = _faiss_search(index, x32 if rows is None else x32[rows], kk)

    sqnorm = np.einsum("nd,nd->n", src, src, dtype=np.float64)
    # Worst-case error of faiss' float32 ||x||^2 + ||y||^2 - 2 x.y (plus the float32 cast of
    # the input), as a bound on squared distance: beyond it a point outside the candidate
    # window is provably farther than the k-th kept neighbour.
    tol_sq = 4.0 * (dim + 4) * _EPS32 * (sqnorm + sqnorm.max()) + 1e-30

    neighbors = np.empty((queries.size, k), dtype=np.int64)
    distances = np.empty((queries.size, k), dtype=np.float32)

    def refine(
        pos: npt.NDArray[np.int64], c: npt.NDArray[np.int64], fsq: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        """Exact top-k of queries ``pos`` among candidates ``c``; return those not proven."""
        rows = queries[pos]
        safe = np.where(c < 0, rows[:, None], c)
        d32 = _to_distance(_exact_sq(src, rows, safe), metric)
        d32 = np.where(c < 0, np.float32(np.inf), d32).astype(np.float32)
        nb, ds = _select(rows, c, d32, k, bool(exclude_self))
        neighbors[pos] = nb
        distances[pos] = ds
        if c.shape[1] >= n or not prove:
            return pos[:0]  # every point was a candidate, or no proof is wanted
        # Every point outside the window has exact squared distance >= bound. If the k-th
        # kept distance is below it, no excluded point can tie or beat a kept one.
        bound = fsq.max(axis=1) - tol_sq[rows]
        bound_d = _to_distance(np.maximum(bound, 0.0), metric)
        unsafe = ~(bound_d > ds[:, -1]) | (nb < 0).any(axis=1)
        return pos[unsafe]

    # Row blocks are independent and write disjoint rows, so threads (numpy releases the GIL)
    # change the speed, not the result.
    block = max(1, _BLOCK_VALUES // max(1, kk * dim))
    all_rows = np.arange(queries.size, dtype=np.int64)
    starts = range(0, queries.size, block)

    def refine_block(start: int) -> npt.NDArray[np.int64]:
        sl = slice(start, start + block)
        return refine(all_rows[sl], cand[sl], faiss_sq[sl])

    workers = min(_refine_threads(), len(starts))
    if workers > 1 and queries.size * kk * dim >= 2_000_000:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(refine_block, starts))
    else:
        parts = [refine_block(st) for st in starts]
    pending = np.sort(np.concatenate(parts)) if parts else all_rows[:0]

    # Rows whose window may hide a tie or near-tie (large groups of duplicates): widen their
    # window until it is provably enough, up to all N points (exact brute force). The pair
    # arithmetic is the same whatever the window, so the result does not depend on the path.
    width = kk
    while pending.size:
        width = min(n, 4 * width)
        fsq_all, c_all = _faiss_search(index, x32[queries[pending]], width)
        still = []
        if width < n:
            # Skip the exact pass for rows faiss already shows to need a wider window: their
            # (k+1)-th candidate is within twice the error bound of the window edge.
            edge = fsq_all.max(axis=1)
            doomed = fsq_all[:, min(k, width - 1)] + 2 * tol_sq[queries[pending]] >= edge
            still.append(pending[doomed])
            pending, c_all, fsq_all = pending[~doomed], c_all[~doomed], fsq_all[~doomed]
        rows_block = max(1, _BLOCK_VALUES // max(1, width * dim))
        for start in range(0, pending.size, rows_block):
            sl = slice(start, start + rows_block)
            still.append(refine(pending[sl], c_all[sl], fsq_all[sl]))
        pending = np.sort(np.concatenate(still))

    if scale != 1.0:
        with np.errstate(over="ignore"):
            distances = (distances.astype(np.float64) / scale).astype(np.float32)
    return KnnGraph(neighbors, distances)


def _max_abs(arr: npt.NDArray[Any]) -> float:
    """Largest finite magnitude in ``arr``, in row blocks (no full-size temporary)."""
    step = max(1, (16 << 20) // max(1, arr.shape[1] * arr.dtype.itemsize))
    out = 0.0
    for start in range(0, arr.shape[0], step):
        block = arr[start : start + step]
        out = max(out, float(np.max(np.abs(block.astype(np.float64, copy=False)))))
    return out


def _unit_rows(x64: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Rows divided by their L2 norm, without overflow or underflow of the norm.

    Rows whose norm float64 can compute directly are divided as they are (the historical,
    bit-exact path); others are first scaled by a power of two (exact) of their largest
    magnitude.
    """
    with np.errstate(over="ignore", under="ignore"):
        norm = np.linalg.norm(x64, axis=1, keepdims=True)
    bad = ~np.isfinite(norm[:, 0]) | (norm[:, 0] < 1e-150)
    if bad.any():
        x64 = x64.copy()
        rows = x64[bad]
        _, exp = np.frexp(np.max(np.abs(rows), axis=1, keepdims=True))
        rows = np.ldexp(rows, -exp)
        x64[bad] = rows
        norm = norm.copy()
        norm[bad] = np.linalg.norm(rows, axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = x64 / norm
    return out
