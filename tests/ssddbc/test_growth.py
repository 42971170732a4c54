"""``grow_core_clusters`` (O(1) absorption) equals the previous, set-driven implementation.

The reference (:mod:`tests.ssddbc.grow_reference`) re-inserts every member of an absorbed
cluster into a real Python ``set`` and enqueues them in that set's iteration order, as the
original did; it equals the loop oracle (``test_clustering.py``). Here both are run on:

* arbitrary neighbour lists, labels and tied densities (hypothesis), including chain graphs
  dense in label conflicts, moves and rejects;
* every configuration of the golden search, on both routes (pairwise matrix and candidate
  graph);
* larger synthetic data: a GCD-shaped set with long absorption chains and an integer grid
  with many duplicate points (exact distance ties everywhere).

And the set-history replay that gives the original's iteration order is checked against
real ``set`` objects driven by random add / remove / absorb histories.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knncache
from ssddbc._distances import pairwise_euclidean
from ssddbc.data import make_synthetic_superclass
from ssddbc.density.density_estimation import (
    compute_density,
    compute_relative_density,
    identify_high_density_points,
)
from ssddbc.ssddbc import clustering as clustering_mod
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.clustering import (
    grow_core_clusters,
    grow_from_table,
    high_density_neighbors,
    neighbor_table,
)
from ssddbc.ssddbc.co_calculation import compute_co_value
from tests.ssddbc.grow_reference import reference_grow_core_clusters

GrowInputs = tuple[Any, list[list[int]], np.ndarray, np.ndarray, np.ndarray]

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


def assert_same_growth(args: GrowInputs) -> tuple[np.ndarray, list[set[int]]]:
    labels, clusters = grow_core_clusters(*args)
    ref_labels, ref_clusters = reference_grow_core_clusters(*args)
    np.testing.assert_array_equal(labels, ref_labels)
    assert clusters == ref_clusters
    return labels, clusters


def core_inputs(
    X: np.ndarray,
    y: np.ndarray,
    labeled: np.ndarray,
    k: int,
    dp: float,
    graph: tuple[np.ndarray, np.ndarray],
    pairwise: np.ndarray | None = None,
    co_mode: int = 2,
) -> GrowInputs:
    """What ``adaptive_density_clustering`` hands to the growth, on either route."""
    nb, ds = np.asarray(graph[0]), np.asarray(graph[1])
    rho, kd, nbk = compute_density(None, k, 1, (nb[:, :k], ds[:, :k]))
    rel = compute_relative_density(rho, nbk, k)
    high = np.flatnonzero(identify_high_density_points(rel, dp))
    co = compute_co_value(co_mode, kd, rho, nbk, k, 1.0 if co_mode == 1 else None)
    if pairwise is None:
        source = DistanceSource(X, None, (nb.astype(np.int64), ds.astype(np.float32)))
    else:
        source = DistanceSource(X, pairwise)
    lists = high_density_neighbors(source, high, k, co)
    return high, lists, labeled, y.astype(np.int64), rho


# ---- arbitrary inputs ----------------------------------------------------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    high_rate=st.floats(0.05, 1.0),
    degree=st.integers(0, 8),
    label_rate=st.floats(0.0, 1.0),
    n_classes=st.integers(1, 4),
    n_levels=st.integers(1, 40),
)
def test_random_graphs(
    seed: int,
    n: int,
    high_rate: float,
    degree: int,
    label_rate: float,
    n_classes: int,
    n_levels: int,
) -> None:
    """Any neighbour lists (not even symmetric or geometric), densities with many ties."""
    rng = np.random.default_rng(seed)
    high = np.flatnonzero(rng.random(n) < high_rate).astype(np.int64)
    if high.size == 0:
        high = np.array([0], dtype=np.int64)
    lists = []
    for h in high.tolist():
        picks = rng.choice(high, min(high.size, int(rng.integers(0, degree + 1))), replace=False)
        lists.append([int(v) for v in picks if v != h])
    labeled = rng.random(n) < label_rate
    y = rng.integers(0, n_classes, n).astype(np.int64)
    rho = rng.integers(0, n_levels, n).astype(np.float64)
    assert_same_growth((high, lists, labeled, y, rho))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    high_rate=st.floats(0.05, 1.0),
    degree=st.integers(0, 8),
    label_rate=st.floats(0.0, 1.0),
    n_classes=st.integers(1, 4),
)
def test_the_table_route_grows_the_same_labels(
    seed: int, n: int, high_rate: float, degree: int, label_rate: float, n_classes: int
) -> None:
    """grow_from_table (the arrays, the hard constraint applied to them at once) gives the
    labels grow_core_clusters gives on the same lists."""
    rng = np.random.default_rng(seed)
    high = np.flatnonzero(rng.random(n) < high_rate).astype(np.int64)
    if high.size == 0:
        high = np.array([0], dtype=np.int64)
    width = min(degree, high.size)
    glob = np.array([rng.permutation(high)[:width] for _ in high.tolist()], dtype=np.int64)
    glob = glob.reshape(high.size, width)
    n_keep = rng.integers(0, width + 1, high.size)
    lists = [row[:c] for row, c in zip(glob.tolist(), n_keep.tolist(), strict=True)]
    labeled = rng.random(n) < label_rate
    y = rng.integers(0, n_classes, n).astype(np.int64)
    rho = rng.integers(0, 10, n).astype(np.float64)
    labels, _ = grow_core_clusters(high, lists, labeled, y, rho)
    got = grow_from_table(high, (glob, n_keep), labeled, y, rho)
    np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("candidates", [False, True])
def test_neighbor_table_holds_the_neighbour_lists(candidates: bool) -> None:
    data = make_synthetic_superclass(n=600, d=8, seed=2, noise=1.2)
    X = data.features
    graph = knncache.compute_knn(X, 12)
    for k, dp in ((3, 40), (10, 80)):
        rho, kd, nbk = compute_density(None, k, 1, (graph.neighbors[:, :k], graph.distances[:, :k]))
        high = np.flatnonzero(
            identify_high_density_points(compute_relative_density(rho, nbk, k), dp)
        )
        co = compute_co_value(2, kd, rho, nbk, k, None)
        cand = (graph.neighbors.astype(np.int64), graph.distances) if candidates else None
        source = DistanceSource(X, None, cand)
        glob, n_keep = neighbor_table(source, high, k, co)
        lists = high_density_neighbors(source, high, k, co)
        assert [row[:c] for row, c in zip(glob.tolist(), n_keep.tolist(), strict=True)] == lists
        assert any(lists) and not all(len(v) == glob.shape[1] for v in lists)


def chain_inputs(seed: int, n: int, width: int, segment: int, label_rate: float) -> GrowInputs:
    """Points on a line linked to nearby points, labels in segments with 10% noise.

    Clusters reach the label rule's size and purity, so neighbouring clusters carry
    different labels: conflicts, moves and rejects are frequent, and so are absorbed
    clusters with several front members (the replayed set order is used).
    """
    rng = np.random.default_rng(seed)
    high = np.flatnonzero(rng.random(n) < rng.uniform(0.5, 1.0)).astype(np.int64)
    if high.size == 0:
        high = np.array([0], dtype=np.int64)
    y = ((np.arange(n) // segment) % 3).astype(np.int64)
    flip = rng.random(n) < 0.1
    y[flip] = rng.integers(0, 3, int(flip.sum()))
    labeled = rng.random(n) < label_rate
    member = set(high.tolist())
    lists = []
    for h in high.tolist():
        near = [h + d for d in range(-width, width + 1) if d and h + d in member]
        near = [v for v in near if rng.random() < 0.8]
        if rng.random() < 0.05:
            near.append(int(rng.choice(high)))
        lists.append([v for v in dict.fromkeys(near) if v != h])
    rho = rng.integers(0, int(rng.integers(2, 30)), n).astype(np.float64)
    return high, lists, labeled, y, rho


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(10, 600),
    width=st.integers(1, 5),
    segment=st.integers(3, 40),
    label_rate=st.floats(0.3, 1.0),
)
def test_conflict_dense_chains(
    seed: int, n: int, width: int, segment: int, label_rate: float
) -> None:
    assert_same_growth(chain_inputs(seed, n, width, segment, label_rate))


def test_chains_use_the_replayed_set_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases above do reach the replay, with absorbed and shrunk histories inside."""
    seen = {"calls": 0, "nested": 0, "removes": 0}
    real = clustering_mod._materialise

    def counting(q: int, ops: Any, built: Any) -> set[int]:
        seen["calls"] += 1
        seen["nested"] += sum(type(op) is tuple for op in ops[q])
        seen["removes"] += sum(type(op) is int and op < 0 for op in ops[q])
        return real(q, ops, built)

    monkeypatch.setattr(clustering_mod, "_materialise", counting)
    for seed in range(200):
        assert_same_growth(chain_inputs(seed, 500, 2, (20, 40)[seed % 2], 0.9))
    assert seen["calls"] >= 20 and seen["nested"] >= 10 and seen["removes"] >= 20, seen


