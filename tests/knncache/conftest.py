"""Shared fixtures of the knncache tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def X(rng: np.random.Generator) -> np.ndarray:
    """Small float32 features with two exact duplicates (rows 0 and 1)."""
    x = rng.standard_normal((60, 5)).astype(np.float32)
    x[1] = x[0]
    return x
