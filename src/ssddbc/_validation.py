"""Shared input checks: every public entry point validates before doing any work.

Each check raises :class:`~ssddbc._errors.InvalidInputError` naming the argument and saying
what was expected and what came. Checks return the normalised value (an ndarray of the right
dtype, a plain int) so callers use what was checked.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError, SsddbcWarning

__all__ = [
    "as_features",
    "as_mask",
    "as_pairwise",
    "as_precomputed_knn",
    "as_targets",
    "check_choice",
    "check_int",
    "check_percentile",
    "check_same_length",
    "warn_labeled_outside_known",
]


def _describe(arr: np.ndarray) -> str:
    return f"shape {arr.shape} dtype {arr.dtype}"


def as_features(X: Any, name: str = "X", *, min_rows: int = 2) -> npt.NDArray[Any]:
    """Return ``X`` as a 2-D real ndarray (not copied) after checking it is finite.

    Raises
    ------
    InvalidInputError
        Not 2-D, not real numeric, fewer than ``min_rows`` rows, no column, or NaN/inf.
    """
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2:
        raise InvalidInputError(name, f"features must be a 2-D real array, got {_describe(arr)}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise InvalidInputError(
            name, f"features need at least {min_rows} rows and 1 column, got {_describe(arr)}"
        )
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise InvalidInputError(
                name,
                f"features contain NaN or inf in row {int(bad[0])} ({bad.size} bad row(s))",
            )
    return arr


def as_mask(mask: Any, name: str, n: int | None = None) -> npt.NDArray[np.bool_]:
    """Return a 1-D boolean mask; accepts bool arrays and integer/float arrays of 0 and 1.

    Raises
    ------
    InvalidInputError
        Not 1-D, wrong length, or values other than booleans / 0 / 1.
    """
    arr = np.asarray(mask)
    if arr.ndim != 1:
        raise InvalidInputError(name, f"expected a 1-D mask, got {_describe(arr)}")
    if n is not None and arr.shape[0] != n:
        raise InvalidInputError(name, f"expected length {n}, got {arr.shape[0]}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        ok = (arr == 0) | (arr == 1)
        if ok.all():
            return arr.astype(bool)
        bad = arr[~ok][:3]
        raise InvalidInputError(
            name, f"a mask must be boolean or 0/1, got values such as {bad.tolist()!r}"
        )
    raise InvalidInputError(name, f"a mask must be boolean or 0/1, got dtype {arr.dtype}")


def as_targets(targets: Any, n: int | None = None, name: str = "targets") -> npt.NDArray[np.int64]:
    """Return integer class labels as int64 (integer-valued floats accepted).

    Raises
    ------
    InvalidInputError
        Not 1-D, wrong length, or not integer-valued.
    """
    arr = np.asarray(targets)
    if arr.ndim != 1:
        raise InvalidInputError(name, f"expected a 1-D label array, got {_describe(arr)}")
    if n is not None and arr.shape[0] != n:
        raise InvalidInputError(name, f"expected length {n}, got {arr.shape[0]}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)
    raise InvalidInputError(name, f"labels must be integers, got {_describe(arr)}")


def check_same_length(**arrays: Any) -> int:
    """Return the common length of the named arrays, else raise naming the first mismatch."""
    n: int | None = None
    first = ""
    for name, arr in arrays.items():
        length = len(arr)
        if n is None:
            n, first = length, name
        elif length != n:
            raise InvalidInputError(name, f"length {length} does not match {first} (length {n})")
    return 0 if n is None else n


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[lo, hi]`` (bounds optional)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(name, f"expected an integer, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise InvalidInputError(name, f"expected an integer in [{lo_s}, {hi_s}], got {v}")
    return v


def check_percentile(value: Any, name: str = "density_percentile") -> float:
    """Return a percentile in ``[0, 100]`` as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(name, f"expected a number in [0, 100], got {value!r}")
    v = float(value)
    if not 0.0 <= v <= 100.0:
        raise InvalidInputError(name, f"expected a number in [0, 100], got {value!r}")
    return v


def check_choice(value: Any, name: str, choices: Collection[int]) -> int:
    """Return ``value`` if it is one of the integer ``choices``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in choices:
        raise InvalidInputError(name, f"expected one of {sorted(choices)}, got {value!r}")
    return int(value)


def as_precomputed_knn(
    precomputed_knn: Any, n: int, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Validate a ``(neighbors, distances)`` pair and return its first ``k`` columns.

    The neighbours come back as int64 and the distances as float64 (densities are computed in
    float64 from whatever precision was given). Only the first ``k`` columns are read, so a
    memory-mapped graph computed at a larger ``k`` is sliced without loading the rest.

    Raises
    ------
    InvalidInputError
        Not a pair, wrong shapes, fewer than ``k`` columns, indices out of range or pointing
        at the row itself, negative or non-finite distances.
    """
    name = "precomputed_knn"
    try:
        neighbors, distances = precomputed_knn
    except (TypeError, ValueError):
        raise InvalidInputError(
            name, f"expected a (neighbors, distances) pair, got {type(precomputed_knn).__name__}"
        ) from None
    nb = np.asarray(neighbors)
    ds = np.asarray(distances)
    if nb.ndim != 2 or ds.ndim != 2 or nb.shape != ds.shape:
        raise InvalidInputError(
            name,
            f"neighbors and distances must be 2-D arrays of one shape, got "
            f"{nb.shape} and {ds.shape}",
        )
    if nb.shape[0] != n:
        raise InvalidInputError(name, f"expected {n} rows (one per sample), got {nb.shape[0]}")
    if nb.shape[1] < k:
        raise InvalidInputError(name, f"expected at least k={k} columns, got {nb.shape[1]}")
    if nb.dtype.kind not in "iu" or ds.dtype.kind not in "iuf":
        raise InvalidInputError(
            name, f"expected integer neighbors and real distances, got {nb.dtype} / {ds.dtype}"
        )
    nb_k = np.ascontiguousarray(nb[:, :k], dtype=np.int64)
    ds_k = np.ascontiguousarray(ds[:, :k], dtype=np.float64)
    if nb_k.size and (nb_k.min() < 0 or nb_k.max() >= n):
        raise InvalidInputError(name, f"neighbor indices must lie in [0, {n}), some do not")
    if (nb_k == np.arange(n)[:, None]).any():
        raise InvalidInputError(name, "a row lists itself as a neighbour; self must be excluded")
    if not np.isfinite(ds_k).all() or (ds_k < 0).any():
        raise InvalidInputError(name, "distances must be finite and non-negative")
    return nb_k, ds_k


