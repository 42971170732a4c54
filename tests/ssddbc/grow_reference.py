"""The previous ``grow_core_clusters``, kept verbatim as the reference of the current one.

It drives real Python ``set`` objects through exactly the insertions and removals the
original made (so absorbed clusters are enqueued in the original's set iteration order) and
re-inserts every member of an absorbed cluster: quadratic when a large cluster is absorbed
again and again, which the package version avoids. The tests check both give identical
labels and clusters.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from ssddbc.ssddbc.clustering import cluster_label_rule

__all__ = ["reference_grow_core_clusters"]


def reference_grow_core_clusters(
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
        Members of each cluster.
    """
    n = len(densities)
    lab: list[bool] = labeled_mask.tolist()
    tgt: list[int] = targets.tolist()
    rho: list[float] = densities.tolist()
    # The hard constraint depends on the two points only: drop those links once, up front.
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for g, lst in zip(high_idx.tolist(), neighbor_lists, strict=True):
        if lab[g]:
            tg = tgt[g]
            nbrs[g] = [x for x in lst if not lab[x] or tgt[x] == tg]
        else:
            nbrs[g] = lst
    order = high_idx[np.lexsort((high_idx, -densities[high_idx]))].tolist()
    labels: list[int] = [-1] * n
    # front[m] is False only when every neighbour of m is known to share m's cluster. Such a
    # member does nothing when its cluster is absorbed and it is processed again, so it is not
    # enqueued: this removes the quadratic re-processing of big clusters absorbed by later
    # seeds without changing any outcome (the effective members keep their queue order).
    front: list[bool] = [True] * n
    rev: list[list[int]] | None = None  # reverse links, built on the first move only

    clusters: list[set[int]] = []
    n_lab: list[int] = []
    counts: list[dict[int, int]] = []
    rule = cluster_label_rule

    for xi in order:
        if labels[xi] != -1:
            continue
        cur = len(clusters)
        pi = set([xi])  # same construction as the original, hence the same set layout
        labels[xi] = cur
        c_lab = 1 if lab[xi] else 0
        c_counts: dict[int, int] = {tgt[xi]: 1} if lab[xi] else {}
        queue = deque([xi])
        popleft = queue.popleft
        push = queue.append
        add = pi.add
        while queue:
            c = popleft()
            outside = False
            for x in nbrs[c]:
                xc = labels[x]
                if xc == cur:
                    continue  # already in the current cluster: nothing to do
                if xc == -1:
                    add(x)
                    labels[x] = cur
                    push(x)
                    if lab[x]:
                        c_lab += 1
                        c_counts[tgt[x]] = c_counts.get(tgt[x], 0) + 1
                    continue
                p = clusters[xc]
                si = rule(len(pi), c_lab, c_counts)
                sj = rule(len(p), n_lab[xc], counts[xc])
                if si is None or sj is None or si == sj:
                    # Absorb P: members are added and enqueued in P's set iteration order.
                    for idx in p:
                        add(idx)
                        labels[idx] = cur
                        if front[idx]:
                            push(idx)
                    clusters[xc] = set()
                    c_lab += n_lab[xc]
                    for t, cnt in counts[xc].items():
                        c_counts[t] = c_counts.get(t, 0) + cnt
                    n_lab[xc] = 0
                    counts[xc] = {}
                elif rho[c] > rho[x]:
                    # Label conflict: move x alone, only from a denser point.
                    p.remove(x)
                    add(x)
                    labels[x] = cur
                    push(x)
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
                    for m in rev[x]:
                        if labels[m] == xc:
                            front[m] = True
                else:
                    outside = True
            front[c] = outside

        clusters.append(pi)
        n_lab.append(c_lab)
        counts.append(c_counts)

    old_ids = [i for i, c in enumerate(clusters) if c]
    remap = np.full(len(clusters) + 1, -1, dtype=np.int64)
    remap[old_ids] = np.arange(len(old_ids))
    out = remap[np.asarray(labels, dtype=np.int64)]  # -1 maps to remap[-1] == -1
    return out, [clusters[i] for i in old_ids]
