"""The previous ``three_nearest_choice``, kept verbatim as the reference of the current one.

It fills a dense ``(rows, groups, m)`` table (every group of every row, absent groups
completed with the row's last candidate distance), so its cost grows with the number of
groups; the package version touches only the groups present in each row and counts the
absent ones. The tests check both return the same choices, undecided rows included.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["reference_three_nearest_choice"]

_CELLS = 400_000


def reference_three_nearest_choice(
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