# ---- the set-history replay ----------------------------------------------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(1, 400),
    spread=st.sampled_from([8, 64, 1000, 2**16]),
    stride=st.sampled_from([1, 8, 32, 1024]),
)
def test_materialise_reproduces_set_iteration_order(
    seed: int, steps: int, spread: int, stride: int
) -> None:
    """Random histories of adds, removes and absorptions: same order as real sets.

    Values are multiples of ``stride`` below ``spread * stride``, so many share their low
    bits (hash collisions, probing, resizes and dummies all occur).
    """
    rng = np.random.default_rng(seed)
    real: list[set[int]] = []
    ops: list[list[Any] | None] = []
    built: list[set[int] | None] = []
    live: list[int] = []
    used: set[int] = set()

    def fresh() -> int | None:
        for _ in range(20):
            v = int(rng.integers(0, spread)) * stride
            if v not in used:
                used.add(v)
                return v
        return None

    for _ in range(steps):
        action = rng.random()
        if not live or action < 0.1:
            v = fresh()
            if v is None:
                continue
            real.append(set([v]))
            ops.append([v])
            built.append(None)
            live.append(len(real) - 1)
        elif action < 0.7:
            r = live[int(rng.integers(len(live)))]
            v = fresh()
            if v is not None:
                real[r].add(v)
                ops[r].append(v)  # type: ignore[union-attr]
        elif action < 0.8:
            r = live[int(rng.integers(len(live)))]
            if len(real[r]) > 1:
                v = int(rng.choice(sorted(real[r])))
                real[r].remove(v)
                ops[r].append(~v)  # type: ignore[union-attr]
        elif len(live) > 1:
            r, q = (int(i) for i in rng.choice(live, 2, replace=False))
            if rng.random() < 0.5:  # the order is needed now
                assert list(clustering_mod._materialise(q, ops, built)) == list(real[q])
            for m in real[q]:
                real[r].add(m)
            real[q] = set()
            ops[r].append((q,))  # type: ignore[union-attr]
            live.remove(q)
    for r in live:
        assert list(clustering_mod._materialise(r, ops, built)) == list(real[r])


