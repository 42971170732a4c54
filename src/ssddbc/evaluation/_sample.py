"""Sampled silhouettes of many partitions of one feature matrix, from exact reusable sums.

:class:`SilhouetteSample` keeps the last ``(s, C)`` table of each sampled point's distance
sums per cluster and derives the next partition's by adding and subtracting only the points
that changed cluster. Distances are summed as fixed-point int64 (:func:`fixed_point_scale`),
exact in any order, so a table is the same however, wherever and from whichever earlier
partition it was built; :func:`fixed_cluster_sums` is the from-scratch computation.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ssddbc._errors import InvalidInputError

__all__ = [
    "SilhouetteSample",
    "fixed_cluster_sums",
    "fixed_point_scale",
    "silhouette_values",
    "standard_error",
    "values_from_sums",
]

#: Distances converted to fixed point at once: about this many (a block that stays in cache;
#: 32 points of a 2,000-point sample was the fastest on the development machine).
BLOCK = 65_536


def fixed_point_scale(max_value: float, n: int) -> int:
    """The exponent ``q``: ``n`` distances of at most ``max_value`` sum below ``2**61``.

    A float32 distance ``v`` counts as ``floor(v * 2**q)`` in int64. Integer sums are exact in
    any order; the float64 sums used afterwards are those integers times ``2**-q``. Whenever a
    plain float64 accumulation of the distances is exact (every distance on the ``2**-q``
    grid and the sums below ``2**53`` grid steps, which holds unless the distances span many
    binades), the two agree bit for bit; otherwise this is the exactly rounded sum of the
    truncated distances, within ``2 N**2 max(v) 2**-61`` of the true sum.
    """
    if not math.isfinite(max_value) or max_value < 0:
        raise InvalidInputError("silhouette_rows", f"distances must be finite, >= 0: {max_value}")
    if max_value == 0:
        return 0
    _, e = math.frexp(max_value * max(n, 1))  # max_value * n < 2**e
    return 61 - e


def _group_add(
    table: NDArray[np.int64], columns: Any, q: int, points: NDArray[Any], into: NDArray[Any]
) -> None:
    """``table[into[i]] += floor(columns[points[i]] * 2**q)`` for every ``i``, exactly.

    The scaling by a power of two is exact in float32 (the products stay below ``2**61``, far
    from float32's range limits, and a product below 1 truncates to 0 either way); the cast to
    int64 truncates. Points are grouped by target so each group is one row-wise reduction.
    """
    if points.size == 0:
        return
    order = np.argsort(into, kind="stable")
    points, into = points[order], into[order]
    wide = not -100 < q < 100
    scale = np.float32(2.0 ** min(max(q, -100), 100))
    step = min(max(8, BLOCK // max(1, table.shape[1])), points.size)
    fixed = np.empty((step, table.shape[1]), dtype=np.int64)
    for lo in range(0, points.size, step):
        p, t = points[lo : lo + step], into[lo : lo + step]
        rows = fixed[: p.size]
        if wide:  # 2**q outside float32's range: scale in float64 (also exact)
            np.copyto(rows, np.ldexp(np.asarray(columns[p], dtype=np.float64), q), "unsafe")
        else:
            block = np.array(columns[p], dtype=np.float32)  # a copy: scaled in place
            np.multiply(block, scale, out=block)
            np.copyto(rows, block, casting="unsafe")
        cuts = np.flatnonzero(t[1:] != t[:-1]) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), p.size], strict=True):
            table[t[a]] += rows[a:b].sum(axis=0)


def fixed_cluster_sums(
    rows: Any, codes: NDArray[np.intp], n_clusters: int, q: int
) -> NDArray[np.int64]:
    """The integer table ``(C, s)`` from rows laid out ``(s, N)``, from scratch."""
    s = rows.shape[0]
    table = np.zeros((n_clusters, s), dtype=np.int64)
    step = 4096
    for lo in range(0, codes.size, step):
        cols = np.ascontiguousarray(np.asarray(rows[:, lo : lo + step]).T)
        _group_add(table, cols, q, np.arange(cols.shape[0]), codes[lo : lo + step])
    return table


def silhouette_values(
    table: NDArray[np.int64], q: int, own: NDArray[np.intp], counts: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Silhouette of the sampled points from the integer table and their own clusters."""
    return values_from_sums(np.ldexp(table.T.astype(np.float64), -q), own, counts)


def values_from_sums(
    sums: NDArray[np.float64], own: NDArray[np.intp], counts: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Silhouette of points with per-cluster distance sums ``sums`` and own cluster ``own``."""
    r = np.arange(own.size)
    own_count = counts[own]
    intra = sums[r, own] / np.maximum(own_count - 1, 1)
    means = sums / counts
    means[r, own] = np.inf
    inter = means.min(axis=1)
    denom = np.maximum(intra, inter)
    out: NDArray[np.float64] = np.zeros(own.size)
    np.divide(inter - intra, denom, out=out, where=denom > 0)
    out[own_count == 1] = 0.0
    return out


def standard_error(values: NDArray[np.float64], population: int) -> tuple[float, float]:
    """Mean of a sample drawn without replacement and its standard error (see
    :func:`ssddbc.evaluation.sampled_silhouette`)."""
    s = values.size
    if s == 0:
        return 0.0, 0.0
    mean = float(values.mean())
    if s >= population:
        return mean, 0.0
    if s == 1:
        return mean, float("nan")
    return mean, float(np.std(values, ddof=1) / np.sqrt(s) * np.sqrt(1.0 - s / population))


class SilhouetteSample:
    """Sampled silhouettes of successive partitions of one feature matrix.

    Parameters
    ----------
    index : array_like of int, shape (s,)
        Sorted unlabelled sample indices (:func:`ssddbc.evaluation.silhouette_sample_indices`).
    columns : array_like of float32, shape (N, s)
        ``columns[j, i]`` is the distance from point ``j`` to sampled point ``index[i]``: the
        transpose of :func:`ssddbc.evaluation.silhouette_rows` (a read-only memory map is
        fine; it is read a few points at a time).
    labeled_mask : array_like of bool, shape (N,)
        The labelled points (never sampled).

    :meth:`score` gives exactly ``sampled_silhouette(labels, labeled_mask, (index, rows))``
    for any partition, in any sequence; each call costs ``s`` additions per point whose
    cluster differs from the previous partition scored (all ``N`` for the first).
    """

    def __init__(self, index: ArrayLike, columns: Any, labeled_mask: ArrayLike) -> None:
        idx = np.asarray(index)
        unl = ~np.asarray(labeled_mask, dtype=bool)
        n = unl.size
        if (
            idx.ndim != 1
            or idx.dtype.kind not in "iu"
            or getattr(columns, "shape", None) != (n, idx.size)
        ):
            raise InvalidInputError(
                "silhouette_rows",
                f"expected indices (s,) and columns ({n}, s), got {idx.shape} {idx.dtype} "
                f"and {getattr(columns, 'shape', None)}",
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n or not unl[idx].all()):
            raise InvalidInputError(
                "silhouette_rows", "the sample indices must be unlabelled points in range"
            )
        self.index = idx.astype(np.intp)
        self.columns = columns
        self.population = int(np.count_nonzero(unl))
        self.unlabelled = bool(self.population)
        self.n = n
        self.q = fixed_point_scale(float(np.max(columns)) if columns.size else 0.0, n)
        self._lock = threading.Lock()
        self._last: tuple[NDArray[np.intp], NDArray[np.int64]] | None = None
        #: Points whose columns were added or subtracted so far (a measure of the reuse).
        self.points_added = 0

    def score(self, labels: ArrayLike) -> tuple[float, float]:
        """``(silhouette, standard_error)`` of the partition ``labels`` (shape ``(N,)``)."""
        lab = np.asarray(labels)
        if lab.shape != (self.n,):
            raise InvalidInputError("labels", f"expected shape ({self.n},), got {lab.shape}")
        clusters, codes = np.unique(lab, return_inverse=True)
        codes = codes.reshape(-1)
        if clusters.size < 2 or not self.unlabelled or self.index.size == 0:
            return 0.0, 0.0
        table = self._table(codes, clusters.size)
        counts = np.bincount(codes, minlength=clusters.size)
        values = silhouette_values(table, self.q, codes[self.index], counts)
        return standard_error(values, self.population)

    def _table(self, codes: NDArray[np.intp], n_clusters: int) -> NDArray[np.int64]:
        with self._lock:
            last = self._last
        s = self.index.size
        if last is None:
            table = np.zeros((n_clusters, s), dtype=np.int64)
            add, into = np.arange(self.n), codes
            sub = sub_from = np.empty(0, dtype=np.intp)
        else:
            table, add, into, sub, sub_from = _delta(last, codes, n_clusters)
        if add.size + sub.size >= self.n:  # cheaper from scratch
            table = np.zeros((n_clusters, s), dtype=np.int64)
            add, into = np.arange(self.n), codes
            sub = sub_from = np.empty(0, dtype=np.intp)
        _group_add(table, self.columns, self.q, add, into)
        if sub.size:
            minus = np.zeros_like(table)
            _group_add(minus, self.columns, self.q, sub, sub_from)
            table -= minus
        with self._lock:
            self.points_added += int(add.size + sub.size)
            self._last = (codes, table)
        return table


def _delta(
    last: tuple[NDArray[np.intp], NDArray[np.int64]], codes: NDArray[np.intp], n_clusters: int
) -> tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], Any]:
    """The new table started from old columns, and the points to add and to subtract.

    Each new cluster starts as a copy of the old cluster it shares most points with (every
    new cluster has members, so it shares at least one); then its members outside that old
    cluster are added and that old cluster's members outside it subtracted.
    """
    old, old_table = last
    n_old = old_table.shape[0]
    overlap = np.bincount(codes * n_old + old, minlength=n_clusters * n_old)
    overlap = overlap.reshape(n_clusters, n_old)
    base = np.argmax(overlap, axis=1)
    table = old_table[base]
    # Added: each point into its new cluster unless it was in that cluster's base.
    add = np.flatnonzero(base[codes] != old)
    into = codes[add]
    # Subtracted: for each new cluster, its base's members now elsewhere.
    by_old = np.argsort(old, kind="stable")
    bounds = np.searchsorted(old[by_old], np.arange(n_old + 1))
    subs: list[NDArray[np.intp]] = []
    froms: list[NDArray[np.intp]] = []
    for c, b in enumerate(base.tolist()):
        members = by_old[bounds[b] : bounds[b + 1]]
        gone = members[codes[members] != c]
        if gone.size:
            subs.append(gone)
            froms.append(np.full(gone.size, c, dtype=np.intp))
    sub = np.concatenate(subs) if subs else np.empty(0, dtype=np.intp)
    sub_from = np.concatenate(froms) if froms else np.empty(0, dtype=np.intp)
    return table, add, into, sub, sub_from
