"""The original research code's callers, trimmed copies of their call patterns (written here).

* ``scripts/offline_ssddbc_superclass.py`` stage 2 with ``--debug_cluster_heatmap``: the
  original ``FeatureLoader`` on a cache, ``run_clustering_search_on_features(...,
  return_all=True)``, the core mask from ``core_points``, ``create_mixed_heatmap`` for the four
  colour metrics with ``display_metric="score"`` and the ``results_grid.json`` dump;
* ``test_silent_progress.py``: the density functions with ``silent=`` by keyword, then a small
  search on random data whose labelled mask is not a subset of the known mask;
* the original batch runner's command line (``python -m ssddbc.grid_search.batch_runner``)
  with the flag set its help required, on its default grid (half-open bounds: k 3..20 x
  density 40..90 step 5 = 198 configurations), and the design document's ``--k_min 3
  --k_max 21`` example; the text report its heatmap tools read
  (``<search_dir>/<superclass>/*.txt``) is parsed with the original's block pattern.

They run on the built-in digits cache (``digits_low`` is the golden split), so the best
parameters and labels can be compared with what the original produced.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from ssddbc import SsddbcWarning
from ssddbc.data import build_digits_feature_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits_cache")
    build_digits_feature_cache(root)
    return root


def test_offline_superclass_stage_two_with_debug_heatmap(
    cache: Path, tmp_path: Path, golden: dict[str, Any], golden_search: dict[str, Any]
) -> None:
    from ssddbc.data import FeatureLoader
    from ssddbc.grid_search.api import run_clustering_search_on_features
    from ssddbc.grid_search.heatmap import create_mixed_heatmap

    # _load_cached_features
    loader = FeatureLoader(cache_base_dir=str(cache))
    feature_dict = loader.load("digits_low", use_l2=True, silent=True)
    assert feature_dict is not None, loader.get_cache_path("digits_low", use_l2=True)
    features = feature_dict["all_features"]
    indices = feature_dict.get("all_indices")
    assert indices is not None and indices.shape == (features.shape[0],)

    # run_offline_clustering with the script's default grid (--k_min 3 --k_max 21
    # --density_min 40 --density_max 100 --density_step 5, half-open ranges)
    k_range = range(3, 21)
    density_range = range(40, 100, 5)
    result = run_clustering_search_on_features(
        features=features,
        targets=feature_dict["all_targets"],
        known_mask=feature_dict["all_known_mask"],
        labeled_mask=feature_dict["all_labeled_mask"],
        k_range=k_range,
        density_range=density_range,
        random_state=0,
        silent=True,
        max_workers=1,
        return_all=True,
    )
    assert result.best_params == golden_search["best_params"]
    assert result.loss == pytest.approx(golden_search["score"], abs=1e-6)
    k, dp = result.best_params["k"], result.best_params["density_percentile"]
    # digits_low is the golden split: the original's partition at its selection
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    original = adaptive_density_clustering(
        golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"], k, dp
    )
    assert adjusted_rand_score(result.labels, original[0]) == 1.0
    core_mask = np.zeros_like(indices, dtype=bool)
    if len(result.core_points) > 0:
        core_mask[result.core_points] = True
    assert 0 < core_mask.sum() < core_mask.size
    assert result.densities is not None and result.densities.shape == indices.shape
    assert result.n_clusters == len(np.unique(result.labels))
    filename = f"digits_low_ckpt_k{k}_dp{dp}.npz"
    assert filename == "digits_low_ckpt_k12_dp40.npz"

    # --debug_cluster_heatmap
    grid = result.results_grid
    assert grid is not None and len(grid) == len(k_range) * len(density_range)
    heatmap_dir = tmp_path / "debug" / "epoch_unknown"
    heatmap_dir.mkdir(parents=True)
    best = {}
    for color_metric in ["all_acc", "old_acc", "new_acc", "n_clusters"]:
        best[color_metric] = create_mixed_heatmap(
            results_dict=grid,
            color_metric=color_metric,
            display_metric="score",
            superclass_name="digits_low",
            output_dir=str(heatmap_dir),
            save_plots=True,
        )
    grid_path = heatmap_dir / "results_grid.json"
    with open(grid_path, "w", encoding="utf-8") as f:
        json.dump(
            {f"k{k}_dp{dp}": metrics for (k, dp), metrics in sorted(grid.items())},
            f,
            ensure_ascii=False,
            indent=2,
        )
    pngs = sorted(p.name for p in (heatmap_dir / "digits_low").iterdir())
    assert len(pngs) == 4
    pattern = r"score_colored_by_(all_acc|old_acc|new_acc|n_clusters)_\d+_\d+_\d+_\d+\.png"
    assert all(re.fullmatch(pattern, name) for name in pngs)
    assert all((heatmap_dir / "digits_low" / n).read_bytes()[:4] == b"\x89PNG" for n in pngs)
    dumped = json.loads(grid_path.read_text())
    assert dumped["k12_dp40"]["score"] == pytest.approx(golden_search["score"], abs=1e-6)
    # the returned best cell is the argmax of the colour metric
    bk, bdp, bval = best["all_acc"]
    assert bval == max(m["all_acc"] for m in grid.values())
    assert grid[(bk, bdp)]["all_acc"] == bval


def test_silent_progress_density_part() -> None:
    from ssddbc.density.density_estimation import (
        compute_median_density,
        compute_relative_density,
        identify_high_density_points,
    )

    rng = np.random.RandomState(42)
    X = rng.randn(100, 10).astype(np.float32)
    results = []
    for silent in (False, True):
        densities, _, neighbors = compute_median_density(X, k=5, silent=silent)
        relative = compute_relative_density(densities, neighbors, k=5, silent=silent)
        high = identify_high_density_points(
            relative, percentile=75, use_relative=True, silent=silent
        )
        results.append((densities, high))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][1].sum() == 25


def _silent_progress_data() -> tuple[np.ndarray, ...]:
    rng = np.random.RandomState(42)
    rng.randn(100, 10)  # the script's first draw
    n = 200
    X = rng.randn(n, 64).astype(np.float32)
    targets = rng.randint(0, 5, n)
    known_mask = np.array([i < 3 for i in targets])
    labeled_mask = rng.rand(n) < 0.5  # not a subset of known_mask, as in the script
    return X, targets, known_mask, labeled_mask


def test_silent_progress_labelled_outside_known_in_the_algorithm() -> None:
    """The algorithm layer accepts the script's masks with a warning."""
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, targets, known_mask, labeled_mask = _silent_progress_data()
    assert (labeled_mask & ~known_mask).any()
    with pytest.warns(SsddbcWarning, match="not of a known class"):
        out = adaptive_density_clustering(X, targets, known_mask, labeled_mask, 5, 50)
    assert out[0].shape == (200,) and out[1] >= 1


