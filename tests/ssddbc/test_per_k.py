"""``cluster_percentiles`` equals one ``adaptive_density_clustering`` call per percentile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import knncache
from ssddbc._distances import pairwise_euclidean
from ssddbc._errors import InvalidInputError
from ssddbc.ssddbc._per_k import cluster_percentiles, iter_cluster_percentiles
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering
from tests.ssddbc.test_candidates import tie_data
from tests.ssddbc.test_clustering import blobs, move_data

GRID = list(range(40, 100, 5))


def assert_identical(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    """All eight return values equal, arrays bit for bit."""
    assert len(a) == len(b) == 8
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == b[0].dtype
    assert a[1] == b[1]
    assert a[2] == b[2]
    assert a[3] == b[3]
    assert a[4] == b[4]
    np.testing.assert_array_equal(a[5], b[5])
    assert a[6] == b[6]
    np.testing.assert_array_equal(a[7], b[7])


def check_against_single_calls(
    data: tuple[np.ndarray, ...], k: int, percentiles: list[float], **kw: Any
) -> list[tuple[Any, ...]]:
    X, y, known, labeled = data
    got = cluster_percentiles(X, y, known, labeled, k, percentiles, **kw)
    kw.pop("graph_candidates", None)
    assert len(got) == len(percentiles)
    for p, out in zip(percentiles, got, strict=True):
        assert_identical(out, adaptive_density_clustering(X, y, known, labeled, k, p, **kw))
    return got


@pytest.mark.parametrize("k", [3, 5, 10, 15, 20])
def test_golden_grid_all_routes(
    golden: dict[str, Any], golden_graph: Any, golden_pairwise: np.ndarray, k: int
) -> None:
    data = (golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"])
    sliced = (golden_graph.neighbors[:, :k], golden_graph.distances[:, :k])
    # the grid search's matrix route, with and without the graph as candidates
    for graph_candidates in (True, False):
        check_against_single_calls(
            data,
            k,
            GRID,
            precomputed_knn=sliced,
            pairwise_distances=golden_pairwise,
            graph_candidates=graph_candidates,
        )
    # the wide graph alone (the candidate route), and the wide graph with the matrix
    check_against_single_calls(data, k, GRID, precomputed_knn=golden_graph)
    got = cluster_percentiles(
        *data, k, GRID, precomputed_knn=golden_graph, pairwise_distances=golden_pairwise
    )
    for p, out in zip(GRID, got, strict=True):
        ref = adaptive_density_clustering(
            *data, k, p, precomputed_knn=sliced, pairwise_distances=golden_pairwise
        )
        assert_identical(out, ref)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(12, 120),
    d=st.integers(1, 5),
    maker=st.sampled_from(["blobs", "moves"]),
    k=st.integers(1, 10),
    extra=st.integers(0, 12),
    percentiles=st.lists(st.floats(0, 100), min_size=1, max_size=6),
    dm=st.integers(0, 3),
    co=st.integers(1, 3),
    am=st.integers(1, 3),
    matrix=st.booleans(),
    graph_candidates=st.booleans(),
    fast_mode=st.booleans(),
)
def test_equals_single_calls_hypothesis(
    seed: int,
    n: int,
    d: int,
    maker: str,
    k: int,
    extra: int,
    percentiles: list[float],
    dm: int,
    co: int,
    am: int,
    matrix: bool,
    graph_candidates: bool,
    fast_mode: bool,
) -> None:
    data = blobs(seed, n=n, d=d) if maker == "blobs" else move_data(seed)
    X = data[0]
    k = min(k, len(X) - 1)
    graph = knncache.compute_knn(X, min(len(X) - 1, k + extra))
    kw: dict[str, Any] = {
        "dense_method": dm,
        "co_mode": co,
        "assign_model": am,
        "voting_k": 3,
        "precomputed_knn": graph,
        "fast_mode": fast_mode,
        "graph_candidates": graph_candidates,
    }
    if co == 1:
        kw["co_manual"] = 0.9
    if matrix:
        kw["pairwise_distances"] = pairwise_euclidean(X)
    check_against_single_calls(data, k, percentiles, **kw)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_ties_all_routes(seed: int) -> None:
    data = tie_data(seed)
    graph = knncache.compute_knn(data[0], 24)
    D = pairwise_euclidean(data[0])
    for k in (3, 8):
        check_against_single_calls(data, k, GRID, precomputed_knn=graph)
        check_against_single_calls(data, k, GRID, precomputed_knn=graph, pairwise_distances=D)
        sliced = (graph.neighbors[:, :k], graph.distances[:, :k])
        check_against_single_calls(data, k, GRID, precomputed_knn=sliced, pairwise_distances=D)


def test_computes_its_own_graph_when_none_given() -> None:
    data = blobs(3)
    check_against_single_calls(data, 6, [30, 75, 30])
    check_against_single_calls(data, 6, [50, 90], pairwise_distances=pairwise_euclidean(data[0]))


def test_results_do_not_share_arrays() -> None:
    X, y, known, labeled = blobs(4)
    first, second = cluster_percentiles(X, y, known, labeled, 5, [40, 80])
    before = second[7].copy()
    first[7][:] = -1.0
    first[5][:] = -1
    np.testing.assert_array_equal(second[7], before)
    assert (second[5] >= 0).all()


@pytest.mark.parametrize(
    ("percentiles", "match"),
    [
        ([], "at least one"),
        ("75", "sequence"),
        (75, "sequence"),
        ([40, 101], "density_percentile"),
        ([float("nan")], "density_percentile"),
    ],
)
def test_bad_percentiles_are_rejected(percentiles: Any, match: str) -> None:
    X, y, known, labeled = blobs(5)
    with pytest.raises(InvalidInputError, match=match):
        cluster_percentiles(X, y, known, labeled, 5, percentiles)


def test_bad_shared_input_is_rejected_as_in_single_calls() -> None:
    X, y, known, labeled = blobs(6)
    for call in (
        lambda: cluster_percentiles(X, y, known, labeled, len(X), [50]),
        lambda: adaptive_density_clustering(X, y, known, labeled, len(X), 50),
    ):
        with pytest.raises(InvalidInputError, match="k"):
            call()


def test_matrix_route_uses_the_graph_and_the_matrix(
    monkeypatch: pytest.MonkeyPatch,
    golden: dict[str, Any],
    golden_graph: Any,
    golden_pairwise: np.ndarray,
) -> None:
    """With both, the 20-column graph decides most rows and the matrix the rest."""
    from tests.ssddbc.test_candidates import _Counter

    counter = _Counter(monkeypatch)
    data = (golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"])
    check_against_single_calls(
        data, 5, GRID, precomputed_knn=golden_graph, pairwise_distances=golden_pairwise
    )
    assert counter.decided > counter.undecided > 0, (counter.decided, counter.undecided)


def test_cosine_equals_single_calls() -> None:
    """metric='cosine': own graph, a precomputed cosine graph, with and without the matrix."""
    from ssddbc._metric import l2_normalize

    data = blobs(7, n=90, d=4)
    X = data[0] * np.linspace(0.5, 3.0, len(data[0]))[:, None]  # rows of different norms
    data = (X, *data[1:])
    graph = knncache.compute_knn(X, 16, "cosine")
    D = pairwise_euclidean(l2_normalize(X))
    check_against_single_calls(data, 5, [40, 75, 90], metric="cosine")
    check_against_single_calls(data, 5, GRID, metric="cosine", precomputed_knn=graph)
    for graph_candidates in (True, False):
        check_against_single_calls(
            data,
            6,
            GRID,
            metric="cosine",
            precomputed_knn=graph,
            pairwise_distances=D,
            graph_candidates=graph_candidates,
        )


def test_bad_metric_is_rejected() -> None:
    X, y, known, labeled = blobs(8)
    with pytest.raises(InvalidInputError, match="metric"):
        cluster_percentiles(X, y, known, labeled, 5, [50], metric="manhattan")


def test_eval_dense_equals_single_calls(golden: dict[str, Any], golden_graph: Any) -> None:
    data = (golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"])
    for version in ("v1", "v2"):
        got = cluster_percentiles(
            *data,
            5,
            [40, 70, 95],
            precomputed_knn=golden_graph,
            eval_dense=True,
            eval_version=version,
        )
        for p, out in zip([40, 70, 95], got, strict=True):
            ref = adaptive_density_clustering(
                *data,
                5,
                p,
                precomputed_knn=golden_graph,
                eval_dense=True,
                eval_version=version,
            )
            assert len(out) == len(ref) == 10
            np.testing.assert_array_equal(out[0], ref[0])
            assert out[1:7] == ref[1:7]
            np.testing.assert_array_equal(out[7], ref[7])
            np.testing.assert_array_equal(out[9], ref[9])


def test_labelled_outside_known_warns_once_at_the_caller() -> None:
    from ssddbc._errors import SsddbcWarning

    X, y, known, labeled = blobs(9)
    known = known.copy()
    known[np.flatnonzero(labeled)[0]] = False
    with pytest.warns(SsddbcWarning) as record:
        got = cluster_percentiles(X, y, known, labeled, 5, [40, 80])
    assert len(record) == 1
    assert record[0].filename == __file__
    with pytest.warns(SsddbcWarning) as record:
        lazy = iter_cluster_percentiles(X, y, known, labeled, 5, [40, 80])  # warns here
    assert [w.filename for w in record] == [__file__]
    for a, b in zip(lazy, got, strict=True):
        assert_identical(a, b)
    for p, out in zip([40, 80], got, strict=True):
        with pytest.warns(SsddbcWarning) as single:
            ref = adaptive_density_clustering(X, y, known, labeled, 5, p)
        assert single[0].filename == __file__
        assert_identical(out, ref)
