"""Exact answers from a wide neighbour graph, without the (N, N) distance matrix.

A row of the global graph lists point ``i``'s ``M`` nearest other points in (distance, index)
order with their exact float32 distances (the values :mod:`ssddbc._distances` gives; knncache's
graphs hold exactly those). Every point outside the row is at least as far as the row's last
entry ``d_M``. From that alone, many per-configuration questions get their exact answer:

* the ``kk`` nearest members of a subset ``H`` (:func:`subset_neighbors`): the first ``kk``
  entries of the row that lie in ``H``, when there are at least ``kk`` of them (the global and
  the within-``H`` orders are both (distance, index));
* the ``kv`` nearest core points (:func:`first_members`), the same way;
* the group whose ``min(3, size)`` nearest members are closest on average
  (:func:`three_nearest_choice`): a group with enough members in the row has its exact mean;
  one with fewer has the lower bound obtained by completing its list with ``d_M``; the row's
  answer is exact when the best exact mean beats every such bound, ties included.

Rows these cannot decide are reported, and the caller computes them exactly from distance
blocks, so the combined result is identical to the full-matrix computation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["first_members", "subset_neighbors", "three_nearest_choice"]

# Temporaries of three_nearest_choice hold about this many (row, group) cells per chunk.
_CELLS = 400_000


def first_members(
    nb_rows: npt.NDArray[np.int64],
    ds_rows: npt.NDArray[np.float32],
    member_mask: npt.NDArray[np.bool_],
    count: int,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The first ``count`` entries of each candidate row that are members.

    Parameters
    ----------
    nb_rows, ds_rows : numpy.ndarray
        ``(r, M)`` candidate indices and distances, (distance, index) order per row.
    member_mask : numpy.ndarray
        ``(N,)`` bool membership.
    count : int
        Members wanted per row, ``>= 0``.

    Returns
    -------
    ok : numpy.ndarray
        bool ``(r,)``: the row holds at least ``count`` members (its answer is exact).
    idx, dist : numpy.ndarray
        ``(ok.sum(), count)`` indices and distances of those members, in row order.
    """
    r = nb_rows.shape[0]
    if count <= 0:
        return (
            np.ones(r, dtype=bool),
            np.empty((r, 0), dtype=np.int64),
            np.empty((r, 0), dtype=ds_rows.dtype),
        )
    inm = member_mask[nb_rows]
    csum = np.cumsum(inm, axis=1, dtype=np.int32)
    ok = csum[:, -1] >= count
    sel = inm & (csum <= count) & ok[:, None]
    n_ok = int(ok.sum())
    return ok, nb_rows[sel].reshape(n_ok, count), ds_rows[sel].reshape(n_ok, count)


def subset_neighbors(
    nb_rows: npt.NDArray[np.int64],
    ds_rows: npt.NDArray[np.float32],
    member_mask: npt.NDArray[np.bool_],
    kk: int,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each row's ``kk`` nearest members of a subset, where the candidates decide it.

    Same as :func:`first_members`: the rows come from the global graph, which excludes the
    row's own point, so this is the within-subset neighbour list with self excluded.
    """
    return first_members(nb_rows, ds_rows, member_mask, kk)


def three_nearest_choice(
    nb_rows: npt.NDArray[np.int64],
    ds_rows: npt.NDArray[np.float32],
    group: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    m: int = 3,
) -> npt.NDArray[np.int64]:
    """Per row, the group whose ``min(m, size)`` nearest members are closest on average.

    The mean is computed exactly as :func:`ssddbc.ssddbc._select.mean_of_smallest_per_group`
    does (float64, values added in increasing order, divided by their count) and ties go to the
    lower group id, so a decided row has the full computation's answer.

    Parameters
    ----------
    nb_rows, ds_rows : numpy.ndarray
        ``(r, M)`` candidate indices and float32 distances, (distance, index) order, ``M >= 1``.
    group : numpy.ndarray
        int64 ``(N,)`` group id ``0..G-1`` of every point, ``-1`` for non-members.
    sizes : numpy.ndarray
        int64 ``(G,)`` group sizes (all ``>= 1``).
    m : int
        Members averaged.

    Returns
    -------
    numpy.ndarray
        int64 ``(r,)``: the chosen group, or ``-1`` where the candidates cannot decide.
    """
    r, width = nb_rows.shape
    n_groups = len(sizes)
    out = np.full(r, -1, dtype=np.int64)
    if r == 0 or n_groups == 0 or width == 0:
        return out
    t = np.minimum(np.asarray(sizes, dtype=np.int64), m)
    gid = np.arange(n_groups)
    step = max(1, _CELLS // n_groups)
    for s in range(0, r, step):
        nb = nb_rows[s : s + step]
        ds = ds_rows[s : s + step]
        rr = nb.shape[0]
        g = group[nb]
        ri, ci = np.nonzero(g >= 0)  # row-major: each row's members in distance order
        key = ri * n_groups + g[ri, ci]
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.ones(ks.size, dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        starts = np.flatnonzero(first)
        rank = np.arange(ks.size) - np.repeat(starts, np.diff(np.append(starts, ks.size)))
        keep = rank < m
        cells = ks[keep]
        pos = order[keep]
        # Missing values are completed with the row's last candidate distance: every
        # point outside the row is at least that far, so the mean becomes a lower bound.
        d_last = ds[:, -1].astype(np.float64)
        vals = np.repeat(d_last, n_groups * m).reshape(rr * n_groups, m)
        vals[cells, rank[keep]] = ds[ri[pos], ci[pos]].astype(np.float64)
        found = np.bincount(cells, minlength=rr * n_groups).reshape(rr, n_groups)
        vals3 = vals.reshape(rr, n_groups, m)
        acc = vals3[:, :, 0].copy()
        for j in range(1, m):
            acc = np.where(t[None, :] > j, acc + vals3[:, :, j], acc)
        value = acc / t[None, :]
        exact = found >= t[None, :]
        ev = np.where(exact, value, np.inf)
        best = np.argmin(ev, axis=1)
        v_best = ev[np.arange(rr), best]
        bound = np.where(exact, np.inf, value)
        beaten = (bound < v_best[:, None]) | (
            (bound == v_best[:, None]) & (gid[None, :] < best[:, None])
        )
        ok = np.isfinite(v_best) & ~beaten.any(axis=1)
        out[s : s + rr] = np.where(ok, best, -1)
    return out
