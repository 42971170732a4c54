"""Shared fixtures of the end-to-end tests: a small real feature cache (digits)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: A small grid: 4 k values × 3 percentiles = 12 configurations per superclass (half-open
#: bounds: k 3..6, percentiles 40, 65, 90).
SMALL_GRID = [
    "--k_min",
    "3",
    "--k_max",
    "7",
    "--density_min",
    "40",
    "--density_max",
    "91",
    "--density_step",
    "25",
]


@pytest.fixture(scope="session")
def digits_cache_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssddbc.data import build_digits_feature_cache

    root = tmp_path_factory.mktemp("digits") / "feature_cache"
    build_digits_feature_cache(root)
    return root


@pytest.fixture
def digits_cache(digits_cache_master: Path, tmp_path: Path) -> Path:
    """A private copy of the digits feature cache (tests add and delete knn caches)."""
    dst = tmp_path / "feature_cache"
    shutil.copytree(digits_cache_master, dst)
    return dst


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ssddbc.grid_search.batch_runner`` in a real process."""
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "ssddbc.grid_search.batch_runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