def test_silent_progress_search_part() -> None:
    from ssddbc.grid_search.api import run_clustering_search_on_features

    X, targets, known_mask, labeled_mask = _silent_progress_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_clustering_search_on_features(
            features=X,
            targets=targets,
            known_mask=known_mask,
            labeled_mask=labeled_mask,
            k_range=range(3, 7),
            density_range=range(50, 80, 10),
            random_state=42,
            silent=False,
            max_workers=1,
        )
    assert any(issubclass(w.category, SsddbcWarning) for w in caught)
    assert set(result.best_params) == {"k", "density_percentile"}
    assert isinstance(result.loss, float) and result.n_clusters >= 1
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        quiet = run_clustering_search_on_features(
            features=X,
            targets=targets,
            known_mask=known_mask,
            labeled_mask=labeled_mask,
            k_range=range(3, 5),
            density_range=range(50, 70, 10),
            random_state=42,
            silent=True,
            max_workers=1,
        )
    assert quiet.best_params["k"] in (3, 4)


# ---- the original batch runner's command line ------------------------------------------

#: The original's ``load_existing_results`` block pattern (how its tools read a report).
_ORIGINAL_BLOCK = (
    r"k=(\d+), density_percentile=(\d+)\n-+\n.*?all_acc: (\d+\.?\d*)\nold_acc: "
    r"(\d+\.?\d*)\nnew_acc: (\d+\.?\d*)\nclusters: (\d+)"
)

