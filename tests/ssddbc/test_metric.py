"""``metric=`` of ``adaptive_density_clustering``: cosine is Euclidean on L2-normalised rows.

The definition lives in :mod:`ssddbc._metric`. What is pinned here:

* a precomputed knncache cosine graph (a wider one, or one served by a store) and the graph
  the function computes itself give the same partition and densities;
* with and without the pairwise matrix of the normalised rows, the same partition; without
  it, the cosine graph's candidate columns are exactly the global nearest in the distances
  of the normalised rows (checked against the full sorted matrix), also with many ties;
* cosine does not depend on the scale of each row, and equals ``metric="euclidean"`` on
  ``l2_normalize(X)`` on the golden split (up to float rounding, which does not show here);
* bad metric names, zero rows, a non-cosine graph and a matrix of the raw features are
  refused with :class:`~ssddbc.InvalidInputError` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from knncache import EphemeralStore, compute_knn
from ssddbc import InvalidInputError
from ssddbc._distances import pairwise_euclidean
from ssddbc._metric import (
    METRICS,
    check_metric,
    cosine_candidate_graph,
    cosine_to_euclidean,
    l2_normalize,
)
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

CONFIGS = [(5, 50), (10, 75), (15, 90)]


def _split(golden: dict[str, Any]) -> tuple[Any, Any, Any]:
    return golden["targets"], golden["known_mask"], golden["labeled_mask"]


@pytest.fixture(scope="module")
def scaled(golden: dict[str, Any]) -> np.ndarray:
    """The golden features with every row scaled by a random positive factor."""
    rng = np.random.default_rng(0)
    factors = rng.uniform(0.2, 5.0, size=(golden["features"].shape[0], 1)).astype(np.float32)
    return np.asarray(golden["features"] * factors, dtype=np.float32)


@pytest.mark.parametrize(("k", "dp"), CONFIGS)
def test_precomputed_cosine_graph_gives_the_in_function_partition(
    golden: dict[str, Any], scaled: np.ndarray, k: int, dp: int
) -> None:
    inside = adaptive_density_clustering(scaled, *_split(golden), k, dp, metric="cosine")
    wide = compute_knn(scaled, 20, "cosine")
    given = adaptive_density_clustering(
        scaled, *_split(golden), k, dp, metric="cosine", precomputed_knn=wide
    )
    with EphemeralStore() as store:
        ref = store.ensure(scaled, 20, metric="cosine")
        served = adaptive_density_clustering(
            scaled, *_split(golden), k, dp, metric="cosine", precomputed_knn=ref.load(k)
        )
    for other in (given, served):
        np.testing.assert_array_equal(other[0], inside[0])
        np.testing.assert_array_equal(other[7], inside[7])
        np.testing.assert_array_equal(other[5], inside[5])


def _sorted_rows(matrix: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``width`` nearest other points in (distance, index) order, by brute force."""
    d = matrix.astype(np.float64)
    np.fill_diagonal(d, np.inf)
    index = np.broadcast_to(np.arange(d.shape[0]), d.shape)
    order = np.lexsort((index, d), axis=-1)[:, :width]
    return order, np.take_along_axis(matrix, order, axis=1)


def test_cosine_candidates_are_the_exact_nearest_of_the_unit_rows(scaled: np.ndarray) -> None:
    unit = l2_normalize(scaled)
    graph = compute_knn(scaled, 64, "cosine")
    candidates = cosine_candidate_graph(graph.neighbors, graph.distances, unit)
    assert candidates is not None
    nb, ds = candidates
    assert nb.dtype == np.int64 and ds.dtype == np.float32
    assert 32 <= nb.shape[1] <= 64  # only the columns near the cut can be dropped
    order, dist = _sorted_rows(pairwise_euclidean(unit), nb.shape[1])
    np.testing.assert_array_equal(nb, order)
    np.testing.assert_array_equal(ds, dist)
    # Not knncache's float32 distances: no candidates (distance blocks answer instead).
    assert cosine_candidate_graph(graph.neighbors, graph.distances.astype(np.float64), unit) is None


def test_ties_narrow_the_candidates_and_never_change_the_partition(
    golden: dict[str, Any],
) -> None:
    # Coarse integer features: many near-ties, so fewer columns are provably exact.
    coarse = np.round(golden["features"] * 3).astype(np.float32)
    coarse[~coarse.any(axis=1)] = 1.0
    # And 30 rows of one direction (different lengths): for them 1 - cos is 0 up to the
    # 20th neighbour, so no column at all can be proven exact.
    parallel = coarse.copy()
    parallel[:30] = coarse[0] * np.arange(1, 31, dtype=np.float32)[:, None]
    for features, expect_none in ((coarse, False), (parallel, True)):
        unit = l2_normalize(features)
        graph = compute_knn(features, 20, "cosine")
        candidates = cosine_candidate_graph(graph.neighbors, graph.distances, unit)
        assert (candidates is None) == expect_none
        matrix = pairwise_euclidean(unit)
        if candidates is not None:
            assert candidates[0].shape[1] < 20
            order, dist = _sorted_rows(matrix, candidates[0].shape[1])
            np.testing.assert_array_equal(candidates[0], order)
            np.testing.assert_array_equal(candidates[1], dist)
        for k, dp in CONFIGS:
            fast = adaptive_density_clustering(
                features, *_split(golden), k, dp, metric="cosine", precomputed_knn=graph
            )
            full = adaptive_density_clustering(
                features, *_split(golden), k, dp, metric="cosine", pairwise_distances=matrix
            )
            np.testing.assert_array_equal(fast[0], full[0])


