"""Rows that meet every column are streamed over column blocks; the answers do not change.

The fallbacks of the candidate path (a few undecided rows against all core points, all
high-density points, all members of the non-isolated clusters) fold column blocks into
:class:`~ssddbc.ssddbc._select.SmallestPerGroup` / ``SmallestPerRow``. These tests check the
accumulators against a plain per-row reference on random splits (ties included), and whole
clusterings with tiny blocks (groups split across blocks, many row batches) against the
same clusterings computed in one block per row batch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knncache
import ssddbc.ssddbc._source as source_mod
from ssddbc._distances import pairwise_euclidean
from ssddbc.ssddbc._select import (
    SmallestPerGroup,
    SmallestPerRow,
    mean_of_smallest_per_group,
    smallest_per_row,
)
from ssddbc.ssddbc._source import DistanceSource
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
from tests.ssddbc.test_candidates import gcd_blobs, tie_data
from tests.ssddbc.test_clustering import assert_same

_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


def _cuts(rng: np.random.Generator, n_cols: int) -> list[int]:
    """Random block edges over ``n_cols`` columns (blocks of width 1 included)."""
    inner = rng.choice(np.arange(1, n_cols), size=min(n_cols - 1, int(rng.integers(0, 6))))
    return [0, *sorted(set(inner.tolist())), n_cols]


def _reference_means(D: np.ndarray, bounds: np.ndarray, m: int) -> np.ndarray:
    """Per row and group: the min(m, size) smallest values, sorted, added in float64."""
    out = np.empty((D.shape[0], len(bounds) - 1))
    for i in range(D.shape[0]):
        for g in range(len(bounds) - 1):
            vals = sorted(float(v) for v in D[i, bounds[g] : bounds[g + 1]])[:m]
            acc = vals[0]
            for v in vals[1:]:
                acc += v
            out[i, g] = acc / len(vals)
    return out


@_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 12),
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=8),
    m=st.integers(1, 4),
    ties=st.booleans(),
)
def test_smallest_per_group_over_blocks_equals_the_reference(
    seed: int, rows: int, sizes: list[int], m: int, ties: bool
) -> None:
    rng = np.random.default_rng(seed)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n_cols = int(bounds[-1])
    raw = rng.integers(0, 3, (rows, n_cols)) if ties else rng.random((rows, n_cols)) * 5
    D = raw.astype(np.float32)
    want = _reference_means(D, bounds, m)
    np.testing.assert_array_equal(mean_of_smallest_per_group(D, bounds, m), want)
    cuts = _cuts(rng, n_cols)
    acc = SmallestPerGroup(rows, bounds, m)
    blocks = list(itertools.pairwise(cuts))
    for a, b in [blocks[i] for i in rng.permutation(len(blocks))]:  # any block order
        acc.update(a, D[:, a:b].copy())
    np.testing.assert_array_equal(acc.means(), want)


@_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 12),
    n_cols=st.integers(1, 40),
    m=st.integers(1, 10),
    ties=st.booleans(),
)
def test_smallest_per_row_over_blocks_equals_the_reference(
    seed: int, rows: int, n_cols: int, m: int, ties: bool
) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 3, (rows, n_cols)) if ties else rng.random((rows, n_cols)) * 5
    D = raw.astype(np.float32)
    D[rng.random(D.shape) < 0.1] = np.inf
    m = min(m, n_cols)
    acc = SmallestPerRow(rows, m)
    for a, b in itertools.pairwise(_cuts(rng, n_cols)):
        acc.update(a, D[:, a:b].copy())
    pos, vals = acc.result()
    for i in range(rows):  # (value, column) order, the m first
        want = sorted(range(n_cols), key=lambda c: (float(D[i, c]), c))[:m]
        np.testing.assert_array_equal(pos[i], want)
        np.testing.assert_array_equal(vals[i], D[i, want])
    whole_pos, whole_vals = smallest_per_row(D, m)
    np.testing.assert_array_equal(pos, whole_pos)
    np.testing.assert_array_equal(vals, whole_vals)


@pytest.mark.parametrize("with_matrix", [False, True])
def test_column_blocks_are_the_block(with_matrix: bool) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 7)).astype(np.float32)
    source = DistanceSource(X, pairwise_euclidean(X) if with_matrix else None)
    rows = rng.choice(300, 40, replace=False)
    cols = rng.permutation(300)[:250]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(source_mod, "_BLOCK_VALUES", 333)
        parts = list(source.column_blocks(rows, cols))
    assert len(parts) > 5
    assert [c0 for c0, _ in parts] == list(range(0, 250, 333 // 40))
    got = np.concatenate([b for _, b in parts], axis=1)
    np.testing.assert_array_equal(got, source.block(rows, cols))


def _tiny_blocks(mp: pytest.MonkeyPatch) -> None:
    """Blocks of a few dozen columns and batches of 7 rows: every group gets split."""
    mp.setattr(source_mod, "_BLOCK_VALUES", 301)
    mp.setattr(source_mod, "_BATCH_ROWS", 7)


@pytest.mark.parametrize("data", ["blobs", "ties"])
def test_tiny_blocks_give_the_same_clusterings(data: str) -> None:
    X, y, known, labeled = gcd_blobs(3, 700, 10) if data == "blobs" else tie_data(1)
    graph = knncache.compute_knn(X, 12)
    D = pairwise_euclidean(X)
    for (k, dp, am), with_matrix in itertools.product(
        ((3, 40, 3), (5, 75, 2), (8, 90, 3), (4, 60, 1)), (False, True)
    ):
        knn = (graph.neighbors[:, :k], graph.distances[:, :k])
        kw: dict[str, object] = {"assign_model": am, "precomputed_knn": knn}
        if with_matrix:
            kw["pairwise_distances"] = D
        want = adaptive_density_clustering(X, y, known, labeled, k, dp, **kw)
        with pytest.MonkeyPatch.context() as mp:
            _tiny_blocks(mp)
            got = adaptive_density_clustering(X, y, known, labeled, k, dp, **kw)
        assert_same(got, want)
