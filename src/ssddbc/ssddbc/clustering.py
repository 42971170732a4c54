"""Core clusters: neighbours within the high-density set, then breadth-first growth (step 3).

The growth is sequential by nature (each step depends on the current cluster labels), so it
is a tight loop over plain Python lists; everything around it is vectorised. Cluster labels
follow the doc's rule and are kept as running counts instead of being recounted after every
insertion (the original's quadratic cost).

One behaviour of the original is kept on purpose: when a cluster P is absorbed, its members
are enqueued in the iteration order of a Python ``set`` that received exactly the insertions
and removals the original made. That order decides which later conflicts are seen first.

The original pays O(|P|) per absorption (every member re-inserted into the current set,
relabelled and re-enqueued), quadratic when a large cluster is absorbed by seed after seed.
Here an absorption is O(1) and gives the same result:

* labels are cluster ids forwarded to their absorber (union-find), so nobody is relabelled;
* only P's *front* members are enqueued: a member all of whose neighbours were in P when it
  was last processed (and none of them left P since) finds them all in the current cluster
  and does nothing when processed again; the others are kept per cluster;
* no set is kept: each cluster records its history (adds, removes, absorbed clusters), and
  the set, with the original's exact table layout and iteration order, is rebuilt from it
  (:func:`_materialise`) only when two or more front members need ordering. Front members
  come from label conflicts, so on well-separated data this never happens; where conflict
  boundaries get absorbed again and again it costs what the original paid, at C speed.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError
from ssddbc._validation import (
    as_features,
    as_mask,
    as_pairwise,
    as_targets,
    check_int,
    warn_labeled_outside_known,
)
from ssddbc.ssddbc._candidates import subset_neighbors
from ssddbc.ssddbc._select import SmallestPerRow
from ssddbc.ssddbc._source import DistanceSource

__all__ = [
    "MIN_CLUSTER_SIZE_FOR_LABEL",
    "build_clusters_ssddbc",
    "category_labels_of",
    "cluster_label_rule",
    "grow_core_clusters",
    "high_density_neighbors",
]

MIN_CLUSTER_SIZE_FOR_LABEL = 5


def cluster_label_rule(size: int, n_labeled: int, counts: dict[int, int]) -> int | None:
    """Category label of a cluster, or ``None``.

    A cluster carries a label only if it has at least 5 members, at least one labelled member,
    labelled members are more than 25% of it and the most common label is at least 80% of the
    labelled members. Integer comparisons, equivalent to the original's float ones.

    Parameters
    ----------
    size : int
        Number of members.
    n_labeled : int
        Number of labelled members.
    counts : dict
        Label -> number of labelled members with it.
    """
    if size < MIN_CLUSTER_SIZE_FOR_LABEL or n_labeled == 0 or 4 * n_labeled <= size:
        return None
    label, best = max(counts.items(), key=lambda kv: kv[1])
    # A tie for the maximum can never reach 80%, so max()'s tie order is irrelevant.
    return label if 5 * best >= 4 * n_labeled else None


def category_labels_of(
    clusters: list[set[int]], labeled_mask: npt.NDArray[np.bool_], targets: npt.NDArray[np.int64]
) -> dict[int, int | None]:
    """:func:`cluster_label_rule` of every cluster (by position): label or ``None``."""
    out: dict[int, int | None] = {}
    for cid, members in enumerate(clusters):
        idx = np.fromiter(members, dtype=np.int64, count=len(members))
        lab = targets[idx[labeled_mask[idx]]]
        values, counts = np.unique(lab, return_counts=True)
        label = cluster_label_rule(
            len(members), int(lab.size), dict(zip(values.tolist(), counts.tolist(), strict=True))
        )
        out[cid] = None if label is None else int(label)
    return out


def high_density_neighbors(
    source: DistanceSource,
    high_idx: npt.NDArray[np.int64],
    k: int,
    co: float | npt.NDArray[np.float64],
) -> list[list[int]]:
    """KNN_co of every high-density point, computed within the high-density set.

    Each point's ``min(k, |H| - 1)`` nearest other points of ``H`` in (distance, index) order,
    kept while the distance is ``<= co`` (``co[i]`` when ``co`` is per point).

    Parameters
    ----------
    source : DistanceSource
        Distances.
    high_idx : numpy.ndarray
        Sorted global indices of ``H``.
    k : int
        Neighbours per point.
    co : float or numpy.ndarray
        Cutoff, a scalar or an ``(N,)`` array indexed by global index.

    Returns
    -------
    list of list of int
        Global neighbour indices, one list per entry of ``high_idx``.
    """
    glob, n_keep = neighbor_table(source, high_idx, k, co)
    return [g[:c] for g, c in zip(glob.tolist(), n_keep.tolist(), strict=True)]


def neighbor_table(
    source: DistanceSource,
    high_idx: npt.NDArray[np.int64],
    k: int,
    co: float | npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`high_density_neighbors` as arrays: ``(|H|, kk)`` neighbours and kept counts.

    Row ``i`` lists ``high_idx[i]``'s ``kk = min(k, |H| - 1)`` nearest other points of ``H``
    (global indices, (distance, index) order); its KNN_co list is the first ``n_keep[i]``.
    """
    m = len(high_idx)
    kk = max(0, min(k, m - 1))
    per_point = np.ndim(co) > 0
    co_arr = np.asarray(co, dtype=np.float64)
    glob = np.zeros((m, kk), dtype=np.int64)
    n_keep = np.zeros(m, dtype=np.int64)

    def keep(at: Any, rows: Any, nbrs: Any, dist: Any) -> None:
        cut = co_arr[rows][:, None] if per_point else co_arr
        glob[at] = nbrs
        # Rows are sorted by distance, so the kept neighbours are a prefix.
        n_keep[at] = np.count_nonzero(dist.astype(np.float64) <= cut, axis=1)

    def exact(local: Any) -> None:
        """Rows at positions ``local`` of H, from distance blocks."""
        rows = high_idx[local]
        for sl, chunk in source.row_batches(rows, 2 * kk):
            nearest = SmallestPerRow(len(chunk), kk)
            own = local[sl]
            for c0, block in source.column_blocks(chunk, high_idx):
                at = np.flatnonzero((own >= c0) & (own < c0 + block.shape[1]))
                block[at, own[at] - c0] = np.inf  # self is never its own neighbour
                nearest.update(c0, block)
            pos, dist = nearest.result()
            keep(own, chunk, high_idx[pos], dist)

    if kk == 0:
        return glob, n_keep
    if source.candidates is None:
        exact(np.arange(m))
        return glob, n_keep

    # The first kk members of H in a global row are the within-H neighbours whenever the
    # row holds kk of them; the other rows are computed exactly.
    nb, ds = source.candidates
    member = np.zeros(nb.shape[0], dtype=bool)
    member[high_idx] = True
    todo: list[npt.NDArray[np.int64]] = []
    step = max(1, 1_000_000 // max(1, nb.shape[1]))
    for s in range(0, m, step):
        rows = high_idx[s : s + step]
        ok, nbrs, dist = subset_neighbors(nb[rows], ds[rows], member, kk)
        at = np.flatnonzero(ok)
        keep(at + s, rows[at], nbrs, dist)
        todo.append(np.flatnonzero(~ok) + s)
    local = np.concatenate(todo)
    if local.size:
        exact(local)
    return glob, n_keep


def _materialise(q: int, ops: list[list[Any] | None], built: list[set[int] | None]) -> set[int]:
    """Build cluster ``q``'s ``set`` by replaying the original's operations on it.

    ``ops[r]`` is cluster ``r``'s history: the seed, then ``x >= 0`` for ``add(x)``, ``~x``
    for ``remove(x)`` and ``(p,)`` for "every member of cluster ``p`` added in ``p``'s set
    iteration order". ``set.update`` with a list or a set iterator calls the same per-key
    insertion as ``add`` (no up-front resize, unlike ``update`` with a set), so the table,
    hence the iteration order, is the original's. Absorbed histories are replayed first
    (iteratively: chains can be thousands long) and dropped once their parent is built.
    """
    stack = [q]
    while stack:
        r = stack[-1]
        if built[r] is not None:
            stack.pop()
            continue
        hist = ops[r]
        assert hist is not None
        need = [op[0] for op in hist if type(op) is tuple and built[op[0]] is None]
        if need:
            stack.extend(need)
            continue
        s: set[int] = set()
        run: list[int] = []
        for op in hist:
            if type(op) is int:
                if op >= 0:
                    run.append(op)
                    continue
                s.update(run)
                run = []
                s.remove(~op)
            else:
                s.update(run)
                run = []
                child = built[op[0]]
                assert child is not None
                s.update(iter(child))
                built[op[0]] = None  # consumed: each cluster is absorbed once
                ops[op[0]] = None
        s.update(run)
        built[r] = s
        stack.pop()
    out = built[q]
    assert out is not None
    return out


def grow_core_clusters(
    high_idx: npt.NDArray[np.int64],
    neighbor_lists: list[list[int]],
    labeled_mask: npt.NDArray[np.bool_],
    targets: npt.NDArray[np.int64],
    densities: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], list[set[int]]]:
    """Grow the core clusters over ``H`` with the hard and soft label constraints.

    ``H`` is visited by absolute density, highest first (lower index first on ties); each
    unclustered point opens a cluster grown breadth-first over its KNN_co lists: a neighbour
    labelled differently from the current point is skipped (hard constraint); an unclustered
    neighbour joins; a neighbour in another cluster P merges all of P in, unless both clusters
    carry different labels, in which case the neighbour alone moves, and only if the current
    point is strictly denser.

    The original re-enqueues all of P, in P's ``set`` iteration order, and re-inserts every
    member into the current set. Here an absorption costs O(1) (see the module docstring):
    only P's *front* members (the ones with a neighbour outside P; the others provably do
    nothing when processed again) are enqueued, and P's set order is rebuilt from its
    history only when two or more of them need ordering.

    Parameters
    ----------
    high_idx : numpy.ndarray
        Sorted global indices of ``H``.
    neighbor_lists : list of list of int
        KNN_co of each entry of ``high_idx`` (global indices), see
        :func:`high_density_neighbors`.
    labeled_mask, targets, densities : numpy.ndarray
        ``(N,)`` arrays.

    Returns
    -------
    labels : numpy.ndarray
        int64 ``(N,)``: cluster ids ``0..C-1`` numbered in creation order with empty clusters
        dropped; ``-1`` outside ``H``.
    clusters : list of set
        Members of each cluster (their contents; the iteration order is not defined).
    """
    lengths = np.fromiter((len(lst) for lst in neighbor_lists), dtype=np.int64)
    if lengths.size != len(high_idx):
        raise ValueError("neighbor_lists: expected one list per entry of high_idx")
    flat = np.fromiter(itertools.chain.from_iterable(neighbor_lists), dtype=np.int64)
    glob = np.zeros((lengths.size, int(lengths.max(initial=0))), dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(lengths.size), lengths)
    glob[rows, np.arange(flat.size) - starts[rows]] = flat
    nbrs, lab, tgt = _filtered_lists(high_idx, (glob, lengths), labeled_mask, targets)
    out, clusters = _grow(high_idx, nbrs, lab, tgt, densities, want_clusters=True)
    assert clusters is not None
    return out, clusters


