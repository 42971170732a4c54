"""The exact search kernel: faiss candidates, exact float64 refinement, proof of exactness.

faiss (``IndexFlatL2``, float32) proposes ``k`` plus a margin of candidates per row; their
distances are recomputed exactly in float64, self is dropped, each row is sorted by
(distance, index), and rows whose candidate window might hide a tie are widened until the
result is provably exact. The approximate engines reuse it with their own candidate index.

After ``fork``, faiss runs on one thread in the child: libgomp's thread pool (faiss's
OpenMP) does not survive a fork, and the child's first parallel region would wait forever
for the parent's threads. A forked child therefore searches (single-threaded, the same
result) instead of hanging; ``faiss.omp_set_num_threads`` raises the count again, at the
caller's risk, where the parent never ran faiss.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from knncache._graph import KnnGraph

__all__ = ["search_rows"]

# Refinement blocks hold at most this many float64 values (~2 MB): small enough to stay in
# cache.
_BLOCK_VALUES = 250_000
# Indices below this fit the low half of _select's sort key (with the -1 slot shifted to 0).
_KEY_LIMIT = (1 << 32) - 1
_EPS32 = float(np.finfo(np.float32).eps)
_F32_MAX = float(np.finfo(np.float32).max)
# Below this largest magnitude, squared distances lose precision to float32 underflow in the
# candidate search: such inputs are rescaled by a power of two (exact) first.
_TINY = 2.0**-20


def _one_thread_after_fork() -> None:
    faiss.omp_set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


def _pow2_scale(max_abs: float, dim: int) -> int:
    """An exponent ``e`` with ``max_abs * 2**e`` safe for the float32 candidate search.

    0 (no scaling: the values are searched as they are) unless squared norms could overflow
    float32 (``4 * (dim + 4) * max_abs**2`` beyond its range) or underflow it; then the
    largest magnitude is brought into ``[0.5, 1)``. An exponent, not a factor: ``2**e`` of
    a subnormal (``e`` up to 1074) is beyond float64, applied with ``ldexp`` it is exact
    (no rounding), so neighbours and tie order are unchanged.
    """
    if max_abs == 0.0:
        return 0
    safe_max = float(np.sqrt(_F32_MAX / (16.0 * (dim + 4))))
    if _TINY <= max_abs <= safe_max:
        return 0
    _, exp = np.frexp(max_abs)  # max_abs = m * 2**exp, 0.5 <= m < 1
    return -int(exp)


def _refine_threads() -> int:
    try:
        wanted = int(faiss.omp_get_max_threads())
    except Exception:  # pragma: no cover - faiss always has it
        wanted = 1
    return max(1, min(wanted, os.cpu_count() or 1))


def _faiss_index(x32: npt.NDArray[np.float32]) -> Any:
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
    # Cast, then subtract in place: the same values as a float64 subtract of the gathered
    # rows, about 1.5x faster than the ufunc's buffered cast.
    diff = np.take(src, cand, axis=0).astype(np.float64, copy=False)
    diff -= src[rows].astype(np.float64, copy=False)[:, None, :]
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
    d = dist32 + np.float32(0.0)  # a copy; -0.0 becomes +0.0
    if exclude_self:
        d[cand == row_ids[:, None]] = np.inf
    # Invalid faiss slots (-1) sort last.
    d[cand < 0] = np.inf
    if m == 0:
        order = np.empty_like(cand)
    elif cand.max(initial=0) < _KEY_LIMIT:
        # One uint64 key per entry, (distance bits, index + 1): the bits of a non-negative
        # float32 order as its value, so the key order is the (distance, index) order, and
        # one argsort of integers is about twice as fast as the two-key lexsort.
        key = d.view(np.uint32).astype(np.uint64) << np.uint64(32)
        key |= (cand + 1).astype(np.uint64)
        order = np.argsort(key, axis=-1)
    else:
        order = np.lexsort((cand, d), axis=-1)
    order = order[:, :k]
    nb = np.take_along_axis(cand, order, axis=1)
    ds = np.take_along_axis(dist32, order, axis=1)
    return nb, ds


def search_rows(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    index_factory: Callable[[npt.NDArray[np.float32], int], Any] | None = None,
    prove: bool = True,
) -> KnnGraph:
    """The exact search behind ``compute_knn``, on validated input, for some query rows.

    ``rows`` (default: all) are the query rows, searched against all of ``arr``; the result
    has one row per query, identical to the same rows of the full search (each row's result
    depends on that row and the whole matrix only). ``index_factory(x32, candidates)``
    builds the candidate index from the float32 matrix (default: exact ``IndexFlatL2``);
    ``prove=False`` skips the widening that proves exactness (approximate engines: their
    candidates are final).

    Features of any finite magnitude are searched: where float32 squared norms would
    overflow (or underflow), every engine's candidate search runs on the matrix scaled by
    one power of two (exact, the same for every block of rows, so blocks searched apart
    agree bit for bit) and distances are scaled back (to float32: those of subnormal float64
    features round to float32's subnormals, or to 0 below about 1.4e-45, so a row's tied
    zeros keep the order of their exact distances). The result is not checked here (an
    approximate row may still hold ``-1``); callers apply :func:`check_graph` to the whole
    graph before it is returned, written or served.
    """
    n, dim = arr.shape

    max_abs = _max_abs(arr)
    scale = _pow2_scale(max_abs, dim) if metric == "euclidean" else 0
    if metric == "euclidean" and arr.dtype.itemsize <= 4 and scale == 0:
        # float64 holds these values exactly: the refinement reads them as they are.
        src: npt.NDArray[Any] = np.ascontiguousarray(arr)
        x32 = np.ascontiguousarray(arr, dtype=np.float32)
    else:
        x64 = np.asarray(arr, dtype=np.float64)
        if scale != 0:
            x64 = np.ldexp(x64, scale)  # exact (a power of two); distances scaled back below
        if metric == "cosine":
            x64 = _unit_rows(x64)
        src = np.ascontiguousarray(x64)
        x32 = np.ascontiguousarray(src, dtype=np.float32)

    # The margin beyond k + 1 (self) is what lets the proof below succeed for most rows;
    # without a proof (approximate candidates, final as they come) it would only cost time.
    kk = min(n, k + 1 + (max(8, k // 4) if prove else 0))
    queries = np.arange(n, dtype=np.int64) if rows is None else rows
    index = _faiss_index(x32) if index_factory is None else index_factory(x32, kk)
    faiss_sq, cand = _faiss_search(index, x32 if rows is None else x32[rows], kk)

    # Worst-case error of faiss' float32 ||x||^2 + ||y||^2 - 2 x.y (plus the float32 cast of
    # the input), as a bound on squared distance: beyond it a point outside the candidate
    # window is provably farther than the k-th kept neighbour. Only the proof reads it.
    tol_sq = np.zeros(0)
    if prove:
        sqnorm = np.einsum("nd,nd->n", src, src, dtype=np.float64)
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

    if scale != 0:
        with np.errstate(over="ignore", under="ignore"):
            distances = np.ldexp(distances.astype(np.float64), -scale).astype(np.float32)
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

    Rows whose norm float64 can compute directly are divided as they are; others are first
    scaled by a power of two (exact) of their largest magnitude.
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
