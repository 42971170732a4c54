"""Shared fixtures of the SS-DDBC algorithm tests: the golden digits split and its graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.golden import GOLDEN_DIR


def _golden_dir() -> Path:
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """The golden digits split and what the original returned on it."""
    with np.load(_golden_dir() / "original_lowdigits.npz") as z:
        return {key: z[key] for key in z.files}


@pytest.fixture(scope="session")
def golden_search() -> dict[str, Any]:
    """The original's 216-configuration search on the golden split."""
    with open(_golden_dir() / "original_lowdigits_search.json") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="session")
def golden_graph(golden: dict[str, Any]) -> Any:
    """knncache graph of the golden features at k=20 (sliced by each configuration)."""
    from knncache import compute_knn

    return compute_knn(golden["features"], 20)


@pytest.fixture(scope="session")
def golden_pairwise(golden: dict[str, Any]) -> np.ndarray:
    """Pairwise distance matrix of the golden features."""
    from ssddbc._distances import pairwise_euclidean

    return pairwise_euclidean(golden["features"])
