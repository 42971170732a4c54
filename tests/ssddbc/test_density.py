"""Densities, relative density and high-density points against their formulas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import knncache
from ssddbc import InvalidInputError
from ssddbc.density import density_estimation as de


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, Any]:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 5)).astype(np.float32)
    return X, knncache.compute_knn(X, 12)


def _brute_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = X.astype(np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    np.fill_diagonal(d, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(X)), d.shape), d), axis=-1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def test_original_names_and_aliases_exist() -> None:
    assert de.compute_mean_density is de.compute_simple_density
    assert de.compute_normalized_density is de.compute_normalized_inverse_density
    for name in (
        "compute_simple_density",
        "compute_median_density",
        "compute_normalized_inverse_density",
        "compute_exponential_density",
        "compute_relative_density",
        "identify_high_density_points",
    ):
        assert callable(getattr(de, name))


@pytest.mark.parametrize("k", [1, 4, 7])
def test_density_formulas(data: tuple[np.ndarray, Any], k: int) -> None:
    X, _ = data
    nb, ds = _brute_knn(X, k)
    d64 = ds.astype(np.float64)
    cases = {
        de.compute_simple_density: 1.0 / (d64.mean(axis=1) + 1e-8),
        de.compute_median_density: 1.0 / (np.median(d64, axis=1) + 1e-8),
        de.compute_exponential_density: np.exp(-d64.mean(axis=1)),
    }
    raw = 1.0 / (d64.mean(axis=1) + 1e-8)
    cases[de.compute_normalized_inverse_density] = (raw - raw.min()) / (
        raw.max() - raw.min() + 1e-8
    )
    for func, expected in cases.items():
        rho, dist, neighbors = func(X, k)
        assert rho.dtype == np.float64 and dist.dtype == np.float64
        assert neighbors.dtype == np.int64 and neighbors.shape == (len(X), k)
        np.testing.assert_array_equal(neighbors, nb)
        np.testing.assert_array_equal(dist, d64)
        np.testing.assert_allclose(rho, expected, rtol=1e-13)


def test_dispatch_matches_methods(data: tuple[np.ndarray, Any]) -> None:
    X, graph = data
    funcs = [
        de.compute_simple_density,
        de.compute_median_density,
        de.compute_normalized_inverse_density,
        de.compute_exponential_density,
    ]
    for method, func in enumerate(funcs):
        a = de.compute_density(X, 6, method, graph)
        b = func(X, 6, precomputed_knn=graph)
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)


def test_precomputed_uses_first_k_columns_and_no_search(
    data: tuple[np.ndarray, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, graph = data
    expected = de.compute_median_density(X, 5)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no search may run when precomputed_knn is given")

    monkeypatch.setattr(knncache, "compute_knn", boom)
    for x in (X, None):
        got = de.compute_median_density(x, 5, precomputed_knn=graph)
        for u, v in zip(got, expected, strict=True):
            np.testing.assert_array_equal(u, v)
    # A plain tuple of larger arrays works too.
    got = de.compute_median_density(None, 5, precomputed_knn=(graph[0], graph[1]))
    np.testing.assert_array_equal(got[0], expected[0])


def test_relative_density_matches_loop(data: tuple[np.ndarray, Any]) -> None:
    X, graph = data
    k = 9
    rho, _, nb = de.compute_median_density(X, k, precomputed_knn=graph)
    rel = de.compute_relative_density(rho, nb, k)
    mean = np.mean(rho)
    for i in range(len(X)):
        expected = ((k + mean) / (k + np.sum(rho[nb[i]]) / k)) * rho[i]
        assert rel[i] == expected  # same operation order as the original: bit-identical


@pytest.mark.parametrize("p", [0, 10, 50, 75, 100])
def test_high_density_points_percentile(p: float) -> None:
    rng = np.random.default_rng(0)
    values = rng.random(101)
    mask = de.identify_high_density_points(values, p)
    np.testing.assert_array_equal(mask, values >= np.percentile(values, p))
    assert mask.sum() == 101 - round(p)  # 101 values: the p-th percentile is an element
    assert de.identify_high_density_points(np.ones(7), 75).all()  # ties are kept


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"X": np.zeros((5, 2)), "k": 5}, "k"),
        ({"X": np.zeros((5, 2)), "k": 0}, "k"),
        ({"X": np.array([[0.0, np.nan], [1, 1], [2, 2]]), "k": 1}, "X"),
        ({"X": np.zeros(5), "k": 1}, "X"),
        (
            {"X": np.zeros((5, 2)), "k": 2, "precomputed_knn": (np.zeros((5, 1), int),) * 2},
            "precomputed_knn",
        ),
        ({"X": None, "k": 2, "precomputed_knn": 3}, "precomputed_knn"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        de.compute_median_density(**kwargs)
    assert info.value.argument == argument


def test_bad_percentile() -> None:
    with pytest.raises(InvalidInputError) as info:
        de.identify_high_density_points(np.ones(3), 101)
    assert info.value.argument == "percentile"
