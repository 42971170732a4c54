"""The one definition of SS-DDBC's metrics: ``"euclidean"`` and ``"cosine"``.

``"euclidean"`` is the algorithm as published: every distance is the Euclidean distance of
the float32 feature rows (:mod:`ssddbc._distances`).

``"cosine"`` is SS-DDBC run on L2-normalised features, measured in Euclidean units:

* the features become ``U = l2_normalize(X)``: each row divided by its norm in float64,
  then rounded to float32 (the same rows knncache searches for ``metric="cosine"``);
* the neighbour graph is knncache's cosine graph of ``X`` (``compute_knn(X, k, "cosine")``,
  or ``store.ensure(X, k_max, metric="cosine")``): neighbours in ``(1 - cos, index)`` order,
  distances ``c = 1 - cos``;
* densities and the cutoff ``co`` use the graph's distances converted to Euclidean distances
  between unit vectors, ``sqrt(2 * c)`` (since ``|u - v|^2 = 2 (1 - cos(u, v))``), so ``co`` is
  in the units of the distances it is compared with;
* every later step (within-H neighbours, small-cluster merge, assignment, prototypes, and
  the silhouette of the selection score) uses Euclidean distances between the rows of ``U``
  (a precomputed matrix must be ``pairwise_euclidean(l2_normalize(X))``); without a matrix,
  the cosine graph still serves as a candidate graph (:func:`cosine_candidate_graph`: the
  columns it provably orders exactly in those distances), so large N stays cheap.

A precomputed knncache cosine graph and the graph computed inside the function are therefore
the same arrays, and give the same partition. The result equals ``metric="euclidean"`` on
``U`` up to float rounding (neighbour order at near-ties, densities to about 1e-7
relative); it does not depend on the scale of each row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._distances import exact_pairs
from ssddbc._errors import InvalidInputError

__all__ = [
    "METRICS",
    "check_metric",
    "check_nonzero_rows",
    "cosine_candidate_graph",
    "cosine_to_euclidean",
    "l2_normalize",
]

#: The metrics SS-DDBC accepts (``metric=`` of the algorithm, the estimators, the search).
METRICS: tuple[str, ...] = ("euclidean", "cosine")

# 1 - cos lies in [0, 2]; knncache's float32 values may exceed 2 by a rounding error.
_COSINE_MAX = 2.0 + 1e-5
# Relative and absolute slack of the lower bound in cosine_candidate_graph. The errors it
# covers: float32 rounding of 1 - cos (2^-24 relative) and of the distance (2^-24), the
# float64 sums (below 2^-30 relative for any d < 10^7), and |U - u| <= 2^-24 per unit row
# (2^-23 for a pair). Each slack is several times its error: a looser bound only drops
# candidate columns, never exactness.
_REL_SLACK = 2.0**-20
_ABS_SLACK = 2.0**-21


def check_metric(metric: Any, name: str = "metric") -> str:
    """Return ``metric`` if it is one of :data:`METRICS`.

    Raises
    ------
    InvalidInputError
        Anything else (names the value with ``!r``).
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise InvalidInputError(name, f"expected one of {list(METRICS)!r}, got {metric!r}")
    return metric


def check_nonzero_rows(X: Any, name: str = "X") -> None:
    """Refuse a feature matrix with an all-zero row (cosine is undefined there), cheaply.

    The check :func:`l2_normalize` makes, without its copy: callers validate before work.

    Raises
    ------
    InvalidInputError
        A row of zeros (names the first).
    """
    arr = np.asarray(X)
    zero = np.flatnonzero(~np.any(arr != 0, axis=1)) if arr.ndim == 2 else np.empty(0)
    if zero.size:
        raise InvalidInputError(
            name,
            f"cosine distance is undefined for a zero vector; row {int(zero[0])} is all zeros "
            f"({zero.size} such row(s))",
        )


def l2_normalize(X: Any, name: str = "X") -> npt.NDArray[np.float32]:
    """Rows of ``X`` divided by their Euclidean norm (in float64), as float32.

    The same normalisation knncache applies for ``metric="cosine"``, so the rows SS-DDBC
    measures under cosine are the rows knncache searched.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` finite real features.
    name : str
        Argument name used in errors.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, d)``, every row of norm 1 (to float32 rounding).

    Raises
    ------
    InvalidInputError
        Not a 2-D real array, or a row that is all zeros (its direction is undefined).
    """
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise InvalidInputError(
            name, f"expected a 2-D real array, got shape {arr.shape} dtype {arr.dtype}"
        )
    x64 = arr.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise InvalidInputError(
            name,
            f"cosine distance is undefined for a zero vector; row {int(zero[0])} is all zeros "
            f"({zero.size} such row(s))",
        )
    return np.ascontiguousarray(x64 / norms, dtype=np.float32)