@pytest.mark.parametrize(("k", "dp"), CONFIGS)
def test_cosine_with_and_without_the_normalised_matrix(
    golden: dict[str, Any], scaled: np.ndarray, k: int, dp: int
) -> None:
    matrix = pairwise_euclidean(l2_normalize(scaled))
    graph = compute_knn(scaled, 64, "cosine")  # a wide graph: its columns are candidates
    blocks = adaptive_density_clustering(
        scaled, *_split(golden), k, dp, metric="cosine", precomputed_knn=graph
    )
    with_matrix = adaptive_density_clustering(
        scaled,
        *_split(golden),
        k,
        dp,
        metric="cosine",
        precomputed_knn=graph,
        pairwise_distances=matrix,
    )
    np.testing.assert_array_equal(with_matrix[0], blocks[0])


@pytest.mark.parametrize(("k", "dp"), CONFIGS)
def test_cosine_is_euclidean_on_unit_rows_and_ignores_row_scale(
    golden: dict[str, Any], scaled: np.ndarray, k: int, dp: int
) -> None:
    raw = adaptive_density_clustering(golden["features"], *_split(golden), k, dp, metric="cosine")
    cos = adaptive_density_clustering(scaled, *_split(golden), k, dp, metric="cosine")
    euc_unit = adaptive_density_clustering(l2_normalize(scaled), *_split(golden), k, dp)
    euc_scaled = adaptive_density_clustering(scaled, *_split(golden), k, dp)
    np.testing.assert_array_equal(cos[0], raw[0])
    np.testing.assert_array_equal(cos[0], euc_unit[0])
    # Densities are in Euclidean units of the unit rows: sqrt(2 (1 - cos)) vs |u - v|.
    np.testing.assert_allclose(cos[7], euc_unit[7], rtol=5e-7)
    # The metric matters: Euclidean on the scaled rows is a different clustering.
    assert adjusted_rand_score(cos[0], euc_scaled[0]) < 0.5


def test_default_metric_is_euclidean(golden: dict[str, Any], golden_graph: Any) -> None:
    default = adaptive_density_clustering(
        golden["features"], *_split(golden), 10, 75, precomputed_knn=golden_graph
    )
    explicit = adaptive_density_clustering(
        golden["features"],
        *_split(golden),
        10,
        75,
        precomputed_knn=golden_graph,
        metric="euclidean",
    )
    np.testing.assert_array_equal(default[0], explicit[0])
    np.testing.assert_array_equal(default[7], explicit[7])


@pytest.mark.parametrize("bad", ["manhattan", "Cosine", "", None, 2])
def test_bad_metric_is_refused(golden: dict[str, Any], bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="metric") as info:
        adaptive_density_clustering(golden["features"], *_split(golden), 10, 75, metric=bad)
    assert info.value.argument == "metric"
    assert repr(bad) in str(info.value)


def test_zero_row_under_cosine_is_refused(golden: dict[str, Any]) -> None:
    x = np.array(golden["features"], copy=True)
    x[7] = 0.0
    with pytest.raises(InvalidInputError, match="row 7 is all zeros") as info:
        adaptive_density_clustering(x, *_split(golden), 10, 75, metric="cosine")
    assert info.value.argument == "X"


def test_euclidean_graph_of_unnormalised_rows_is_not_a_cosine_graph(
    golden: dict[str, Any], scaled: np.ndarray
) -> None:
    euclidean_graph = compute_knn(scaled * 10, 20)
    with pytest.raises(InvalidInputError, match=r"cosine distances \(1 - cos\) lie in") as info:
        adaptive_density_clustering(
            scaled, *_split(golden), 10, 75, metric="cosine", precomputed_knn=euclidean_graph
        )
    assert info.value.argument == "precomputed_knn"


def test_matrix_of_the_raw_rows_is_refused_under_cosine(
    golden: dict[str, Any], scaled: np.ndarray
) -> None:
    with pytest.raises(InvalidInputError, match="L2-normalised") as info:
        adaptive_density_clustering(
            scaled,
            *_split(golden),
            10,
            75,
            metric="cosine",
            pairwise_distances=pairwise_euclidean(scaled),
        )
    assert info.value.argument == "pairwise_distances"


def test_metric_helpers() -> None:
    assert METRICS == ("euclidean", "cosine")
    assert check_metric("cosine") == "cosine"
    u = l2_normalize(np.array([[3.0, 4.0], [0.0, 2.0]]))
    assert u.dtype == np.float32
    np.testing.assert_allclose(u, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-7)
    # |u - v| of unit vectors is sqrt(2 (1 - cos)): orthogonal -> sqrt(2), opposite -> 2.
    np.testing.assert_allclose(cosine_to_euclidean(np.array([0.0, 1.0, 2.0])), [0, 2**0.5, 2])
    with pytest.raises(InvalidInputError, match="X"):
        l2_normalize(np.zeros(3))