#: The flags the original runner's help said are required, at their only values.
_ORIGINAL_FLAGS = [
    "--use_cluster_quality",
    "--cluster_distance_method",
    "3",
    "--l2_components",
    "separation silhouette",
    "--dense_method",
    "1",
    "--co_mode",
    "2",
    "--assign_model",
    "3",
]


def _batch_runner(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ssddbc.grid_search.batch_runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _only_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def _csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_original_batch_runner_command_default_grid(
    cache: Path, tmp_path: Path, golden_search: dict[str, Any]
) -> None:
    """The original's command (no grid flags): 198 configurations, the original's scores."""
    out = tmp_path / "search"
    model = tmp_path / "ckpt.pt"  # never read: the feature cache exists
    proc = _batch_runner(
        "--model_path",
        str(model),
        "--feature_cache_dir",
        str(cache),
        "--output_dir",
        str(out),
        "--superclasses",
        "digits_low",
        *_ORIGINAL_FLAGS,
        "--max_workers",
        "2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "k 3..20 (18) × density 40..90 step 5 (11) = 198 configurations" in proc.stdout
    assert f"--model_path {model} is not used" in proc.stderr
    run = _only_run(out)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["k_values"] == list(range(3, 21))
    assert config["density_values"] == list(range(40, 95, 5))
    rows = _csv_rows(run)
    assert len(rows) == 198 and all(r["status"] == "ok" for r in rows)
    assert {(int(r["k"]), int(r["density_percentile"])) for r in rows} == {
        (k, dp) for k in range(3, 21) for dp in range(40, 95, 5)
    }
    # Every cell scores as the original's (its 216-cell grid holds these 198).
    for r in rows:
        ref = golden_search["grid"][f"k{r['k']}_dp{r['density_percentile']}"]
        assert float(r["score"]) == pytest.approx(ref["score"], abs=1e-6), r
        assert int(r["n_clusters"]) == ref["n_clusters"], r
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    selected = summary["superclasses"]["digits_low"]["selected"]
    assert {"k": selected["k"], "density_percentile": selected["density_percentile"]} == (
        golden_search["best_params"]
    )
    # The original's report, where its tools look for it, readable with its pattern.
    (report,) = (run / "digits_low").glob("*.txt")
    text = report.read_text(encoding="utf-8")
    blocks = re.findall(_ORIGINAL_BLOCK, text, re.DOTALL)
    assert len(blocks) == 198
    by_cell = {(r["k"], r["density_percentile"]): r for r in rows}
    for k, dp, all_acc, old_acc, new_acc, clusters in blocks:
        r = by_cell[(k, dp)]
        for got, name in ((all_acc, "all_acc"), (old_acc, "old_acc"), (new_acc, "new_acc")):
            assert float(got) == pytest.approx(float(r[name]), abs=5e-5), (name, r)
        assert int(clusters) == int(r["n_clusters"])
    oracle = summary["superclasses"]["digits_low"]["oracle_best_by_test_accuracy"]
    assert f"Best params: k={oracle['k']}, density_percentile={oracle['density_percentile']}" in (
        text
    )
    assert "Selected params (label-only score, no ground truth): k=12, density_percentile=40" in (
        text
    )


def test_design_document_example_k_min_3_k_max_21(cache: Path, tmp_path: Path) -> None:
    """``--k_min 3 --k_max 21`` searches k 3..20, as the original's half-open range."""
    from ssddbc.grid_search.batch_runner import run_batch

    out = tmp_path / "search"
    code = run_batch(
        [
            "--feature_cache_dir",
            str(cache),
            "--superclasses",
            "digits_low",
            "--output_dir",
            str(out),
            "--k_min",
            "3",
            "--k_max",
            "21",
            "--density_min",
            "40",
            "--density_max",
            "50",
            "--no_parallel",
            "--quiet",
        ]
    )
    assert code == 0
    run = _only_run(out)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["k_values"] == list(range(3, 21))
    assert config["density_values"] == [40, 45]
    rows = _csv_rows(run)
    assert sorted({int(r["k"]) for r in rows}) == list(range(3, 21))
    assert len(rows) == 36
