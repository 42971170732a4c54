"""Vectorised selection helpers with the (distance, index) tie order used everywhere."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "SmallestPerGroup",
    "SmallestPerRow",
    "mean_of_smallest_per_group",
    "smallest_per_row",
]


def smallest_per_row(
    D: npt.NDArray[np.float32], m: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Column positions and values of the ``m`` smallest entries of each row.

    Rows come out sorted by (value, column position): equal values keep the lower column
    first, so with columns in increasing index order this is the (distance, index) order.
    ``inf`` entries are treated as ordinary (largest) values.

    Parameters
    ----------
    D : numpy.ndarray
        ``(r, c)`` float32 values.
    m : int
        ``0 <= m <= c``.

    Returns
    -------
    pos : numpy.ndarray
        int64 ``(r, m)`` column positions.
    vals : numpy.ndarray
        float32 ``(r, m)`` values.
    """
    r, c = D.shape
    if m <= 0 or r == 0:
        return np.empty((r, 0), dtype=np.int64), np.empty((r, 0), dtype=D.dtype)
    if m >= c:
        pos = np.argsort(D, axis=1, kind="stable")
    else:
        # argpartition picks an arbitrary subset among values equal to the m-th smallest;
        # rows with such a boundary tie are redone with a stable sort (rare with real data).
        cand = np.argpartition(D, m - 1, axis=1)[:, :m]
        cvals = np.take_along_axis(D, cand, axis=1)
        kth = cvals.max(axis=1)
        n_le = np.count_nonzero(kth[:, None] >= D, axis=1)
        order = np.lexsort((cand, cvals), axis=-1)
        pos = np.take_along_axis(cand, order, axis=1)
        tied = np.flatnonzero(n_le > m)
        if tied.size:
            pos[tied] = np.argsort(D[tied], axis=1, kind="stable")[:, :m]
    pos = pos[:, :m].astype(np.int64, copy=False)
    return pos, np.take_along_axis(D, pos, axis=1)


def mean_of_smallest_per_group(
    D: npt.NDArray[np.float32], bounds: npt.NDArray[np.int64], m: int = 3
) -> npt.NDArray[np.float64]:
    """For each row and each column group, the mean of the group's ``m`` smallest values.

    Groups are contiguous column ranges ``bounds[g]:bounds[g + 1]`` (non-empty). The mean is
    taken in float64 over the ``min(m, size)`` smallest values added in increasing order, so
    the result does not depend on how the values were found (:class:`SmallestPerGroup` gives
    the same means from column blocks).

    Returns
    -------
    numpy.ndarray
        float64 ``(r, G)``.
    """
    acc = SmallestPerGroup(D.shape[0], bounds, m)
    acc.update(0, D)
    return acc.means()


class SmallestPerRow:
    """:func:`smallest_per_row` over column blocks seen one after the other.

    ``update(c0, block)`` takes the values of columns ``c0 .. c0 + width``, in increasing
    ``c0``; :meth:`result` gives what :func:`smallest_per_row` gives for the whole row
    (positions are global columns). Memory: ``(r, m)`` values and positions.
    """

    def __init__(self, n_rows: int, m: int) -> None:
        self.m = m
        self.pos = np.empty((n_rows, 0), dtype=np.int64)
        self.vals = np.empty((n_rows, 0), dtype=np.float32)

    def update(self, c0: int, block: npt.NDArray[np.float32]) -> None:
        """Merge the columns ``c0 .. c0 + block.shape[1]``."""
        pos, vals = smallest_per_row(block, min(self.m, block.shape[1]))
        # The kept entries come first and all lie left of the block, and each part is in
        # (value, column) order, so equal values keep column order in the concatenation.
        cat_pos = np.concatenate([self.pos, pos + c0], axis=1)
        cat_vals = np.concatenate([self.vals, vals], axis=1)
        at, self.vals = smallest_per_row(cat_vals, min(self.m, cat_vals.shape[1]))
        self.pos = np.take_along_axis(cat_pos, at, axis=1)

    def result(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Column positions and values of the ``m`` smallest entries of each row seen."""
        return self.pos, self.vals


class SmallestPerGroup:
    """The ``m`` smallest values per row and column group, over column blocks.

    Groups are the column ranges ``bounds[g]:bounds[g + 1]``; ``update(c0, block)`` takes
    the values of columns ``c0 .. c0 + width`` (any order of blocks, each column once), and
    :meth:`means` gives :func:`mean_of_smallest_per_group` of the whole rows: the multiset
    of a group's smallest values does not depend on the blocks. Memory: ``(r, G, m)``.
    """

    def __init__(self, n_rows: int, bounds: npt.NDArray[np.int64], m: int = 3) -> None:
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.m = m
        n_groups = len(self.bounds) - 1
        self.best = np.full((n_rows, n_groups, m), np.inf, dtype=np.float32)
        self.seen = np.zeros(n_groups, dtype=bool)

    def update(self, c0: int, block: npt.NDArray[np.float32]) -> None:
        """Merge the columns ``c0 .. c0 + block.shape[1]``."""
        m, bounds = self.m, self.bounds
        c1 = c0 + block.shape[1]
        first = int(np.searchsorted(bounds, c0, side="right")) - 1
        last = int(np.searchsorted(bounds, c1, side="left"))
        for g in range(max(first, 0), min(last, len(bounds) - 1)):
            a, b = max(int(bounds[g]), c0) - c0, min(int(bounds[g + 1]), c1) - c0
            if b <= a:
                continue
            sub = block[:, a:b]
            if self.seen[g]:
                sub = np.concatenate([self.best[:, g], sub], axis=1)
            if sub.shape[1] > m:
                sub = np.partition(sub, m - 1, axis=1)[:, :m]
            self.best[:, g, : sub.shape[1]] = sub
            self.seen[g] = True

    def means(self) -> npt.NDArray[np.float64]:
        """float64 ``(r, G)``: the mean of each group's ``min(m, size)`` smallest values,
        added in increasing order."""
        t = np.minimum(np.diff(self.bounds), self.m)
        vals = np.sort(self.best, axis=2).astype(np.float64)
        acc = vals[:, :, 0].copy()
        for j in range(1, self.m):
            acc = np.where(t > j, acc + vals[:, :, j], acc)
        out: npt.NDArray[np.float64] = acc / t
        return out
