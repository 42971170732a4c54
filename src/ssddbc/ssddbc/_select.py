"""Vectorised selection helpers with the (distance, index) tie order used everywhere."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["mean_of_smallest_per_group", "smallest_per_row"]


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
    the result does not depend on how the values were found.

    Returns
    -------
    numpy.ndarray
        float64 ``(r, G)``.
    """
    r = D.shape[0]
    n_groups = len(bounds) - 1
    out = np.empty((r, n_groups), dtype=np.float64)
    for g in range(n_groups):
        sub = D[:, bounds[g] : bounds[g + 1]]
        if sub.shape[1] > m:
            sub = np.partition(sub, m - 1, axis=1)[:, :m]
        vals = np.sort(sub, axis=1).astype(np.float64)
        acc = vals[:, 0].copy()
        for j in range(1, vals.shape[1]):
            acc += vals[:, j]
        out[:, g] = acc / vals.shape[1]
    return out
