"""k-NN densities, relative density and high-density points (step 1 of SS-DDBC).

Function names follow the original research code: ``compute_simple_density`` (method 0, mean
distance), ``compute_median_density`` (1), ``compute_normalized_inverse_density`` (2) and
``compute_exponential_density`` (3); ``compute_mean_density`` and ``compute_normalized_density``
are aliases. Each returns ``(densities, knn_distances, neighbors)``: float64 densities, the
float64 distances to the ``k`` neighbours and their int64 indices.

The neighbour graph is the exact Euclidean one with self excluded and rows ordered by
(distance, index): ``knncache.compute_knn`` computes it when ``precomputed_knn`` is not given.
Densities are computed in float64 from the given distances (knncache hands out float32
distances, correctly rounded; the original used scikit-learn's float64 ones, so densities
agree to about 1e-7 relative).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from knncache import compute_knn
from ssddbc._errors import InvalidInputError
from ssddbc._validation import (
    as_features,
    as_precomputed_knn,
    check_choice,
    check_int,
    check_percentile,
)
from ssddbc.ssddbc._params import DEFAULTS

__all__ = [
    "DENSITY_METHODS",
    "EPS",
    "analyze_knn_average_distances",
    "compute_density",
    "compute_exponential_density",
    "compute_mean_density",
    "compute_median_density",
    "compute_normalized_density",
    "compute_normalized_inverse_density",
    "compute_relative_density",
    "compute_simple_density",
    "get_knn",
    "identify_high_density_points",
]

EPS = 1e-8
"""Added to denominators, as in the original."""

DENSITY_METHODS: dict[int, str] = {
    0: "mean",
    1: "median",
    2: "normalized",
    3: "exponential",
}

DensityResult = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]


def get_knn(
    X: Any, k: int, precomputed_knn: Any = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Neighbours and float64 distances of every point, first ``k`` columns.

    Parameters
    ----------
    X : array_like or None
        ``(N, d)`` features; may be ``None`` when ``precomputed_knn`` is given.
    k : int
        Number of neighbours, ``1 <= k < N``.
    precomputed_knn : tuple, optional
        ``(neighbors, distances)`` with at least ``k`` columns (a ``knncache.KnnGraph`` works);
        only the first ``k`` are used and no search runs.

    Returns
    -------
    neighbors : numpy.ndarray
        int64 ``(N, k)``.
    distances : numpy.ndarray
        float64 ``(N, k)``.

    Raises
    ------
    InvalidInputError
        Bad features, ``k`` out of range, or a malformed ``precomputed_knn``.
    """
    if precomputed_knn is None:
        x = as_features(X, "X")
        n = x.shape[0]
        k = check_int(k, "k", 1, n - 1)
        graph = compute_knn(x, k, "euclidean")
        return as_precomputed_knn(graph, n, k)
    if X is not None:
        n = as_features(X, "X").shape[0]
    else:
        try:
            n = len(precomputed_knn[0])
        except (TypeError, IndexError, KeyError):
            raise InvalidInputError(
                "precomputed_knn",
                f"expected a (neighbors, distances) pair, got {type(precomputed_knn).__name__}",
            ) from None
    k = check_int(k, "k", 1, n - 1)
    return as_precomputed_knn(precomputed_knn, n, k)


def compute_simple_density(
    X: Any, k: int = 10, silent: bool = False, *, precomputed_knn: Any = None
) -> DensityResult:
    """Method 0: ``1 / (mean of the k neighbour distances + 1e-8)``.

    Parameters
    ----------
    X : array_like or None
        ``(N, d)`` features (``None`` allowed with ``precomputed_knn``).
    k : int
        Number of neighbours.
    silent : bool
        The original's third parameter, accepted for compatibility; nothing is printed.
    precomputed_knn : tuple, optional
        Keyword-only: ``(neighbors, distances)``, at least ``k`` columns; see :func:`get_knn`.

    Returns
    -------
    densities, knn_distances, neighbors : numpy.ndarray
        float64 ``(N,)``, float64 ``(N, k)``, int64 ``(N, k)``.
    """
    neighbors, dist = get_knn(X, k, precomputed_knn)
    densities = 1.0 / (np.mean(dist, axis=1) + EPS)
    return densities, dist, neighbors


compute_mean_density = compute_simple_density


def compute_median_density(
    X: Any, k: int = 10, silent: bool = False, *, precomputed_knn: Any = None
) -> DensityResult:
    """Method 1 (the default of every search): ``1 / (median of the k distances + 1e-8)``.

    Parameters and return value as :func:`compute_simple_density`.
    """
    neighbors, dist = get_knn(X, k, precomputed_knn)
    densities = 1.0 / (np.median(dist, axis=1) + EPS)
    return densities, dist, neighbors


