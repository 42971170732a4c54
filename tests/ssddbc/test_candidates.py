"""The large-N path: exact answers from a wide candidate graph equal the full-matrix path.

Without ``pairwise_distances`` the clustering answers within-H neighbours, the small-cluster
merge and assignment strategies 2 and 3 from the graph's ``M`` columns where they decide, and
from distance blocks elsewhere. These tests pin that the result is the full-matrix result (and
the oracle's), on data where both routes are taken, including exact-tie data.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knncache
import ssddbc.ssddbc._candidates as cand_mod
import ssddbc.ssddbc.assignment as assign_mod
from ssddbc._distances import pairwise_euclidean
from ssddbc.ssddbc._candidates import (
    choose_with_exact_means,
    first_members,
    present_groups,
    three_nearest_choice,
)
from ssddbc.ssddbc._select import mean_of_smallest_per_group
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
from tests.ssddbc.candidates_reference import reference_three_nearest_choice
from tests.ssddbc.oracle import oracle_clustering
from tests.ssddbc.test_clustering import assert_same


def gcd_blobs(seed: int, n: int, d: int, noise: float = 1.2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    c = 6
    centers = rng.standard_normal((c, d))
    y = rng.integers(0, c, n)
    X = (centers[y] + rng.standard_normal((n, d)) * noise).astype(np.float32)
    known = y < 4
    return X, y, known, known & (rng.random(n) < 0.6)


def tie_data(seed: int) -> tuple[np.ndarray, ...]:
    """Integer grid points with many duplicates: exact distance ties everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 7, (400, 3)).astype(np.float32)
    y = rng.integers(0, 4, 400)
    known = y < 3
    return X, y, known, known & (rng.random(400) < 0.5)


@pytest.fixture(scope="module")
def moderate() -> dict[int, tuple[Any, ...]]:
    out = {}
    for seed in (0, 1):
        X, y, known, labeled = gcd_blobs(seed, 1500, 12)
        out[seed] = (X, y, known, labeled, pairwise_euclidean(X), knncache.compute_knn(X, 40))
    return out


class _Counter:
    """Counts rows decided by the candidates and rows left to the exact blocks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decided = 0
        self.undecided = 0
        self.by_present = 0

        def by_present(*args: Any, **kwargs: Any) -> Any:
            out = cand_mod.choose_with_exact_means(*args, **kwargs)
            self.by_present += int((out >= 0).sum())
            return out

        monkeypatch.setattr(assign_mod, "choose_with_exact_means", by_present)
        for module, name in (
            ("ssddbc.ssddbc.clustering", "subset_neighbors"),
            ("ssddbc.ssddbc.assignment", "three_nearest_choice"),
            ("ssddbc.ssddbc.assignment", "first_members"),
            ("ssddbc.ssddbc.merging", "three_nearest_choice"),
        ):
            mod = __import__(module, fromlist=[name])
            monkeypatch.setattr(mod, name, self._wrap(getattr(cand_mod, name)))

    def _wrap(self, fn: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            ok = out[0] if isinstance(out, tuple) else out >= 0
            self.decided += int(ok.sum())
            self.undecided += int((~ok).sum())
            return out

        return counted


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("width", [None, 40])
def test_candidate_path_equals_matrix_path(
    moderate: dict[int, tuple[Any, ...]],
    seed: int,
    width: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y, known, labeled, D, graph = moderate[seed]
    counter = _Counter(monkeypatch)
    for k, dp, am in itertools.product((3, 9, 20), (40, 75, 95), (3, 2, 1)):
        if (k + dp + am) % 2:  # a spread half of the product
            continue
        m = k if width is None else width
        knn = (graph.neighbors[:, :m], graph.distances[:, :m])
        ref = adaptive_density_clustering(
            X, y, known, labeled, k, dp, assign_model=am, precomputed_knn=knn, pairwise_distances=D
        )
        got = adaptive_density_clustering(
            X, y, known, labeled, k, dp, assign_model=am, precomputed_knn=knn
        )
        assert_same(got, ref)
    # Both routes ran: rows decided by the candidates and rows computed from blocks.
    assert counter.decided > 0
    assert counter.undecided > 0
    if width is None:  # narrow graphs: the present groups' exact means decided some rows
        assert counter.by_present > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_path_on_exact_ties_equals_oracle_and_matrix(seed: int) -> None:
    X, y, known, labeled = tie_data(seed)
    D = pairwise_euclidean(X)
    graph = knncache.compute_knn(X, 30)
    for k, dp, am in ((3, 40, 3), (6, 75, 3), (10, 60, 2), (4, 90, 3)):
        wide = adaptive_density_clustering(
            X, y, known, labeled, k, dp, assign_model=am, precomputed_knn=graph
        )
        narrow = (graph.neighbors[:, :k], graph.distances[:, :k])
        ref = adaptive_density_clustering(
            X,
            y,
            known,
            labeled,
            k,
            dp,
            assign_model=am,
            precomputed_knn=narrow,
            pairwise_distances=D,
        )
        assert_same(wide, ref)
        assert_same(
            wide,
            oracle_clustering(X, y, known, labeled, k, dp, assign_model=am, precomputed_knn=narrow),
        )


def test_float64_graph_is_not_used_as_candidates(moderate: dict[int, tuple[Any, ...]]) -> None:
    X, y, known, labeled, D, graph = moderate[0]
    g64 = (graph.neighbors, graph.distances.astype(np.float64))
    got = adaptive_density_clustering(X, y, known, labeled, 5, 70, precomputed_knn=g64)
    ref = adaptive_density_clustering(
        X, y, known, labeled, 5, 70, precomputed_knn=graph, pairwise_distances=D
    )
    assert_same(got, ref)


def test_graph_distances_are_the_matrix_values(moderate: dict[int, tuple[Any, ...]]) -> None:
    """The candidate path relies on it: knncache's distances are euclidean_block's."""
    for X, *_, D, graph in moderate.values():
        rows = np.arange(X.shape[0])[:, None]
        np.testing.assert_array_equal(graph.distances, D[rows, graph.neighbors])


# ---- the building blocks against brute force ------------------------------------------------


def _rows_of(D: np.ndarray, rows: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The first m entries of each row of D in (distance, index) order, self excluded."""
    nb, ds = [], []
    for r in rows:
        d = D[r].astype(np.float64).copy()
        d[r] = np.inf
        order = np.lexsort((np.arange(d.size), d))[:m]
        nb.append(order)
        ds.append(D[r, order])
    return np.array(nb, dtype=np.int64), np.array(ds, dtype=np.float32)


