"""The cutoff distance ``co`` that limits which within-H neighbours a point may link to."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError
from ssddbc._validation import check_choice

__all__ = ["CO_MODES", "compute_co_value", "get_co_mode_description"]

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
    silent: bool = True,
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
    return ratio * co_base
