"""The cutoff distance ``co`` that limits which within-H neighbours a point may link to."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_features, as_mask, check_choice

__all__ = ["CO_MODES", "apply_co_filter", "compute_co_value", "get_co_mode_description"]

CO_MODES: dict[int, str] = {
    1: "given by the caller (co_manual)",
    2: "mean of all k-NN distances (one global value)",
    3: "mode 2 scaled per point by (k + mean rho) / (k + mean neighbour rho)",
}


def get_co_mode_description(co_mode: int) -> str:
    """One line saying what ``co_mode`` means."""
    return CO_MODES.get(co_mode, "unknown mode")


def compute_co_value(
    co_mode: int,
    knn_distances: Any,
    densities: Any,
    neighbors: Any,
    k: int,
    co_manual: float | None = None,
    silent: bool = False,
) -> float | npt.NDArray[np.float64]:
    """Cutoff distance(s) for ``co_mode`` 1, 2 or 3.

    Parameters
    ----------
    co_mode : {1, 2, 3}
        See :data:`CO_MODES`.
    knn_distances : array_like
        ``(N, k)`` neighbour distances (float64).
    densities : array_like
        ``(N,)`` absolute densities (mode 3).
    neighbors : array_like
        ``(N, k)`` neighbour indices (mode 3).
    k : int
        Number of neighbours.
    co_manual : float, optional
        The value for mode 1 (required there; finite and non-negative).
    silent : bool
        Accepted for compatibility; ignored.

    Returns
    -------
    float or numpy.ndarray
        A float for modes 1 and 2, a float64 ``(N,)`` array for mode 3.

    Raises
    ------
    InvalidInputError
        Unknown mode, or mode 1 without a valid ``co_manual``.
    """
    mode = check_choice(co_mode, "co_mode", CO_MODES)
    if mode == 1:
        if co_manual is None:
            raise InvalidInputError("co_manual", "co_mode=1 needs co_manual, got None")
        try:
            value = float(co_manual)
        except (TypeError, ValueError):
            raise InvalidInputError(
                "co_manual", f"expected a non-negative number, got {co_manual!r}"
            ) from None
        if not np.isfinite(value) or value < 0:
            raise InvalidInputError(
                "co_manual", f"expected a non-negative number, got {co_manual!r}"
            )
        return value
    dist = np.asarray(knn_distances, dtype=np.float64)
    co_base = float(np.mean(dist))
    if mode == 2:
        return co_base
    rho = np.asarray(densities, dtype=np.float64)
    nb = np.asarray(neighbors)[:, :k]
    rho_mean = np.mean(rho)
    ratio = (k + rho_mean) / (k + np.mean(np.ascontiguousarray(rho[nb]), axis=1))
    result: float | npt.NDArray[np.float64] = ratio * co_base
    return result


def apply_co_filter(
    X: Any,
    high_density_indices: Any,
    co: Any,
    neighbors: Any,
    high_density_mask: Any,
    silent: bool = False,
) -> dict[int, list[int]]:
    """Each high-density point's global k-NN that are high-density and within ``co``.

    The original's helper (its pipeline computes the within-H neighbours instead, see
    :func:`ssddbc.ssddbc.clustering.high_density_neighbors`).

    Parameters
    ----------
    X : array_like
        ``(N, d)`` features.
    high_density_indices : array_like
        Indices of the points to filter.
    co : float or array_like
        Cutoff, a scalar or ``(N,)`` per point.
    neighbors : array_like
        ``(N, k)`` global neighbour indices.
    high_density_mask : array_like
        ``(N,)`` boolean.
    silent : bool
        Accepted for compatibility.

    Returns
    -------
    dict
        Point index -> neighbour indices, in the order of ``neighbors``.
    """
    x = as_features(X, "X", min_rows=1)
    n = x.shape[0]
    high = as_mask(high_density_mask, "high_density_mask", n)
    rows = np.asarray(high_density_indices, dtype=np.int64).reshape(-1)
    nb = np.asarray(neighbors, dtype=np.int64)
    if nb.ndim != 2 or nb.shape[0] != n:
        raise InvalidInputError("neighbors", f"expected shape ({n}, k), got {nb.shape}")
    co_arr = np.asarray(co, dtype=np.float64)
    out: dict[int, list[int]] = {}
    if rows.size == 0:
        return out
    near = nb[rows]
    diff = x[near].astype(np.float64) - x[rows][:, None, :].astype(np.float64)
    dist = np.sqrt(np.einsum("rkd,rkd->rk", diff, diff))
    cut = co_arr[rows][:, None] if co_arr.ndim else co_arr
    keep = high[near] & (dist <= cut)
    for r, row, ok in zip(rows.tolist(), near.tolist(), keep.tolist(), strict=True):
        out[r] = [j for j, good in zip(row, ok, strict=True) if good]
    return out
