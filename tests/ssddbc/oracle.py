"""Loop-based reference implementation of SS-DDBC, written directly from the algorithm doc.

This is the correctness oracle of the vectorised package code and the baseline of
``benchmarks/bench_clustering.py``. It shares nothing with ``ssddbc`` except the input
arrays: per-point loops, an explicit breadth-first search with cluster labels recounted
from scratch after every change, per-point assignment. Slow on purpose; keep N small in
tests (a few hundred points).

Conventions it pins (from the doc and the original research code):

* a distance is the exact Euclidean distance of the two float32 rows rounded to float32,
  here computed from the difference vector in float64; densities are float64;
* every neighbour list is ordered by (distance, index), self excluded;
* clusters are Python sets; when a cluster is absorbed its members are enqueued in the
  set's iteration order (the original's behaviour);
* the small-cluster merge targets the first non-isolated cluster whose labelled members all
  carry the isolated cluster's single label, else the nearest by mean-of-3 distance;
* category labels of the returned clusters are computed on the core members.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

EPS = 1e-8


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    """Exact-ish distance of two float32 rows, rounded to float32, returned as a float."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.float32(math.sqrt(float(np.dot(diff, diff)))))


def _label_of(members: set[int], labeled: np.ndarray, targets: np.ndarray) -> int | None:
    """The doc's cluster label rule, recounted from the members."""
    size = len(members)
    if size < 5:
        return None
    labelled = [targets[m] for m in members if labeled[m]]
    if len(labelled) == 0:
        return None
    if len(labelled) / size <= 0.25:
        return None
    counts: dict[int, int] = {}
    for t in labelled:
        counts[int(t)] = counts.get(int(t), 0) + 1
    best = max(counts, key=lambda lab: counts[lab])
    if counts[best] / len(labelled) >= 0.8:
        return best
    return None


def oracle_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every point by (distance, index), self excluded."""
    n = len(X)
    nb = np.zeros((n, k), dtype=np.int64)
    ds = np.zeros((n, k), dtype=np.float32)
    for i in range(n):
        pairs = sorted((_dist(X[i], X[j]), j) for j in range(n) if j != i)
        for c in range(k):
            ds[i, c] = pairs[c][0]
            nb[i, c] = pairs[c][1]
    return nb, ds


def oracle_densities(dist: np.ndarray, dense_method: int) -> np.ndarray:
    """Densities of the doc's four methods from an (N, k) distance matrix."""
    n = dist.shape[0]
    rho = np.zeros(n)
    for i in range(n):
        row = [float(v) for v in dist[i]]
        if dense_method == 1:
            rho[i] = 1.0 / (float(np.median(row)) + EPS)
        elif dense_method == 3:
            rho[i] = math.exp(-(sum(row) / len(row)))
        else:
            rho[i] = 1.0 / (sum(row) / len(row) + EPS)
    if dense_method == 2:
        lo, hi = min(rho), max(rho)
        rho = np.array([(r - lo) / (hi - lo + EPS) for r in rho])
    return rho


