"""An approximate neighbour graph in ssddbc: only when asked, and every output says so.

``run_clustering_search_on_features(knn_method=...)`` and ``ssddbc-search --knn_method``:
the default stays exact, an approximate graph is its own store entry (pinned by the key the
store uses), and the method, its parameters and the measured recall reach the API result,
``config.json``, the run identity (a resume with another method is refused), ``summary.json``
and the printed summary.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import ENGINE_DEFAULTS, PersistentStore, entry_key, fingerprint
from ssddbc import SearchConfigError
from ssddbc.grid_search import _tasks
from ssddbc.grid_search._inputs import APPROXIMATE_NOTE, prepare_inputs
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.grid_search._tasks import ConfigTask, evaluate_config
from ssddbc.grid_search.api import run_clustering_search_on_features
from tests.golden import GOLDEN_DIR
from tests.system.conftest import SMALL_GRID, run_cli

pytestmark = pytest.mark.slow  # searches, worker pools, CLI subprocesses
GRID = {"k_range": range(4, 8), "density_range": range(40, 100, 25), "max_workers": 1}


@pytest.fixture(scope="module")
def golden() -> tuple[np.ndarray, ...]:
    with np.load(GOLDEN_DIR / "original_lowdigits.npz", allow_pickle=False) as z:
        return z["features"], z["targets"], z["known_mask"], z["labeled_mask"]


def test_api_says_which_graph_it_used(golden: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    store = PersistentStore(tmp_path / "store")
    exact = run_clustering_search_on_features(*golden, store=store, **GRID)
    assert (exact.knn_method, exact.knn_params, exact.knn_recall) == ("exact", {}, 1.0)
    hnsw = run_clustering_search_on_features(*golden, store=store, knn_method="hnsw", **GRID)
    assert hnsw.knn_method == "hnsw"
    assert hnsw.knn_params == {k: v for k, v in ENGINE_DEFAULTS["hnsw"].items() if k != "threads"}
    assert 0.0 < hnsw.knn_recall <= 1.0
    assert hnsw.knn_searches == 1  # its own entry: the exact graph is not reused for it
    # Two entries, keyed as knncache keys them (the key the search pinned).
    by_method = {e.method: e for e in store.entries()}
    assert set(by_method) == {"exact", "hnsw"}
    assert by_method["exact"].fingerprint == fingerprint(golden[0])
    assert by_method["hnsw"].fingerprint == entry_key(golden[0], method="hnsw")
    assert by_method["hnsw"].recall is not None
    assert by_method["hnsw"].recall["value"] == hnsw.knn_recall


def test_a_poor_graph_on_the_candidate_route_still_runs(golden: tuple[np.ndarray, ...]) -> None:
    # The candidate route reads the graph's extra columns as candidates; with an
    # approximate graph that is no longer exact, but every configuration must still run.
    plan = SearchPlan(pairwise_max_n=500, candidate_width=16)
    poor = {"M": 2, "efConstruction": 2, "efSearch": 1}
    res = run_clustering_search_on_features(
        *golden, plan=plan, knn_method="hnsw", knn_params=poor, return_all=True, **GRID
    )
    assert res.errors == {}
    assert res.results_grid is not None and len(res.results_grid) == 12
    assert res.knn_params == poor and 0.0 < res.knn_recall < 0.99  # genuinely approximate
    assert res.labels.shape == golden[1].shape
    assert res.n_clusters == len(np.unique(res.labels))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"knn_method": "annoy"}, "knn_method"),
        ({"knn_method": None}, "knn_method"),
        ({"knn_method": "hnsw", "knn_params": {"M": 0}}, "knn_params.*M"),
        ({"knn_method": "hnsw", "knn_params": {"nprobe": 4}}, "knn_params.*nprobe"),
        ({"knn_method": "hnsw", "knn_params": [("M", 4)]}, "knn_params"),
        ({"knn_method": "exact", "knn_params": {"M": 4}}, "knn_params"),
        ({"knn_method": "ivf", "knn_params": {"nlist": 5000}}, "knn_params.*nlist"),
    ],
)
def test_bad_knn_arguments_fail_before_any_work(
    golden: tuple[np.ndarray, ...], tmp_path: Path, kwargs: dict[str, Any], needle: str
) -> None:
    store = PersistentStore(tmp_path / "store")
    with pytest.raises(SearchConfigError, match=needle):
        run_clustering_search_on_features(*golden, store=store, **kwargs, **GRID)
    assert store.entries() == [] and store.stats["searches"] == 0


def test_a_vanished_approximate_entry_is_rebuilt_by_its_engine(tmp_path: Path) -> None:
    from ssddbc.data import build_digits_feature_cache, load_superclass
    from ssddbc.evaluation import evaluation_mask

    build_digits_feature_cache(tmp_path / "fc")
    d = load_superclass(tmp_path / "fc", "digits_low")
    store = PersistentStore(tmp_path / "store")
    mask = evaluation_mask(d.n, train_size=d.train_size, mode="test")
    shared = prepare_inputs(
        store,
        d.features,
        d.targets,
        d.known_mask,
        d.labeled_mask,
        mask,
        k_max=6,
        knn_method="ivf",
        knn_params={"nprobe": 2},
    )
    assert shared.graph.method == "ivf" and dict(shared.graph.params)["nprobe"] == 2
    task = ConfigTask(
        shared=shared, k=5, density_percentile=65, group="digits_low", feature_source=str(d.source)
    )
    before = evaluate_config(task)
    assert before.ok and not before.knn_fallback
    store.clear()
    _tasks.clear_resources()
    with pytest.warns(Warning, match="vanished"):
        after = evaluate_config(task)
    # Recomputed with ivf (nprobe=2), not the exact search: the very same rows.
    assert after.ok and after.knn_fallback, after.error
    assert after.metrics() == before.metrics()
    _tasks.clear_resources()


# ---- ssddbc-search ----------------------------------------------------------------------


def _one_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_cli_hnsw_run_says_so_and_refuses_a_resume_with_another_method(
    digits_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    base = ["--feature_cache_dir", str(digits_cache), "--superclasses", "digits_low"]
    proc = run_cli(
        *base,
        "--output_dir",
        str(out),
        *SMALL_GRID,
        "--n_jobs",
        "1",
        "--knn_method",
        "hnsw",
        "--knn_params",
        "efSearch=64",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run = _one_run(out)
    knn = json.loads((run / "summary.json").read_text())["superclasses"]["digits_low"]["knn"]
    assert knn["method"] == "hnsw"
    keyed = {k: v for k, v in ENGINE_DEFAULTS["hnsw"].items() if k != "threads"}  # not keyed
    assert knn["params"] == {**keyed, "efSearch": 64}
    assert 0.0 < knn["recall"]["value"] <= 1.0 and knn["recall"]["sample"] >= 1
    assert knn["note"] == APPROXIMATE_NOTE and knn["entry"] != knn["fingerprint"]
    line = next(x for x in proc.stdout.splitlines() if "neighbour graph:" in x)
    assert "hnsw (M=32, efConstruction=80, efSearch=64), recall@" in line
    assert f"on {knn['recall']['sample']} sampled queries" in line
    assert "approximate: partitions may differ from the exact search" in line
    config = json.loads((run / "config.json").read_text())
    assert config["knn"] == {"method": "hnsw", "params": {"efSearch": 64}}
    assert config["identity"]["knn"] == config["knn"]

    # The method is part of the run: not on a resume's command line, not edited in.
    again = run_cli("--resume", str(run), "--knn_method", "exact", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "--knn_method" in again.stderr
    config["knn"] = {"method": "exact", "params": {}}
    (run / "config.json").write_text(json.dumps(config))
    edited = run_cli("--resume", str(run), cwd=tmp_path)
    assert edited.returncode == 2
    assert edited.stderr.count("\n") == 1 and "neighbour-graph method" in edited.stderr

    # The default is exact, and an exact run prints no approximate line.
    exact = run_cli(
        *base, "--output_dir", str(tmp_path / "exact"), *SMALL_GRID, "--n_jobs", "1", cwd=tmp_path
    )
    assert exact.returncode == 0, exact.stderr
    summary = json.loads((_one_run(tmp_path / "exact") / "summary.json").read_text())
    block = summary["superclasses"]["digits_low"]["knn"]
    assert block["method"] == "exact" and "recall" not in block
    assert block["entry"] == block["fingerprint"]
    assert "neighbour graph:" not in exact.stdout


@pytest.mark.parametrize(
    "flags",
    [
        ["--knn_method", "annoy"],
        ["--knn_method", "hnsw", "--knn_params", "M=0"],
        ["--knn_method", "hnsw", "--knn_params", "M"],
        ["--knn_method", "hnsw", "--knn_params", "M=4,M=5"],
        ["--knn_method", "hnsw", "--knn_params", "nprobe=4"],
        ["--knn_method", "ivf", "--knn_params", "nprobe=many"],
        ["--knn_params", "M=4"],
    ],
)
def test_cli_bad_knn_flags_exit_2_before_any_work(tmp_path: Path, flags: list[str]) -> None:
    # With --demo the demo cache would be built: nothing may be created.
    proc = run_cli("--demo", *flags, "--output_dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.count("\n") == 1 and "knn_" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_nlist_above_n_exits_2_before_any_run_folder(
    digits_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    proc: subprocess.CompletedProcess[str] = run_cli(
        "--feature_cache_dir",
        str(digits_cache),
        "--output_dir",
        str(out),
        *SMALL_GRID,
        "--knn_method",
        "ivf",
        "--knn_params",
        "nlist=5000",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nlist" in proc.stderr
    assert not out.exists()
    assert not any(
        (digits_cache / name / "knn_cache").exists() for name in ("digits_low", "digits_high")
    )