def compute_normalized_inverse_density(
    X: Any, k: int = 10, silent: bool = False, *, precomputed_knn: Any = None
) -> DensityResult:
    """Method 2: method 0 min-max scaled to ``[0, 1]`` (``1e-8`` added to the range).

    Parameters and return value as :func:`compute_simple_density`.
    """
    neighbors, dist = get_knn(X, k, precomputed_knn)
    raw = 1.0 / (np.mean(dist, axis=1) + EPS)
    lo, hi = raw.min(), raw.max()
    densities = (raw - lo) / (hi - lo + EPS)
    return densities, dist, neighbors


compute_normalized_density = compute_normalized_inverse_density


def compute_exponential_density(
    X: Any, k: int = 10, silent: bool = False, *, precomputed_knn: Any = None
) -> DensityResult:
    """Method 3: ``exp(-mean of the k neighbour distances)``.

    Parameters and return value as :func:`compute_simple_density`.
    """
    neighbors, dist = get_knn(X, k, precomputed_knn)
    densities = np.exp(-np.mean(dist, axis=1))
    return densities, dist, neighbors


_METHOD_FUNCS = {
    0: compute_simple_density,
    1: compute_median_density,
    2: compute_normalized_inverse_density,
    3: compute_exponential_density,
}


def compute_density(
    X: Any, k: int = 10, dense_method: int = DEFAULTS.dense_method, precomputed_knn: Any = None
) -> DensityResult:
    """Dispatch to the density method numbered ``dense_method`` (0-3, see DENSITY_METHODS).

    Raises
    ------
    InvalidInputError
        Unknown ``dense_method``, or anything :func:`get_knn` refuses.
    """
    method = check_choice(dense_method, "dense_method", _METHOD_FUNCS)
    return _METHOD_FUNCS[method](X, k, precomputed_knn=precomputed_knn)


def compute_relative_density(
    densities: Any, neighbors: Any, k: int, silent: bool = False
) -> npt.NDArray[np.float64]:
    """Relative density ``rho_i * (k + mean(rho)) / (k + mean of rho over i's k neighbours)``.

    Evaluated with the original's operation order (sum over the neighbours, divided by
    ``k``), so thresholds on it match the original bit for bit given the same densities.

    Parameters
    ----------
    densities : array_like
        Absolute densities ``(N,)``.
    neighbors : array_like
        ``(N, >=k)`` neighbour indices; the first ``k`` columns are used.
    k : int
        Number of neighbours.
    silent : bool
        Accepted for compatibility; ignored.

    Returns
    -------
    numpy.ndarray
        float64 ``(N,)``.
    """
    rho = np.asarray(densities, dtype=np.float64)
    nb = np.asarray(neighbors)
    k = check_int(k, "k", 1, nb.shape[1] if nb.ndim == 2 else None)
    nb = nb[:, :k]
    rho_mean = np.mean(rho)
    neighbor_avg = np.ascontiguousarray(rho[nb]).sum(axis=1) / k
    result: npt.NDArray[np.float64] = ((k + rho_mean) / (k + neighbor_avg)) * rho
    return result


def identify_high_density_points(
    densities: Any, percentile: float = 75, use_relative: bool = False, silent: bool = False
) -> npt.NDArray[np.bool_]:
    """Mask of the points whose density is at least the ``percentile``-th percentile.

    Parameters
    ----------
    densities : array_like
        ``(N,)`` densities (relative ones in SS-DDBC).
    percentile : float
        In ``[0, 100]``; 75 keeps about the top quarter (ties at the threshold are kept).
    use_relative, silent : bool
        Accepted for compatibility (they only changed printing in the original); ignored.

    Returns
    -------
    numpy.ndarray
        Boolean ``(N,)``.
    """
    p = check_percentile(percentile, "percentile")
    values = np.asarray(densities, dtype=np.float64)
    threshold = np.percentile(values, p)
    return values >= threshold


def analyze_knn_average_distances(knn_distances: Any) -> float:
    """Mean over the samples of each sample's mean k-NN distance (the original's analysis).

    This is the cutoff ``co`` of ``co_mode=2`` (the mean of all k-NN distances, since every
    row has ``k`` of them). The original also printed the distribution of the per-sample
    means; this returns the value and prints nothing.

    Parameters
    ----------
    knn_distances : array_like
        ``(N, k)`` distances.

    Returns
    -------
    float
    """
    d = np.asarray(knn_distances, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise InvalidInputError(
            "knn_distances", f"expected a non-empty (N, k) array, got shape {d.shape}"
        )
    return float(np.mean(np.mean(d, axis=1)))