def oracle_clustering(
    X: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k: int = 10,
    density_percentile: float = 75,
    *,
    dense_method: int = 1,
    co_mode: int = 2,
    co_manual: float | None = None,
    assign_model: int = 3,
    voting_k: int = 5,
    precomputed_knn: Any = None,
    stats: dict[str, int] | None = None,
) -> tuple[Any, ...]:
    """SS-DDBC by plain loops; same inputs and 8 return values as the package function.

    ``stats``, when given, counts the rule events met (``hard_skip``, ``absorb``, ``move``,
    ``reject``, ``merge_label``, ``merge_distance``) so tests can check their data exercise
    every rule.
    """
    events: dict[str, int] = {} if stats is None else stats

    def note(event: str) -> None:
        events[event] = events.get(event, 0) + 1

    X = np.asarray(X, dtype=np.float32)
    targets = np.asarray(targets)
    labeled = np.asarray(labeled_mask, dtype=bool)
    n = len(X)

    # 1. neighbours and densities
    if precomputed_knn is None:
        neighbors, dist32 = oracle_knn(X, k)
    else:
        neighbors = np.asarray(precomputed_knn[0])[:, :k].astype(np.int64)
        dist32 = np.asarray(precomputed_knn[1])[:, :k]
    dist = dist32.astype(np.float64)
    rho = oracle_densities(dist, dense_method)
    rho_mean = sum(rho) / n
    rel = np.zeros(n)
    for i in range(n):
        nb_avg = sum(rho[j] for j in neighbors[i]) / k
        rel[i] = rho[i] * (k + rho_mean) / (k + nb_avg)
    threshold = np.percentile(rel, density_percentile)
    high = [i for i in range(n) if rel[i] >= threshold]

    # 2. cutoff
    co_global = sum(float(v) for v in dist.ravel()) / dist.size
    co = [0.0] * n
    for i in range(n):
        if co_mode == 1:
            co[i] = float(co_manual)  # type: ignore[arg-type]
        elif co_mode == 2:
            co[i] = co_global
        else:
            nb_avg = sum(rho[j] for j in neighbors[i]) / k
            co[i] = co_global * (k + rho_mean) / (k + nb_avg)

    # 3. neighbours within H, cut at co
    knn_co: dict[int, list[int]] = {}
    for i in high:
        pairs = sorted((_dist(X[i], X[j]), j) for j in high if j != i)
        knn_co[i] = [j for d, j in pairs[:k] if d <= co[i]]

    # 3. breadth-first growth
    cluster_of = [-1] * n
    clusters: list[set[int]] = []
    visit = sorted(high, key=lambda i: (-rho[i], i))
    for seed in visit:
        if cluster_of[seed] != -1:
            continue
        cur = len(clusters)
        clusters.append(set([seed]))  # the original's construction: same set layout
        cluster_of[seed] = cur
        queue = deque([seed])
        while queue:
            c = queue.popleft()
            for x in knn_co[c]:
                if labeled[c] and labeled[x] and targets[c] != targets[x]:
                    note("hard_skip")
                    continue
                other = cluster_of[x]
                if other == -1:
                    clusters[cur].add(x)
                    cluster_of[x] = cur
                    queue.append(x)
                elif other != cur:
                    si = _label_of(clusters[cur], labeled, targets)
                    sj = _label_of(clusters[other], labeled, targets)
                    if si is not None and sj is not None and si != sj:
                        if rho[c] > rho[x]:
                            note("move")
                            clusters[other].remove(x)
                            clusters[cur].add(x)
                            cluster_of[x] = cur
                            queue.append(x)
                        else:
                            note("reject")
                    else:
                        note("absorb")
                        for m in clusters[other]:
                            clusters[cur].add(m)
                            cluster_of[m] = cur
                            queue.append(m)
                        clusters[other] = set()
    core = [sorted(c) for c in clusters if len(c) > 0]

    # 4. small-cluster merge
    def single_label(members: list[int]) -> int | None:
        labs = {int(targets[m]) for m in members if labeled[m]}
        return labs.pop() if len(labs) == 1 else None

    isolated = [c for c in range(len(core)) if len(core[c]) <= 3]
    big = [c for c in range(len(core)) if len(core[c]) > 3]
    target_of = {c: c for c in range(len(core))}
    if big:
        for c in isolated:
            lab = single_label(core[c])
            chosen = None
            if lab is not None:
                for b in big:
                    if single_label(core[b]) == lab:
                        chosen = b
                        note("merge_label")
                        break
            if chosen is None:
                note("merge_distance")
                if len(core[c]) == 1:
                    rep = X[core[c][0]]
                else:
                    rep = np.asarray(X[core[c]]).mean(axis=0).astype(np.float32)
                best = math.inf
                for b in big:
                    ds = sorted(_dist(rep, X[m]) for m in core[b])[:3]
                    avg = sum(ds) / len(ds)
                    if avg < best:
                        best, chosen = avg, b
            target_of[c] = chosen  # type: ignore[assignment]
    merged: dict[int, list[int]] = {}
    for c in range(len(core)):
        merged.setdefault(target_of[c], []).extend(core[c])
    core = [sorted(merged[c]) for c in sorted(merged)]
    core_labels = [-1] * n
    for cid, members in enumerate(core):
        for m in members:
            core_labels[m] = cid

    # 5. assignment of the remaining points, memberships frozen
    final = list(core_labels)
    rest = sorted((i for i in range(n) if core_labels[i] == -1), key=lambda i: (-rho[i], i))
    core_points = sorted(i for i in range(n) if core_labels[i] != -1)
    prototypes = [np.asarray(X[list(set(m))]).mean(axis=0) for m in core]
    for i in rest:
        if assign_model == 3:
            best, chosen = math.inf, -1
            for cid, members in enumerate(core):
                ds = sorted(_dist(X[i], X[m]) for m in members)[:3]
                avg = sum(ds) / len(ds)
                if avg < best:
                    best, chosen = avg, cid
        elif assign_model == 2:
            near = sorted((_dist(X[i], X[m]), m) for m in core_points)[:voting_k]
            scores: dict[int, float] = {}
            for d, m in near:
                scores[core_labels[m]] = scores.get(core_labels[m], 0.0) + float(
                    np.exp(-np.float64(d))
                )
            chosen = max(scores, key=lambda cid: scores[cid])
        else:
            best, chosen = math.inf, -1
            for cid, proto in enumerate(prototypes):
                d = _dist(X[i], proto)
                if d < best:
                    best, chosen = d, cid
        final[i] = chosen

    # 6. unknown clusters and return values
    labels = np.array(final, dtype=np.int64)
    n_clusters = len(set(final))
    unknown = [c for c in sorted(set(final)) if not any(labeled[labels == c])]
    core_sets = [set(m) for m in core]
    category = {}
    for cid, members in enumerate(core_sets):
        lab = _label_of(members, labeled, targets)
        if lab is not None:
            category[cid] = lab
    return (
        labels,
        n_clusters,
        unknown,
        [set(m) for m in core_sets],
        category,
        neighbors,
        core_sets,
        rho,
    )
