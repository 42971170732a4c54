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
blocks, so the combined result is identical to the full-matrix computation. For the group
question the caller first computes the exact means of the groups present in an undecided row
(their members only) and :func:`choose_with_exact_means` decides the row when no absent
group's bound reaches the best of them; only the rest meet every group.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "choose_with_exact_means",
    "first_members",
    "present_groups",
    "subset_neighbors",
    "three_nearest_choice",
]

# three_nearest_choice handles about this many candidate entries per chunk of rows.
_ENTRIES = 1_000_000
# Columns of three_nearest_choice's first pass.
_NARROW = 8


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

    Only the groups present in a row are evaluated (at most ``M`` per row): a group with at
    least ``min(m, size)`` members there has its exact mean; one with fewer has the lower bound
    obtained by completing its values with the row's last distance ``d_M``; an absent group's
    bound is ``d_M`` completed ``min(m, size)`` times, the same for every absent group of that
    count, so absent groups are counted per count, never listed. The cost is O(r M), whatever
    the number of groups; a first pass over the first 8 columns decides most rows.

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
    t, per_count, below = _count_tables(sizes, m)
    # Most rows are decided by their first few candidates; a row decided by a prefix of its
    # columns is decided by all of them, with the same group (bounds only grow with the
    # width), so the narrow pass changes no answer and the rest take the full width.
    todo = np.arange(r)
    for w in (_NARROW, width) if width > _NARROW else (width,):
        step = max(1, _ENTRIES // w)
        for s in range(0, todo.size, step):
            rows = todo[s : s + step]
            out[rows] = _choose_rows(
                nb_rows[rows, :w], ds_rows[rows, :w], group, t, per_count, below, m
            )
        todo = todo[out[todo] < 0]
        if todo.size == 0:
            break
    return out


def _count_tables(
    sizes: npt.NDArray[np.int64], m: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each group's count ``min(m, size)``, the number of groups with each count, and how
    many groups of each count lie below each group id (``(m, G + 1)``)."""
    t = np.minimum(np.asarray(sizes, dtype=np.int64), m)
    per_count = np.bincount(t - 1, minlength=m)
    below = np.zeros((m, t.size + 1), dtype=np.int64)
    for c in range(m):
        below[c, 1:] = np.cumsum(t == c + 1)
    return t, per_count, below


def _choose_rows(
    nb: npt.NDArray[np.int64],
    ds: npt.NDArray[np.float32],
    group: npt.NDArray[np.int64],
    t: npt.NDArray[np.int64],
    per_count: npt.NDArray[np.int64],
    below: npt.NDArray[np.int64],
    m: int,
) -> npt.NDArray[np.int64]:
    """:func:`three_nearest_choice` for one chunk of rows."""
    rr = nb.shape[0]
    n_groups = t.size
    d_last = ds[:, -1].astype(np.float64)
    g = group[nb]
    ri, ci = np.nonzero(g >= 0)  # row-major: each row's members in distance order
    key = ri * n_groups + g[ri, ci]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.ones(ks.size, dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    starts = np.flatnonzero(first)
    n_cells = starts.size
    cell_of = np.cumsum(first) - 1  # per sorted entry, its (row, group) cell
    rank = np.arange(ks.size) - starts[cell_of]
    cell_key = ks[starts]
    c_row = cell_key // n_groups
    c_gid = cell_key - c_row * n_groups
    c_t = t[c_gid]
    found = np.minimum(np.diff(np.append(starts, ks.size)), m)
    # Each cell's first m values, completed with its row's last distance (a lower bound).
    vals = np.repeat(d_last[c_row], m).reshape(n_cells, m)
    keep = rank < m
    pos = order[keep]
    vals[cell_of[keep], rank[keep]] = ds[ri[pos], ci[pos]].astype(np.float64)
    acc = vals[:, 0].copy()
    for j in range(1, m):
        acc = np.where(c_t > j, acc + vals[:, j], acc)
    value = acc / c_t
    exact = found >= c_t

    # The best exact mean per row; ties to the lower group id (cells are in group order).
    ev = np.where(exact, value, np.inf)
    v_best = np.full(rr, np.inf)
    np.minimum.at(v_best, c_row, ev)
    hit = exact & (ev == v_best[c_row])
    best = np.full(rr, n_groups, dtype=np.int64)
    np.minimum.at(best, c_row[hit], c_gid[hit])
    vb = v_best[c_row]
    # A present group short of members: its bound.
    lose = ~exact & ((value < vb) | ((value == vb) & (c_gid < best[c_row])))
    beaten = _absent_can_win(d_last, v_best, best, c_row, c_gid, c_t, per_count, below, m)
    beaten[c_row[lose]] = True
    ok = np.isfinite(v_best) & ~beaten
    return np.where(ok, best, -1)


def _absent_can_win(
    d_last: npt.NDArray[np.float64],
    v_best: npt.NDArray[np.float64],
    best: npt.NDArray[np.int64],
    c_row: npt.NDArray[np.int64],
    c_gid: npt.NDArray[np.int64],
    c_t: npt.NDArray[np.int64],
    per_count: npt.NDArray[np.int64],
    below: npt.NDArray[np.int64],
    m: int,
) -> npt.NDArray[np.bool_]:
    """Per row: whether a group absent from it could beat or tie ``(v_best, best)``.

    Every member of an absent group lies outside the row, at least ``d_M`` away, so a group
    of count ``c`` has at least the bound ``d_M`` added ``c`` times, divided by ``c``; the
    cells ``(c_row, c_gid)`` with counts ``c_t`` are the row's present groups.
    """
    rr, n_groups = d_last.size, below.shape[1] - 1
    beaten = np.zeros(rr, dtype=bool)
    present = np.zeros((rr, m), dtype=np.int64)
    np.add.at(present, (c_row, c_t - 1), 1)
    present_below = np.zeros((rr, m), dtype=np.int64)
    low = c_gid < best[c_row]
    np.add.at(present_below, (c_row[low], c_t[low] - 1), 1)
    best_clip = np.minimum(best, n_groups)
    for c in range(m):
        bound = d_last.copy()
        for _ in range(c):
            bound = bound + d_last
        bound = bound / (c + 1)
        absent = per_count[c] - present[:, c] > 0
        absent_below = below[c, best_clip] - present_below[:, c] > 0
        beaten |= ((bound < v_best) & absent) | ((bound == v_best) & absent_below)
    return beaten


def present_groups(
    nb_rows: npt.NDArray[np.int64], group: npt.NDArray[np.int64], n_groups: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The ``(row, group)`` cells of the groups with a member in each candidate row, sorted."""
    g = group[nb_rows]
    ri, ci = np.nonzero(g >= 0)
    key = np.unique(ri * n_groups + g[ri, ci])
    return key // n_groups, key % n_groups


def choose_with_exact_means(
    d_last: npt.NDArray[np.float64],
    c_row: npt.NDArray[np.int64],
    c_gid: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.int64],
    m: int = 3,
) -> npt.NDArray[np.int64]:
    """Rows whose present groups all have their exact mean: the best one, where it is exact.

    ``(c_row, c_gid)`` are every row's present groups (:func:`present_groups`) and ``value``
    their exact means (computed from all their members, as
    :func:`ssddbc.ssddbc._select.mean_of_smallest_per_group` does). The best present group,
    ties to the lower id, is the row's answer unless an absent group's bound (its members
    all lie beyond the row's last distance ``d_last``) beats or ties it; such rows get
    ``-1``. This decides rows :func:`three_nearest_choice` leaves open because a present
    group had too few members in the row, at the cost of that group's members only.
    """
    rr, n_groups = d_last.size, len(sizes)
    t, per_count, below = _count_tables(sizes, m)
    v_best = np.full(rr, np.inf)
    np.minimum.at(v_best, c_row, value)
    best = np.full(rr, n_groups, dtype=np.int64)
    hit = value == v_best[c_row]
    np.minimum.at(best, c_row[hit], c_gid[hit])
    beaten = _absent_can_win(d_last, v_best, best, c_row, c_gid, t[c_gid], per_count, below, m)
    ok = np.isfinite(v_best) & ~beaten
    return np.where(ok, best, -1)
