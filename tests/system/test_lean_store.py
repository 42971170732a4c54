"""A persistent store keeps the graph and the features; per-run arrays live only for the run."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import numpy as np
import pytest

from knncache import EphemeralStore, PersistentStore, StoreClosedError
from ssddbc.grid_search._inputs import pairwise_array, pairwise_matrix, prepare_inputs
from ssddbc.grid_search._plan import SearchPlan
from tests.system.conftest import SMALL_GRID, run_cli

# Names a graph-and-features entry holds (k is the plan's width for these 60 points), beside
# the split array (32 bytes a point).
_KEPT = {"meta.json", "features.npy", "k59_neighbors.npy", "k59_distances.npy"}


def _kept(split: str) -> set[str]:
    return _KEPT | {f"array_{split}.npy", f"array_{split}.json"}


def _data(n: int = 60, d: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = np.arange(n) % 3
    known = y < 2
    labeled = known & (np.arange(n) % 2 == 0)
    return X, y, known, labeled, ~labeled


def _entry_files(root: Path) -> dict[str, set[str]]:
    return {p.name: {q.name for q in p.iterdir()} for p in root.iterdir() if p.is_dir()}


def _run_dirs(where: Path) -> list[Path]:
    return [p for p in where.iterdir() if p.name.startswith("knn_run_")]


def test_a_scoped_run_keeps_only_the_graph_and_features(tmp_path: Path) -> None:
    store = PersistentStore(tmp_path / "store")
    X, *split = _data()
    with contextlib.ExitStack() as scope:
        shared = prepare_inputs(store, X, *split, k_max=5, pin_into=scope)
        assert shared.has_pairwise and shared.arrays is not None
        kept = {shared.ref.fingerprint: _kept(shared.split_array)}
        assert _entry_files(tmp_path / "store") == kept
        run_dir = shared.arrays.path.parent
        assert run_dir.parent == tmp_path  # beside the store: workers that see it see this
        np.testing.assert_array_equal(
            shared.array(pairwise_array("euclidean")), pairwise_matrix(X, "euclidean")
        )
        assert shared.array(shared.split_array).shape == (4, len(X))
    assert not run_dir.exists() and not _run_dirs(tmp_path)
    with pytest.raises(StoreClosedError):
        shared.array(pairwise_array("euclidean"))
    assert _entry_files(tmp_path / "store") == kept


def test_the_run_store_goes_on_every_exit_path(tmp_path: Path) -> None:
    store = PersistentStore(tmp_path / "store")
    X, *split = _data()
    with pytest.raises(KeyboardInterrupt), contextlib.ExitStack() as scope:
        shared = prepare_inputs(store, X, *split, k_max=5, pin_into=scope)
        assert shared.arrays is not None and shared.arrays.path.is_dir()
        raise KeyboardInterrupt
    assert not _run_dirs(tmp_path)


def test_the_sampled_route_puts_its_columns_in_the_run_store(tmp_path: Path) -> None:
    store = PersistentStore(tmp_path / "store")
    X, *split = _data()
    plan = SearchPlan(pairwise_max_n=10, exact_silhouette_max_n=10, silhouette_sample_size=8)
    with contextlib.ExitStack() as scope:
        shared = prepare_inputs(store, X, *split, k_max=5, plan=plan, pin_into=scope)
        assert shared.silhouette_sample == 8 and not shared.has_pairwise
        assert shared.array(shared.silhouette_columns_array).shape == (len(X), 8)
        kept = {shared.ref.fingerprint: _kept(shared.split_array)}
        assert _entry_files(tmp_path / "store") == kept


def test_a_run_store_that_cannot_be_written_gives_the_same_arrays_in_memory(
    tmp_path: Path,
) -> None:
    import resource

    from ssddbc.grid_search._tasks import ConfigTask, evaluate_config

    store = PersistentStore(tmp_path / "store")
    X, *split = _data(n=200)
    with contextlib.ExitStack() as scope:  # warm: the graph, the features and the split
        mapped = prepare_inputs(store, X, *split, k_max=5, pin_into=scope)
        expected = [evaluate_config(ConfigTask(mapped, k, 50)) for k in (3, 5)]
    # Files of at most 64 KiB (the 200 x 200 matrix is 160 KB): the run store cannot be
    # written; Python ignores SIGXFSZ, so the write fails with EFBIG.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    lines: list[str] = []
    with contextlib.ExitStack() as scope:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
        try:
            shared = prepare_inputs(store, X, *split, k_max=5, pin_into=scope, report=lines.append)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert shared.in_memory and shared.arrays is None
        assert any("computed in each worker" in line for line in lines)
        assert not _run_dirs(tmp_path)
        np.testing.assert_array_equal(
            shared.array(pairwise_array("euclidean")), pairwise_matrix(X, "euclidean")
        )
        got = [evaluate_config(ConfigTask(shared, k, 50)) for k in (3, 5)]
    assert [(r.score, r.all_acc, r.n_clusters) for r in got] == [
        (r.score, r.all_acc, r.n_clusters) for r in expected
    ]


def test_a_store_that_lives_only_for_the_run_holds_them_itself(tmp_path: Path) -> None:
    X, *split = _data()
    with EphemeralStore(dir=tmp_path) as store, contextlib.ExitStack() as scope:
        shared = prepare_inputs(store, X, *split, k_max=5, pin_into=scope)
        assert shared.arrays is None
        assert (
            f"array_{pairwise_array('euclidean')}.npy"
            in _entry_files(store.root)[shared.ref.fingerprint]
        )
        assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1  # no second store


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_cold_and_warm_batch_runs_agree_and_leave_only_graphs(
    digits_cache: Path, tmp_path: Path
) -> None:
    rows = []
    for run in ("cold", "warm"):
        out = tmp_path / run
        out.mkdir()
        proc = run_cli(
            "--feature_cache_dir", str(digits_cache), "--output_dir", str(out),
            *SMALL_GRID, "--n_jobs", "2", cwd=out,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
        rows.append(_rows(run_dir))
        for name in ("digits_low", "digits_high"):
            files = _entry_files(digits_cache / name / "knn_cache")
            assert len(files) == 1
            (names,) = files.values()
            big = [f for f in names if f.startswith("array_") and "_split_" not in f]
            assert big == [], names
            assert not _run_dirs(digits_cache / name)
    assert rows[0] == rows[1] and len(rows[0]) == 24


@pytest.mark.slow
def test_the_entry_of_overwritten_features_is_collected_by_gc_unused_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os
    import time

    from knncache import fingerprint
    from knncache.cli import main as knncache_main
    from ssddbc.data import load_superclass
    from ssddbc.data.make_cache import main as make_cache

    rng = np.random.default_rng(3)
    y = np.arange(120) % 4
    X = (rng.standard_normal((4, 6))[y] * 4 + rng.standard_normal((120, 6))).astype(np.float32)
    np.save(tmp_path / "y.npy", y)
    cache, fps = tmp_path / "cache", []
    for shift in (0.0, 1.0):  # the second build overwrites the first's features
        np.save(tmp_path / "X.npy", X + shift)
        argv = [str(cache), "--name", "sc", "--features", str(tmp_path / "X.npy")]
        argv += ["--targets", str(tmp_path / "y.npy"), "--known_classes", "0,1"]
        assert make_cache([*argv, "--test_size", "0.3", "--overwrite"]) == 0
        proc = run_cli(
            "--feature_cache_dir", str(cache), "--output_dir", str(tmp_path / "out"),
            *SMALL_GRID, "--n_jobs", "1", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        fps.append(fingerprint(load_superclass(cache, "sc").features))
    root = cache / "sc" / "knn_cache"
    assert set(_entry_files(root)) == set(fps)  # the old features' entry stayed
    then = time.time() - 40 * 86400
    meta = json.loads((root / fps[0] / "meta.json").read_text())
    meta["created"] = meta["last_used"] = then
    (root / fps[0] / "meta.json").write_text(json.dumps(meta))
    for f in (root / fps[0]).iterdir():
        os.utime(f, (then, then))
    capsys.readouterr()
    assert knncache_main(["gc", str(root), "--unused-for", "30d"]) == 0
    assert f"removed {fps[0]}" in capsys.readouterr().out
    assert set(_entry_files(root)) == {fps[1]}