def cosine_to_euclidean(
    distances: npt.NDArray[np.floating[Any]], name: str = "precomputed_knn"
) -> npt.NDArray[np.float64]:
    """Euclidean distances between unit vectors from cosine distances: ``sqrt(2 * c)``.

    Parameters
    ----------
    distances : numpy.ndarray
        ``1 - cos`` values (a knncache cosine graph's distances), in ``[0, 2]``.
    name : str
        Argument name used in errors.

    Returns
    -------
    numpy.ndarray
        float64, same shape.

    Raises
    ------
    InvalidInputError
        A value above 2: the graph is not a cosine graph (for example a Euclidean graph of
        features that are not unit vectors).
    """
    c = np.asarray(distances, dtype=np.float64)
    if c.size and float(c.max()) > _COSINE_MAX:
        raise InvalidInputError(
            name,
            f"holds a distance of {float(c.max())!r}, but cosine distances (1 - cos) lie in "
            "[0, 2]: with metric='cosine' pass a cosine graph "
            "(knncache.compute_knn(X, k, 'cosine'))",
        )
    out: npt.NDArray[np.float64] = np.sqrt(2.0 * c)
    return out


def cosine_candidate_graph(
    neighbors: npt.NDArray[np.integer[Any]],
    cosine_distances: npt.NDArray[np.float32],
    u: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None:
    """A knncache cosine graph turned into an exact candidate graph in the distances of ``U``.

    The candidate functions (:mod:`ssddbc.ssddbc._candidates`) need each row to be the exact
    global top-``M`` of its point in ``(distance, index)`` order, with the distances
    :func:`ssddbc._distances.euclidean_block` gives between rows of ``U``. A cosine row is
    ordered by rounded ``1 - cos`` instead, which may swap near-ties. So: the listed pairs'
    distances are recomputed exactly (the same per-pair computation ``euclidean_block`` uses)
    and each row re-sorted by ``(distance, index)``; every point missing from a row has
    ``1 - cos >= c_M`` (the row's last value), hence a distance of at least
    ``L = sqrt(2 c_M) - slack`` (rounding of ``c``, of ``U`` and of the distance bounded);
    the entries below ``L`` are therefore exactly the row's global nearest. Every row is cut
    to the smallest such count over all rows.

    Parameters
    ----------
    neighbors, cosine_distances : numpy.ndarray
        ``(N, M)`` knncache cosine graph (self excluded, ``(1 - cos, index)`` order, float32).
    u : numpy.ndarray
        ``(N, d)`` float32 rows, ``l2_normalize`` of the features the graph was computed on.

    Returns
    -------
    tuple or None
        ``(neighbors int64 (N, M'), distances float32 (N, M'))`` with ``M' <= M``, or None when
        no column is provably exact (``M' = 0``, e.g. many points of one direction) or the
        distances are not float32 (not knncache's).
    """
    c = np.asarray(cosine_distances)
    nb = np.ascontiguousarray(neighbors, dtype=np.int64)
    if c.dtype != np.float32 or nb.ndim != 2 or nb.shape[1] == 0:
        return None
    n, m = nb.shape
    u64 = np.asarray(u, dtype=np.float64)
    rows = np.repeat(np.arange(n, dtype=np.int64), m)
    dist = exact_pairs(u64, u64, rows, nb.ravel()).astype(np.float32).reshape(n, m)
    order = np.lexsort((nb, dist), axis=-1)
    nb = np.take_along_axis(nb, order, axis=1)
    dist = np.take_along_axis(dist, order, axis=1)
    c_last = c[:, -1].astype(np.float64)
    bound = (np.sqrt(2.0 * c_last * (1.0 - _REL_SLACK)) - _ABS_SLACK) * (1.0 - _REL_SLACK)
    # Rows are sorted, so the entries below the bound form a prefix of each row.
    width = int(np.min(np.sum(dist.astype(np.float64) < bound[:, None], axis=1)))
    if width == 0:
        return None
    return np.ascontiguousarray(nb[:, :width]), np.ascontiguousarray(dist[:, :width])
