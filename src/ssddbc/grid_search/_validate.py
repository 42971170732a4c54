"""Checks of a grid search's inputs, all made before any work starts or any file is written."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ssddbc._errors import SearchConfigError
from ssddbc._validation import (
    as_features,
    as_mask,
    as_targets,
    check_float32_range,
    warn_labeled_outside_known,
)

__all__ = ["SearchInputs", "validate_grid", "validate_search_inputs"]


@dataclass(frozen=True)
class SearchInputs:
    """Validated, normalised arrays of one search."""

    features: np.ndarray  # (N, d) float32, C-contiguous
    targets: np.ndarray  # (N,) int64
    known_mask: np.ndarray  # (N,) bool
    labeled_mask: np.ndarray  # (N,) bool
    eval_mask: np.ndarray  # (N,) bool


def validate_search_inputs(
    features: object,
    targets: object,
    known_mask: object,
    labeled_mask: object | None,
    eval_mask: object | None,
    *,
    stacklevel: int = 4,
) -> SearchInputs:
    """Normalise and check the arrays of a search; raise :class:`InvalidInputError` if bad.

    ``labeled_mask=None`` means ``known_mask`` (the original's default); ``eval_mask=None``
    means the unlabelled samples. Labelled samples outside ``known_mask`` are accepted with an
    :class:`~ssddbc.SsddbcWarning` (:func:`ssddbc._validation.warn_labeled_outside_known`).
    """
    X = as_features(features, "features")
    n = X.shape[0]
    y = as_targets(targets, n)
    known = as_mask(known_mask, "known_mask", n)
    labeled = known.copy() if labeled_mask is None else as_mask(labeled_mask, "labeled_mask", n)
    # Accepted and used as labelled samples, as the original did; said once per search, at
    # the public function's caller (``stacklevel`` frames up from the warning's call).
    warn_labeled_outside_known(known, labeled, stacklevel=stacklevel)
    evaluated = ~labeled if eval_mask is None else as_mask(eval_mask, "eval_mask", n)
    check_float32_range(X)
    # float32, as the original search used, and contiguous so it hashes and saves as is.
    X = np.ascontiguousarray(X, dtype=np.float32)
    return SearchInputs(X, y, known, labeled, evaluated)


def _int_list(name: str, values: Iterable[int]) -> list[int]:
    """The values as ints; a non-integral value (42.5) is refused, never truncated."""
    try:
        raw = list(values)
    except TypeError:
        raise SearchConfigError(name, f"expected integers, got {values!r}") from None
    out: list[int] = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise SearchConfigError(name, f"expected integers, got {v!r}")
        if isinstance(v, numbers.Integral) or (math.isfinite(float(v)) and float(v).is_integer()):
            out.append(int(v))
        else:
            raise SearchConfigError(name, f"expected integers, got {v!r} (not truncated)")
    if not out:
        raise SearchConfigError(name, "is empty: nothing to search")
    if len(set(out)) != len(out):
        raise SearchConfigError(name, f"holds duplicates: {out}")
    return out


def validate_grid(
    k_range: Iterable[int], density_range: Iterable[int], *, n_samples: int | Sequence[int]
) -> tuple[list[int], list[int]]:
    """Check the grid; every k must be in [1, N) for the smallest N searched."""
    ks = _int_list("k_range", k_range)
    dps = _int_list("density_range", density_range)
    n_min = n_samples if isinstance(n_samples, int) else min(n_samples)
    bad_k = [k for k in ks if not 1 <= k < n_min]
    if bad_k:
        raise SearchConfigError(
            "k_range", f"every k must satisfy 1 <= k < N = {n_min}, got {_some(bad_k)}"
        )
    bad_dp = [dp for dp in dps if not 0 <= dp <= 100]
    if bad_dp:
        raise SearchConfigError(
            "density_range", f"percentiles must lie in 0..100, got {_some(bad_dp)}"
        )
    return ks, dps


def _some(values: list[int]) -> str:
    """The values, or for many of them their count and range (an error stays one short line)."""
    if len(values) <= 6:
        return str(values)
    return f"{len(values)} values from {min(values)} to {max(values)}"