# ---- real data, both routes ----------------------------------------------------------------


def test_golden_search_grid_both_routes(
    golden: dict[str, Any], golden_graph: Any, golden_pairwise: np.ndarray
) -> None:
    """All 216 configurations of the golden search, matrix and candidate route."""
    X, y, lab = golden["features"], golden["targets"], golden["labeled_mask"].astype(bool)
    graph = (golden_graph.neighbors, golden_graph.distances)
    n_clusters = 0
    for k in range(3, 21):
        for dp in range(40, 100, 5):
            a = assert_same_growth(core_inputs(X, y, lab, k, dp, graph, golden_pairwise))
            b = assert_same_growth(core_inputs(X, y, lab, k, dp, graph))
            np.testing.assert_array_equal(a[0], b[0])
            n_clusters += len(a[1])
    assert n_clusters > 216  # not a degenerate single-cluster grid


@pytest.fixture(scope="module")
def gcd_large() -> tuple[np.ndarray, ...]:
    data = make_synthetic_superclass(n=20_000, d=32, seed=3, noise=1.2)
    graph = knncache.compute_knn(data.features, 24)
    return data.features, data.targets, data.labeled_mask, graph.neighbors, graph.distances


@pytest.mark.parametrize(("k", "dp"), [(3, 40), (5, 60), (12, 40)])
def test_large_gcd_data_candidate_route(gcd_large: tuple[np.ndarray, ...], k: int, dp: int) -> None:
    """N=20,000: big clusters absorbed again and again by later seeds."""
    X, y, lab, nb, ds = gcd_large
    _, clusters = assert_same_growth(core_inputs(X, y, lab, k, dp, (nb, ds)))
    assert max(len(c) for c in clusters) > 1000


def grid_duplicates(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Integer grid points: about n / 1000 copies of each point, exact ties everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 10, (n, 3)).astype(np.float32)
    y = (X[:, 0] // 4).astype(np.int64) + 3 * (rng.random(n) < 0.05)
    known = y < 3
    return X, y, known & (rng.random(n) < 0.6)


@pytest.mark.parametrize(("k", "dp", "co_mode"), [(3, 40, 2), (8, 75, 3), (5, 50, 1)])
def test_duplicate_heavy_data_both_routes(k: int, dp: int, co_mode: int) -> None:
    X, y, lab = grid_duplicates(4000, seed=k)
    graph = knncache.compute_knn(X, 32)
    pairs = (graph.neighbors, graph.distances)
    a = assert_same_growth(core_inputs(X, y, lab, k, dp, pairs, pairwise_euclidean(X), co_mode))
    b = assert_same_growth(core_inputs(X, y, lab, k, dp, pairs, None, co_mode))
    np.testing.assert_array_equal(a[0], b[0])


def test_large_duplicate_heavy_data_candidate_route() -> None:
    X, y, lab = grid_duplicates(12_000, seed=1)
    graph = knncache.compute_knn(X, 24)
    for k, dp in ((3, 40), (10, 60)):
        assert_same_growth(core_inputs(X, y, lab, k, dp, (graph.neighbors, graph.distances)))