def _grouped(
    seed: int, max_groups: tuple[int, int], share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """300 points (integer grid for odd seeds), a share of them in random groups (none
    empty): ``(D, group, sizes, rows outside the groups, their exact means per group)``."""
    rng = np.random.default_rng(seed)
    n = 300
    X = rng.integers(0, 5, (n, 2)).astype(np.float32) if seed % 2 else rng.random((n, 3))
    D = pairwise_euclidean(X)
    n_groups = int(rng.integers(*max_groups))
    group = np.where(rng.random(n) < share, rng.integers(0, n_groups, n), -1)
    group[rng.choice(n, n_groups, replace=False)] = np.arange(n_groups)  # none empty
    sizes = np.bincount(group[group >= 0], minlength=n_groups)
    rows = np.flatnonzero(group < 0)
    cols = np.flatnonzero(group >= 0)
    cols = cols[np.argsort(group[cols], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return D, group, sizes, rows, mean_of_smallest_per_group(D[np.ix_(rows, cols)], bounds)


@pytest.mark.parametrize("seed", range(6))
def test_three_nearest_choice_is_exact_where_it_decides(seed: int) -> None:
    D, group, sizes, rows, means = _grouped(seed, (1, 9), 0.5)
    n = D.shape[0]
    expected = np.argmin(means, axis=1)
    decided = 0
    for m in (1, 5, 20, n - 1):
        nb, ds = _rows_of(D, rows, m)
        got = three_nearest_choice(nb, ds, group, sizes)
        ok = got >= 0
        np.testing.assert_array_equal(got[ok], expected[ok])
        decided += int(ok.sum())
        if m == n - 1:
            assert ok.all()  # every point is a candidate: everything is decided
    assert decided > 0


@pytest.mark.parametrize("seed", range(6))
def test_present_group_means_decide_exactly(seed: int) -> None:
    """Rows left open by the candidates, given their present groups' exact means."""
    D, group, sizes, rows, means = _grouped(seed, (2, 12), 0.4)
    n_groups = sizes.size
    expected = np.argmin(means, axis=1)
    newly = 0
    for m in (2, 5, 12):
        nb, ds = _rows_of(D, rows, m)
        first = three_nearest_choice(nb, ds, group, sizes)
        c_row, c_gid = present_groups(nb, group, n_groups)
        got = choose_with_exact_means(
            ds[:, -1].astype(np.float64), c_row, c_gid, means[c_row, c_gid], sizes
        )
        ok = got >= 0
        np.testing.assert_array_equal(got[ok], expected[ok])
        assert ok[first >= 0].all()  # what the candidates decide, the exact means decide
        newly += int((ok & (first < 0)).sum())
    assert newly > 0


def test_present_groups_lists_each_rows_groups() -> None:
    group = np.array([-1, 0, 0, 2, 1, -1])
    nb = np.array([[1, 2, 0], [5, 0, 5], [3, 4, 1]])
    c_row, c_gid = present_groups(nb, group, 3)
    cells = list(zip(c_row.tolist(), c_gid.tolist(), strict=True))
    assert cells == [(0, 0), (2, 0), (2, 1), (2, 2)]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_groups=st.integers(1, 40),
    width=st.integers(1, 24),
    rows=st.integers(1, 60),
    m=st.integers(1, 4),
    ties=st.booleans(),
    chunk=st.sampled_from([None, 7, 50]),
    narrow=st.integers(1, 30),
)
def test_three_nearest_choice_equals_the_dense_reference(
    seed: int,
    n_groups: int,
    width: int,
    rows: int,
    m: int,
    ties: bool,
    chunk: int | None,
    narrow: int,
) -> None:
    """Same choice and same undecided rows as the dense (rows × groups × m) table it replaced.

    Integer distances make exact ties between means and bounds (including the bound of an
    absent group, ``d_M`` completed) common; small chunks split rows across calls; the
    width of the first pass varies (what a prefix decides, the whole row decides alike).
    """
    rng = np.random.default_rng(seed)
    n = max(width + 1, n_groups + 5, 30)
    group = np.where(rng.random(n) < 0.7, rng.integers(0, n_groups, n), -1)
    group[rng.choice(n, n_groups, replace=False)] = np.arange(n_groups)  # none empty
    sizes = np.bincount(group[group >= 0], minlength=n_groups)
    nb = np.array([rng.permutation(n)[:width] for _ in range(rows)], dtype=np.int64)
    raw = rng.integers(0, 4, (rows, width)) if ties else rng.random((rows, width)) * 3
    ds = np.sort(raw, axis=1).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        if chunk is not None:
            mp.setattr(cand_mod, "_ENTRIES", chunk)
        mp.setattr(cand_mod, "_NARROW", narrow)
        got = three_nearest_choice(nb, ds, group, sizes, m)
    want = reference_three_nearest_choice(nb, ds, group, sizes, m)
    np.testing.assert_array_equal(got, want)


def test_three_nearest_choice_decides_rows_with_many_groups() -> None:
    """Thousands of groups, few per row: the rows a single group wins are decided."""
    rng = np.random.default_rng(5)
    n_groups = 5000
    group = np.repeat(np.arange(n_groups), 3)
    sizes = np.full(n_groups, 3)
    rows = 200
    # Row i's nearest three candidates are group i's members, then other groups' points.
    nb = np.concatenate(
        [
            np.arange(rows)[:, None] * 3 + np.arange(3),
            rng.integers(rows * 3, group.size, (rows, 9)),
        ],
        axis=1,
    )
    ds = np.concatenate([np.full((rows, 3), 1.0), np.full((rows, 9), 2.0)], axis=1)
    ds = ds.astype(np.float32)
    got = three_nearest_choice(nb, ds, group, sizes)
    np.testing.assert_array_equal(got, np.arange(rows))
    np.testing.assert_array_equal(got, reference_three_nearest_choice(nb, ds, group, sizes))


def test_first_members_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, (200, 2)).astype(np.float32)
    D = pairwise_euclidean(X)
    member = rng.random(200) < 0.3
    rows = np.arange(200)
    nb, ds = _rows_of(D, rows, 25)
    for count in (0, 1, 4, 9):
        ok, idx, dist = first_members(nb, ds, member, count)
        for r, i, d in zip(rows[ok], idx, dist, strict=True):
            d_row = D[r].astype(np.float64).copy()
            d_row[r] = np.inf
            d_row[~member] = np.inf
            want = np.lexsort((np.arange(200), d_row))[:count]
            np.testing.assert_array_equal(i, want)
            np.testing.assert_array_equal(d, D[r, want])
