"""``ssddbc._distances``: one distance per pair, whatever the block, BLAS path or threads."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ssddbc import InvalidInputError
from ssddbc._distances import euclidean_block, pairwise_euclidean


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((300, 96)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[7] = x[2]  # an exact duplicate
    x[9] = x[4] + np.float32(1e-6)  # a near duplicate
    return x


def _exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a.astype(np.float64)[:, None, :] - b.astype(np.float64)[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)).astype(np.float32)


def test_matrix_is_the_correctly_rounded_distance(X: np.ndarray) -> None:
    D = pairwise_euclidean(X)
    assert D.dtype == np.float32 and D.shape == (300, 300)
    np.testing.assert_array_equal(D, _exact(X, X))
    assert (np.diag(D) == 0).all() and D[2, 7] == 0
    np.testing.assert_array_equal(D, D.T)


@pytest.mark.parametrize("threads", [1, 2])
def test_independent_of_blocks_and_threads(X: np.ndarray, threads: int) -> None:
    reference = pairwise_euclidean(X)
    rng = np.random.default_rng(0)
    with threadpool_limits(threads):
        for block_rows in (1, 3, 64, 1000):
            np.testing.assert_array_equal(pairwise_euclidean(X, block_rows=block_rows), reference)
        for _ in range(5):
            rows = rng.choice(300, rng.integers(1, 40), replace=False)
            cols = rng.choice(300, rng.integers(1, 300), replace=False)
            np.testing.assert_array_equal(
                euclidean_block(X[rows], X[cols]), reference[np.ix_(rows, cols)]
            )


def test_float64_input_is_taken_as_float32(X: np.ndarray) -> None:
    np.testing.assert_array_equal(pairwise_euclidean(X.astype(np.float64)), pairwise_euclidean(X))


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError) as info:
        pairwise_euclidean(np.array([[0.0, np.inf], [1.0, 1.0]]))
    assert info.value.argument == "X"
    with pytest.raises(InvalidInputError) as info:
        pairwise_euclidean(np.zeros((3, 2)), block_rows=0)
    assert info.value.argument == "block_rows"
    with pytest.raises(InvalidInputError):
        euclidean_block(np.zeros((2, 3)), np.zeros((2, 4)))
