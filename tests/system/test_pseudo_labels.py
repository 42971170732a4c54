"""The batch run's pseudo-labels: one file per superclass, matching the cache and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssddbc.data import load_superclass
from ssddbc.grid_search.api import run_clustering_search_on_features
from ssddbc.grid_search.pseudo_labels import FILE_NAME, read_pseudo_labels
from tests.system.conftest import SMALL_GRID, run_cli

pytestmark = pytest.mark.slow  # CLI subprocesses

_SUPERCLASSES = ("digits_low", "digits_high")


def _run(cache: Path, out: Path) -> Path:
    proc = run_cli(
        "--feature_cache_dir",
        str(cache),
        "--output_dir",
        str(out),
        *SMALL_GRID,
        "--n_jobs",
        "1",
        cwd=out.parent,
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_every_superclass_gets_its_selected_pseudo_labels(
    digits_cache: Path, tmp_path: Path
) -> None:
    run_dir = _run(digits_cache, tmp_path / "out")
    summary = json.loads((run_dir / "summary.json").read_text())
    for name in _SUPERCLASSES:
        pseudo = read_pseudo_labels(run_dir / name / FILE_NAME)
        data = load_superclass(digits_cache, name)
        expected = data.indices if data.indices is not None else np.arange(data.n)
        np.testing.assert_array_equal(pseudo.indices, expected)
        selected = summary["superclasses"][name]["selected"]
        assert pseudo.best_params == {
            "k": selected["k"],
            "density_percentile": selected["density_percentile"],
        }
        assert pseudo.metadata["superclass"] == name
        assert pseudo.metadata["selected"]["all_acc"] == pytest.approx(selected["all_acc"])
        assert len(np.unique(pseudo.clusters)) == selected["n_clusters"]
        np.testing.assert_array_equal(pseudo.labeled_mask, data.labeled_mask)
        # The API on the same arrays and grid selects the same cell and the same arrays.
        k_min, k_max, d_min, d_max, d_step = (int(v) for v in SMALL_GRID[1::2])
        api = run_clustering_search_on_features(
            data.features,
            data.targets,
            data.known_mask,
            data.labeled_mask,
            k_range=range(k_min, k_max),
            density_range=range(d_min, d_max, d_step),
            max_workers=1,
            eval_mask=data.test_mask,
        )
        assert api.pseudo_labels is not None
        assert api.best_params == pseudo.best_params
        for key in ("labels", "clusters", "core_mask", "densities", "labeled_mask"):
            np.testing.assert_array_equal(getattr(api.pseudo_labels, key), getattr(pseudo, key))


def test_resume_writes_the_missing_pseudo_labels(digits_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_dir = _run(digits_cache, out)
    path = run_dir / "digits_low" / FILE_NAME
    before = read_pseudo_labels(path)
    path.unlink()
    kept = (run_dir / "digits_high" / FILE_NAME).stat().st_mtime_ns
    resumed = run_cli("--resume", str(run_dir), "--n_jobs", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    after = read_pseudo_labels(path)
    for key in ("indices", "labels", "clusters", "core_mask", "densities", "labeled_mask"):
        np.testing.assert_array_equal(getattr(after, key), getattr(before, key))
    assert after.best_params == before.best_params
    # The superclass whose file was there and current is left alone.
    assert (run_dir / "digits_high" / FILE_NAME).stat().st_mtime_ns == kept
