"""``ssddbc-search`` says when its choice is suspect, reports baselines beside it, keeps its
errors to one line and shows an interrupted run truthfully. Real processes on the digits
cache."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.conftest import run_cli

pytestmark = pytest.mark.slow

#: k 6..8 × percentiles 40, 65, 90: on digits_high the selection lands on k=6, the lower edge.
EDGE_GRID = ["--k_min", "6", "--k_max", "9", "--density_min", "40", "--density_max", "91"]
EDGE_GRID += ["--density_step", "25"]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _run_dir(proc: subprocess.CompletedProcess[str]) -> Path:
    lines = [x for x in proc.stdout.splitlines() if x.startswith("run folder: ")]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return Path(lines[0].removeprefix("run folder: "))


def _search(cache: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return run_cli(
        "--feature_cache_dir", str(cache), "--output_dir", str(out), "--n_jobs", "1", *extra,
        cwd=out,
    )  # fmt: skip


def test_an_edge_of_grid_run_warns_and_reports_the_baselines(
    digits_cache: Path, tmp_path: Path
) -> None:
    proc = _search(digits_cache, tmp_path / "out", "--superclasses", "digits_high", *EDGE_GRID)
    assert proc.returncode == 0, proc.stderr
    entry = _json(_run_dir(proc) / "summary.json")["superclasses"]["digits_high"]
    assert entry["selected"]["k"] == 6
    edge = [w for w in entry["warnings"] if w["kind"] == "edge" and w["axis"] == "k"]
    assert edge == [
        {
            "kind": "edge",
            "axis": "k",
            "edge": "lower",
            "value": 6,
            "flag": "--k_min",
            "message": "k=6 is the grid's lower edge: extend --k_min below 6",
        }
    ]
    assert "  warning: k=6 is the grid's lower edge: extend --k_min below 6" in proc.stdout
    assert (
        "ssddbc-search: suspect selection for digits_high: k=6 is the grid's lower edge: "
        "extend --k_min below 6" in proc.stderr.splitlines()
    )
    # The baselines, with the true number of classes, on the run's split, timed.
    assert entry["n_classes"] == 5
    for name in ("k-means", "SS-k-means"):
        b = entry["baselines"][name]
        assert 0.5 < b["all_acc"] <= 1 and b["n_clusters"] == 5 and b["seconds"] > 0
        row = next(x for x in proc.stdout.splitlines() if x.startswith(f"  {name} "))
        assert f"{b['all_acc']:6.4f}" in row and f"{b['seconds']:.1f}s" in row


def test_no_baselines_skips_them(digits_cache: Path, tmp_path: Path) -> None:
    proc = _search(
        digits_cache, tmp_path / "out", "--superclasses", "digits_high", *EDGE_GRID,
        "--no_baselines", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_dir = _run_dir(proc)
    entry = _json(run_dir / "summary.json")["superclasses"]["digits_high"]
    assert "baselines" not in entry and "k-means" not in proc.stdout
    assert entry["warnings"]  # the warnings stay, in the table; --quiet keeps stderr empty
    assert "  warning: k=6 is the grid's lower edge" in proc.stdout and proc.stderr == ""
    assert "baselines" not in _json(run_dir / "config.json")  # not part of the run


def test_show_of_an_interrupted_run_lists_existing_files_and_progress(
    digits_cache: Path, tmp_path: Path
) -> None:
    proc = _search(digits_cache, tmp_path / "out", *EDGE_GRID, "--quiet")
    assert proc.returncode == 0, proc.stderr
    finished = _run_dir(proc)
    cut = tmp_path / "cut"
    shutil.copytree(finished, cut)
    # What an interruption after 9 + 4 configurations leaves: config.json, knn.json and a
    # journal of 13 rows, no summary, no heatmaps, no reports.
    journal = cut / "results.csv"
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    journal.write_text("".join(lines[:14]), encoding="utf-8")
    for path in [cut / "summary.json", *cut.glob("heatmap_*")]:
        path.unlink()
    for name in ("digits_high", "digits_low"):
        shutil.rmtree(cut / name)
    shown = run_cli("--show", str(cut), cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr
    out = shown.stdout
    assert "summary.json" not in out and "heatmap" not in out and "pseudo" not in out
    assert f"results: {cut / 'results.csv'}" in out
    assert "  digits_high  9/9 configurations (done)" in out
    assert "  digits_low   4/9 configurations (PARTLY DONE)" in out
    assert "interrupted: 5 of 18 configurations missing (13 done)" in out
    # A superclass that finished writes its heatmap and pseudo-labels: listed once present.
    shutil.copy(finished / "heatmap_digits_high.png", cut)
    (cut / "digits_high").mkdir()
    (cut / "digits_high" / "pseudo_labels.npz").write_bytes(b"stand-in")
    again = run_cli("--show", str(cut), cwd=tmp_path).stdout
    assert f"heatmaps: {cut}/heatmap_*.png" in again
    assert f"pseudo-labels: {cut}/<superclass>/pseudo_labels.npz (1)" in again


def test_grid_errors_are_one_short_line_naming_the_superclass_or_flag(
    digits_cache: Path, tmp_path: Path
) -> None:
    base = ["--feature_cache_dir", str(digits_cache), "--output_dir", str(tmp_path / "out")]
    cases = {
        ("--k_max", "100000"): ("'digits_high'", "--k_max <= 896"),
        ("--k_min", "0"): ("--k_min 0", "--k_min >= 1"),
        ("--density_max", "200"): ("--density_max 200", "--density_max <= 101"),
        ("--density_min", "-5"): ("--density_min -5", "0 <= --density_min <= 100"),
        ("--density_min", "150", "--density_max", "200"): ("--density_min 150", "0..100"),
    }
    for flags, words in cases.items():
        proc = run_cli(*base, "--superclasses", "digits_high,digits_low", *flags, cwd=tmp_path)
        err = proc.stderr.splitlines()
        assert proc.returncode == 2 and len(err) == 1, (flags, proc.stderr)
        assert len(err[0]) < 200 and all(w in err[0] for w in words), (flags, err)
    assert not (tmp_path / "out").exists()


def test_the_api_result_carries_the_same_warnings() -> None:
    from ssddbc.data import make_synthetic_superclass
    from ssddbc.grid_search._diagnose import selection_warnings
    from ssddbc.grid_search.api import run_clustering_search_on_features

    data = make_synthetic_superclass(n=400, d=16)
    result = run_clustering_search_on_features(
        data.features,
        data.targets,
        data.known_mask,
        data.labeled_mask,
        k_range=range(3, 6),
        density_range=range(40, 60, 10),
        max_workers=1,
    )
    expected = selection_warnings(
        [3, 4, 5],
        [40, 50],
        {**result.best_params, "n_clusters": result.n_clusters},
        len(set(data.targets.tolist())),
    )
    assert result.warnings == expected
    if result.best_params["k"] == 3:
        assert any(w["kind"] == "edge" and w["axis"] == "k" for w in result.warnings)