def grow_from_table(
    high_idx: npt.NDArray[np.int64],
    table: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    labeled_mask: npt.NDArray[np.bool_],
    targets: npt.NDArray[np.int64],
    densities: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """:func:`grow_core_clusters` on :func:`neighbor_table`'s arrays; the labels only."""
    nbrs, lab, tgt = _filtered_lists(high_idx, table, labeled_mask, targets)
    out, _ = _grow(high_idx, nbrs, lab, tgt, densities, want_clusters=False)
    return out


def _filtered_lists(
    high_idx: npt.NDArray[np.int64],
    table: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    labeled_mask: npt.NDArray[np.bool_],
    targets: npt.NDArray[np.int64],
) -> tuple[list[list[int]], list[bool], list[int]]:
    """Each point's KNN_co list with the hard constraint applied, and the masks as lists.

    Row ``i`` of ``table = (glob, n_keep)`` holds the list of ``high_idx[i]`` as its first
    ``n_keep[i]`` entries. The hard constraint depends on the two points only, so its links
    are dropped once, up front, on the arrays at once: the growth loop then receives its
    lists without a per-neighbour Python pass.
    """
    glob, n_keep = table
    n = len(labeled_mask)
    lab_arr = np.asarray(labeled_mask, dtype=bool)
    tgt_arr = np.asarray(targets)
    kept = np.arange(glob.shape[1])[None, :] < n_keep[:, None]
    # A labelled point never links to a point labelled with another class.
    hard = (
        lab_arr[high_idx][:, None] & lab_arr[glob] & (tgt_arr[glob] != tgt_arr[high_idx][:, None])
    )
    kept &= ~hard
    flat: list[int] = glob[kept].tolist()
    ends = np.cumsum(np.count_nonzero(kept, axis=1)).tolist()
    nbrs: list[list[int]] = [[]] * n  # read only; points outside H are never visited
    start = 0
    for g, end in zip(high_idx.tolist(), ends, strict=True):
        nbrs[g] = flat[start:end]
        start = end
    return nbrs, lab_arr.tolist(), tgt_arr.tolist()


def _grow(
    high_idx: npt.NDArray[np.int64],
    nbrs: list[list[int]],
    lab: list[bool],
    tgt: list[int],
    densities: npt.NDArray[np.float64],
    *,
    want_clusters: bool,
) -> tuple[npt.NDArray[np.int64], list[set[int]] | None]:
    """The growth loop over per-point neighbour lists with the hard constraint applied."""
    n = len(densities)
    rho: list[float] = densities.tolist()
    order = high_idx[np.lexsort((high_idx, -densities[high_idx]))].tolist()

    # A point's label is the id of the cluster it joined; absorbed ids forward to their
    # absorber (union-find, path-compressed), so an absorption relabels nobody.
    labels: list[int] = [-1] * n
    parent: list[int] = []
    size: list[int] = []
    n_lab: list[int] = []
    counts: list[dict[int, int]] = []
    ops: list[list[Any] | None] = []  # each cluster's set history, see _materialise
    built: list[set[int] | None] = []
    # fronts[r]: members of r with a neighbour outside r when last processed (or linked to
    # a point that moved out of r since). Only they are re-enqueued when r is absorbed:
    # any other member would find all its neighbours in the current cluster already.
    fronts: list[set[int]] = []
    rev: list[list[int]] | None = None  # reverse links, built on the first move only
    rule = cluster_label_rule

    def find(c: int) -> int:
        root = c
        while parent[root] != root:
            root = parent[root]
        while parent[c] != root:
            parent[c], c = root, parent[c]
        return root

    for xi in order:
        if labels[xi] != -1:
            continue
        cur = len(parent)
        parent.append(cur)
        hist: list[Any] = [xi]
        ops.append(hist)
        built.append(None)
        fs: set[int] = set()
        fronts.append(fs)
        size.append(0)
        n_lab.append(0)
        counts.append({})
        labels[xi] = cur
        c_size = 1
        c_lab = 1 if lab[xi] else 0
        c_counts: dict[int, int] = {tgt[xi]: 1} if lab[xi] else {}
        queue = deque([xi])
        popleft = queue.popleft
        push = queue.append
        record = hist.append
        while queue:
            c = popleft()
            outside = False
            for x in nbrs[c]:
                xc = labels[x]
                if xc == cur:
                    continue  # already in the current cluster: nothing to do
                if xc == -1:
                    record(x)
                    labels[x] = cur
                    push(x)
                    c_size += 1
                    if lab[x]:
                        c_lab += 1
                        c_counts[tgt[x]] = c_counts.get(tgt[x], 0) + 1
                    continue
                if parent[xc] != xc:
                    xc = find(xc)
                    labels[x] = xc
                    if xc == cur:
                        continue
                si = rule(c_size, c_lab, c_counts)
                sj = rule(size[xc], n_lab[xc], counts[xc])
                if si is None or sj is None or si == sj:
                    # Absorb P: its front members are enqueued in P's set iteration order.
                    fx = fronts[xc]
                    if len(fx) > 1:
                        queue.extend(filter(fx.__contains__, _materialise(xc, ops, built)))
                    elif fx:
                        queue.extend(fx)
                    record((xc,))
                    parent[xc] = cur
                    fronts[xc] = set()
                    c_size += size[xc]
                    size[xc] = 0
                    c_lab += n_lab[xc]
                    for t, cnt in counts[xc].items():
                        c_counts[t] = c_counts.get(t, 0) + cnt
                    n_lab[xc] = 0
                    counts[xc] = {}
                elif rho[c] > rho[x]:
                    # Label conflict: move x alone, only from a denser point.
                    hx = ops[xc]
                    assert hx is not None
                    hx.append(~x)
                    size[xc] -= 1
                    fronts[xc].discard(x)
                    record(x)
                    labels[x] = cur
                    push(x)
                    c_size += 1
                    if lab[x]:
                        t = tgt[x]
                        n_lab[xc] -= 1
                        counts[xc][t] -= 1
                        if counts[xc][t] == 0:
                            del counts[xc][t]
                        c_lab += 1
                        c_counts[t] = c_counts.get(t, 0) + 1
                    # Members of P that link to x now have a neighbour outside P.
                    if rev is None:
                        rev = [[] for _ in range(n)]
                        for m in high_idx.tolist():
                            for y in nbrs[m]:
                                rev[y].append(m)
                    fxc = fronts[xc]
                    for m in rev[x]:
                        if labels[m] != -1 and find(labels[m]) == xc:
                            fxc.add(m)
                else:
                    outside = True
            if outside:
                fs.add(c)
            else:
                fs.discard(c)
        size[cur] = c_size
        n_lab[cur] = c_lab
        counts[cur] = c_counts

    roots = np.asarray([find(c) for c in range(len(parent))], dtype=np.int64)
    alive = np.flatnonzero(np.asarray(size, dtype=np.int64) > 0)
    remap = np.full(len(parent) + 1, -1, dtype=np.int64)
    remap[alive] = np.arange(alive.size)
    lab_arr = np.asarray(labels, dtype=np.int64)
    inside = lab_arr >= 0
    out = np.full(n, -1, dtype=np.int64)
    out[inside] = remap[roots[lab_arr[inside]]]
    if not want_clusters:
        return out, None
    members = np.flatnonzero(inside)
    members = members[np.argsort(out[members], kind="stable")]
    bounds = np.searchsorted(out[members], np.arange(alive.size + 1))
    clusters = [set(members[bounds[i] : bounds[i + 1]].tolist()) for i in range(alive.size)]
    return out, clusters


def core_point_order(labels: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], Any]:
    """Clustered points sorted by (cluster id, index) and the group bounds of each cluster."""
    core = np.flatnonzero(labels >= 0)
    cols = core[np.argsort(labels[core], kind="stable")]
    sizes = np.bincount(labels[core]) if core.size else np.zeros(0, dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return cols, bounds


# ---- the original research code's API ---------------------------------------------------


def build_clusters_ssddbc(
    X: Any,
    high_density_mask: Any,
    neighbors: Any,
    labeled_mask: Any,
    targets: Any,
    densities: Any,
    known_mask: Any,
    k: int = 10,
    co: Any = None,
    silent: bool = False,
    logger: Any = None,
    train_size: int | None = None,
    *,
    pairwise_distances: Any = None,
) -> tuple[
    list[set[int]], npt.NDArray[np.int64], dict[int, npt.NDArray[np.int64]], dict[int, int | None]
]:
    """Grow the core clusters over the high-density points (the original's step-3 function).

    :func:`high_density_neighbors` then :func:`grow_core_clusters`, with the original's
    arguments and return value.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    high_density_mask : array_like
        ``(N,)`` boolean: the high-density set ``H``.
    neighbors : array_like
        ``(N, k)`` global neighbour indices; accepted for compatibility (the within-H
        neighbours are computed within ``H``, as in the original).
    labeled_mask, targets, densities, known_mask : array_like
        ``(N,)`` arrays. Labelled samples outside ``known_mask`` are used like any labelled
        sample (with an :class:`~ssddbc._errors.SsddbcWarning`).
    k : int
        Neighbours within ``H``.
    co : float or array_like
        Cutoff: a scalar, or ``(N,)`` per point. Required (the original failed without it).
    silent, logger, train_size
        Accepted for compatibility; nothing is printed or logged.
    pairwise_distances : numpy.ndarray, optional
        Keyword-only: ``(N, N)`` distances of ``X`` (only speed changes).

    Returns
    -------
    clusters : list of set of int
        Members of each non-empty cluster, ids ``0..C-1`` in creation order.
    cluster_labels : numpy.ndarray
        int64 ``(N,)``: cluster id, ``-1`` outside ``H``.
    high_density_neighbors_map : dict
        Each point of ``H`` -> int64 array of its KNN_co within ``H``.
    cluster_category_labels : dict
        Cluster id -> category label or ``None`` (:func:`cluster_label_rule`), every cluster.

    Raises
    ------
    InvalidInputError
        Malformed arrays, ``k`` out of range, or a missing or malformed ``co``.
    """
    x = as_features(X, "X")
    n = x.shape[0]
    high = as_mask(high_density_mask, "high_density_mask", n)
    lab = as_mask(labeled_mask, "labeled_mask", n)
    known = as_mask(known_mask, "known_mask", n)
    y = as_targets(targets, n, "targets")
    rho = np.asarray(densities, dtype=np.float64)
    if rho.shape != (n,):
        raise InvalidInputError("densities", f"expected shape ({n},), got {rho.shape}")
    k = check_int(k, "k", 1)
    if co is None:
        raise InvalidInputError("co", "the cutoff distance is required (a number or (N,) array)")
    co_arr = np.asarray(co, dtype=np.float64)
    if co_arr.ndim not in (0, 1) or (co_arr.ndim == 1 and co_arr.shape != (n,)):
        raise InvalidInputError("co", f"expected a number or shape ({n},), got {co_arr.shape}")
    pairwise = None if pairwise_distances is None else as_pairwise(pairwise_distances, n)
    warn_labeled_outside_known(known, lab)

    high_idx = np.flatnonzero(high)
    if high_idx.size == 0:
        return [], np.full(n, -1, dtype=np.int64), {}, {}
    source = DistanceSource(x, pairwise)
    cut: float | npt.NDArray[np.float64] = float(co_arr) if co_arr.ndim == 0 else co_arr
    lists = high_density_neighbors(source, high_idx, k, cut) if high_idx.size > 1 else [[]]
    labels, clusters = grow_core_clusters(high_idx, lists, lab, y, rho)
    nbr_map = {
        int(g): np.asarray(lst, dtype=np.int64)
        for g, lst in zip(high_idx.tolist(), lists, strict=True)
    }
    return clusters, labels, nbr_map, category_labels_of(clusters, lab, y)