def as_candidate_graph(
    precomputed_knn: Any, n: int, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None:
    """All columns of a validated ``precomputed_knn``, as a candidate graph, or ``None``.

    Call after :func:`as_precomputed_knn` (which checked the pair and its first ``k``
    columns). The extra columns are checked the same way. Only float32 distances qualify
    (the exact graph knncache serves, whose values are those of
    :func:`ssddbc._distances.euclidean_block`): a graph in another precision may order
    near-ties differently, so ``None`` is returned and callers use distance blocks.
    """
    neighbors, distances = precomputed_knn
    nb = np.asarray(neighbors)
    ds = np.asarray(distances)
    if ds.dtype != np.float32:
        return None
    name = "precomputed_knn"
    nb_all = np.ascontiguousarray(nb, dtype=np.int64)
    ds_all = np.ascontiguousarray(ds)
    if nb_all.shape[1] > k:
        extra_nb = nb_all[:, k:]
        extra_ds = ds_all[:, k:]
        if extra_nb.min() < 0 or extra_nb.max() >= n:
            raise InvalidInputError(name, f"neighbor indices must lie in [0, {n}), some do not")
        if (extra_nb == np.arange(n)[:, None]).any():
            raise InvalidInputError(
                name, "a row lists itself as a neighbour; self must be excluded"
            )
        if not np.isfinite(extra_ds).all() or (extra_ds < 0).any():
            raise InvalidInputError(name, "distances must be finite and non-negative")
    return nb_all, ds_all


def as_pairwise(D: Any, n: int, name: str = "pairwise_distances") -> npt.NDArray[Any]:
    """Check a precomputed ``(n, n)`` distance matrix; returned as is (a memmap stays one).

    Only the shape and dtype are checked: scanning an N x N matrix for NaN would cost as much
    as a configuration.
    """
    arr = D if isinstance(D, np.ndarray) else np.asarray(D)
    if arr.ndim != 2 or arr.shape != (n, n) or arr.dtype.kind != "f":
        raise InvalidInputError(
            name, f"expected a ({n}, {n}) float distance matrix, got {_describe(arr)}"
        )
    return arr


def warn_labeled_outside_known(
    known_mask: npt.NDArray[np.bool_],
    labeled_mask: npt.NDArray[np.bool_],
    *,
    stacklevel: int = 3,
) -> int:
    """Warn (:class:`~ssddbc._errors.SsddbcWarning`) if labelled samples are not known-class.

    The original research code accepts a ``labeled_mask`` that is not a subset of
    ``known_mask`` and uses those samples like any other labelled sample: their labels enter
    the label constraints, the category labels, the small-cluster merge and the L1 loss;
    ``known_mask`` only decides Old/New in the evaluation. This package does the same, and
    says so once per call, because such a mask is usually a mistake (a GCD split labels only
    known-class samples).

    Parameters
    ----------
    known_mask, labeled_mask : numpy.ndarray
        Validated boolean masks of one length.
    stacklevel : int
        Passed to :func:`warnings.warn` (3: the caller of the public function).

    Returns
    -------
    int
        The number of labelled samples outside the known classes (0: no warning).
    """
    outside = np.flatnonzero(labeled_mask & ~known_mask)
    if outside.size:
        warnings.warn(
            f"labeled_mask: {outside.size} labelled sample(s) are not of a known class "
            f"(first: index {int(outside[0])}); they are used as labelled samples, as the "
            "original research code used them",
            SsddbcWarning,
            stacklevel=stacklevel,
        )
    return int(outside.size)


def check_float32_range(X: npt.NDArray[Any], name: str = "features") -> None:
    """Refuse features that the search's float32 would turn into inf or all zeros.

    The searches compute in float32, as the original did: a magnitude above float32's largest
    value would become inf, one below its smallest normal value 0 (every distance equal).
    """
    if X.size == 0 or X.dtype == np.float32:
        return
    largest = float(np.max(np.abs(X)))
    limits = np.finfo(np.float32)
    if largest > float(limits.max):
        raise InvalidInputError(
            name,
            f"the largest magnitude, {largest:.3g}, exceeds float32's range "
            f"({float(limits.max):.3g}), in which the search computes: divide the features by a "
            "constant",
        )
    if 0.0 < largest < float(limits.tiny):
        raise InvalidInputError(
            name,
            f"the largest magnitude, {largest:.3g}, is below float32's smallest normal value "
            f"({float(limits.tiny):.3g}), in which the search computes: multiply the features "
            "by a constant",
        )
