"""Features the search's float32 cannot hold are refused with what is wrong, before any work."""

from __future__ import annotations

import numpy as np
import pytest

from ssddbc._errors import InvalidInputError
from ssddbc.compat.cluster_quality import compute_local_density_penalty
from ssddbc.grid_search._validate import validate_search_inputs


def _inputs(scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)) * scale
    y = np.repeat(np.arange(4), 10)
    known = y < 2
    return X, y, known


@pytest.mark.parametrize("scale", [1e300, 1e39, -1e300])
def test_magnitudes_beyond_float32_name_the_magnitude(scale: float) -> None:
    X, y, known = _inputs(scale)
    with pytest.raises(InvalidInputError, match=r"largest magnitude.*exceeds float32's range"):
        validate_search_inputs(X, y, known, None, None)


@pytest.mark.parametrize("scale", [1e-310, 1e-39])
def test_magnitudes_below_float32_are_not_silently_zeroed(scale: float) -> None:
    X, y, known = _inputs(scale)
    with pytest.raises(InvalidInputError, match=r"below float32's smallest normal value"):
        validate_search_inputs(X, y, known, None, None)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1.0])
def test_magnitudes_within_float32_pass(scale: float) -> None:
    X, y, known = _inputs(scale)
    out = validate_search_inputs(X, y, known, None, None)
    assert out.features.dtype == np.float32
    assert np.all(np.isfinite(out.features)) and np.any(out.features != 0)


def test_the_research_density_penalty_names_the_magnitude() -> None:
    X, y, _ = _inputs(1e300)
    with pytest.raises(InvalidInputError, match=r"largest magnitude.*exceeds float32's range"):
        compute_local_density_penalty(X, y, k=3)
