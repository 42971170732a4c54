"""``ssddbc.grid_search.heatmap``: the original's mixed heatmap on this project's grids."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ssddbc import InvalidInputError
from ssddbc.data import build_digits_feature_cache
from ssddbc.grid_search.heatmap import create_mixed_heatmap, load_existing_results


def _grid() -> dict[tuple[int, int], dict[str, Any]]:
    grid: dict[tuple[int, int], dict[str, Any]] = {}
    for k in (3, 4, 5):
        for dp in (40, 50):
            grid[(k, dp)] = {
                "score": k / 10 + dp / 1000,
                "all_acc": 0.9 - abs(k - 4) / 10 - abs(dp - 50) / 1000,
                "n_clusters": k + 2,
            }
    grid[(5, 50)]["all_acc"] = float("nan")  # a metric missing from one cell
    return grid


def test_writes_the_original_file_and_returns_the_best_colour_cell(tmp_path: Path) -> None:
    best = create_mixed_heatmap(_grid(), "all_acc", "score", "trees", tmp_path, True)
    assert best == (4, 50, pytest.approx(0.9))
    files = list((tmp_path / "trees").iterdir())
    assert len(files) == 1
    assert re.fullmatch(r"score_colored_by_all_acc_\d+_\d+_\d+_\d+\.png", files[0].name)
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "trees").iterdir() if p.name.startswith(".")]


def test_without_saving_nothing_is_written(tmp_path: Path, capsys: Any) -> None:
    k, dp, value = create_mixed_heatmap(
        _grid(),
        color_metric="n_clusters",
        display_metric="score",
        output_dir=tmp_path,
        save_plots=False,
    )
    assert (k, value) == (5, 7.0) and dp == 40  # first in (dp, k) order on a tie
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr().out
    assert "#1 by score: k=5, density_percentile=50" in out  # top 3 by the display metric


@pytest.mark.parametrize(
    ("grid", "metric", "argument"),
    [
        ({}, "all_acc", "results_dict"),
        ({("a", 1): {"all_acc": 1.0}}, "all_acc", "results_dict"),
        ({(3, 40): {"score": 1.0}}, "all_acc", "color_metric"),
    ],
)
def test_bad_grids(tmp_path: Path, grid: Any, metric: str, argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        create_mixed_heatmap(grid, metric, "score", "x", tmp_path)
    assert info.value.argument == argument
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


@pytest.mark.slow
def test_reads_a_batch_run_back(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    build_digits_feature_cache(cache)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(cache),
            "--superclasses",
            "digits_low",
            "--k_min",
            "10",
            "--k_max",
            "13",
            "--density_min",
            "40",
            "--density_max",
            "55",
            "--output_dir",
            str(runs),
            "--no_parallel",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = list(runs.iterdir())
    with open(run / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    assert rows
    for where in (runs, run):
        grid = load_existing_results("digits_low", where)
        assert grid is not None
        assert set(grid) == {(int(r["k"]), int(r["density_percentile"])) for r in rows}
        for r in rows:
            cell = grid[(int(r["k"]), int(r["density_percentile"]))]
            assert cell["score"] == float(r["score"])
            assert cell["n_clusters"] == int(r["n_clusters"])
    assert load_existing_results("digits_high", runs) is None
    assert load_existing_results("digits_low", tmp_path / "nowhere") is None
    best = create_mixed_heatmap(grid, "all_acc", "score", "digits_low", tmp_path / "hm")
    assert not math.isnan(best[2])
