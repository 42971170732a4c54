"""Keep the benchmarks from rotting: each one's ``--quick`` mode must run and print its table.

These are smoke runs on tiny problems; nothing here asserts a speed (speed is measured by
running the benchmarks themselves, see the README).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "needle"),
    [
        ("bench_search.py", "fingerprint share of one search"),
        ("bench_transfer.py", "(c) KnnRef + ref.load(k) memmap"),
        ("bench_grid_search.py", "(e) / (f) wall ="),
        ("bench_engines.py", "exact on Dask (2 workers × 1 thread)"),
        ("bench_scale.py", "| 2,000 | "),
        ("bench_selection.py", "| digits_low | 901 |"),
        ("bench_large.py", "| 6,000 | "),
    ],
)
def test_quick_mode_prints_its_table(script: str, needle: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert needle in proc.stdout
    assert list(tmp_path.iterdir()) == []  # benchmarks leave no files behind


def test_scale_profile_quick_mode_prints_its_tables(tmp_path: Path) -> None:
    """``bench_scale.py --profile --quick``: per-stage table, growth old/new, per-k table."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_scale.py"), "--profile", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for needle in ("| cand+matrix |", "growth old", "cluster_percentiles s", "load after"):
        assert needle in proc.stdout, needle
    assert list(tmp_path.iterdir()) == []
