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
  (a precomputed matrix must be ``pairwise_euclidean(l2_normalize(X))``).

A precomputed knncache cosine graph and the graph computed inside the function are therefore
the same arrays, and give the same partition. The result equals ``metric="euclidean"`` on
``U`` up to float rounding (neighbour order at near-ties, densities to about 1e-7
relative); it does not depend on the scale of each row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError

__all__ = ["METRICS", "check_metric", "cosine_to_euclidean", "l2_normalize"]

#: The metrics SS-DDBC accepts (``metric=`` of the algorithm, the estimators, the search).
METRICS: tuple[str, ...] = ("euclidean", "cosine")

# 1 - cos lies in [0, 2]; knncache's float32 values may exceed 2 by a rounding error.
_COSINE_MAX = 2.0 + 1e-5


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
