"""The training-loop API: ``run_clustering_search_on_features`` on ephemeral and given stores."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import EphemeralStore, PersistentStore, compute_knn
from ssddbc import InvalidInputError, SearchConfigError
from ssddbc.grid_search._tasks import AlgorithmParams, ConfigTask, evaluate_config, prepare_inputs
from ssddbc.grid_search.api import (
    ClusteringSearchResult,
    SearchFailedError,
    run_clustering_search_on_features,
)
from tests.golden import GOLDEN_DIR

pytestmark = pytest.mark.slow  # worker pools
GOLDEN = GOLDEN_DIR
K_SMALL = range(4, 8)
DP_SMALL = range(40, 100, 25)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "original_lowdigits.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make EphemeralStore create its directories under tmp_path, to check they vanish."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _args(g: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    return g["features"], g["targets"], g["known_mask"], g["labeled_mask"]


def test_golden_selection_and_scores_match_the_original(golden: dict[str, np.ndarray]) -> None:
    expected = json.loads((GOLDEN / "original_lowdigits_search.json").read_text())
    res = run_clustering_search_on_features(
        *_args(golden),
        k_range=range(3, 21),
        density_range=range(40, 100, 5),
        max_workers=2,
        return_all=True,
    )
    assert res.best_params == expected["best_params"] == {"k": 12, "density_percentile": 40}
    assert res.score == pytest.approx(expected["score"], abs=1e-6)
    assert res.loss == res.score
    assert res.results_grid is not None and len(res.results_grid) == 216
    for (k, dp), metrics in res.results_grid.items():
        ref = expected["grid"][f"k{k}_dp{dp}"]
        assert metrics["score"] == pytest.approx(ref["score"], abs=1e-6), (k, dp)
        assert metrics["l1_loss"] == pytest.approx(ref["l1_loss"], abs=1e-6), (k, dp)
        assert metrics["silhouette"] == pytest.approx(ref["silhouette"], abs=1e-6), (k, dp)
        assert metrics["n_clusters"] == ref["n_clusters"], (k, dp)
    assert res.labels.shape == golden["targets"].shape
    assert res.n_clusters == len(np.unique(res.labels))
    assert np.all(np.diff(res.core_points) > 0)
    assert res.densities is not None and res.densities.shape == golden["targets"].shape


def test_unlabelled_targets_do_not_influence_the_choice(golden: dict[str, np.ndarray]) -> None:
    X, y, known, labeled = _args(golden)
    base = run_clustering_search_on_features(
        X, y, known, labeled, k_range=K_SMALL, density_range=DP_SMALL, max_workers=1
    )
    rng = np.random.default_rng(0)
    y2 = y.copy()
    unl = np.flatnonzero(~labeled)
    y2[unl] = rng.permutation(y2[unl])
    assert not np.array_equal(y, y2)
    other = run_clustering_search_on_features(
        X, y2, known, labeled, k_range=K_SMALL, density_range=DP_SMALL, max_workers=1
    )
    assert other.best_params == base.best_params
    assert other.score == base.score
    np.testing.assert_array_equal(other.labels, base.labels)


def test_serial_and_parallel_agree(golden: dict[str, np.ndarray]) -> None:
    kw = dict(k_range=K_SMALL, density_range=DP_SMALL, return_all=True)
    a = run_clustering_search_on_features(*_args(golden), max_workers=1, **kw)
    b = run_clustering_search_on_features(*_args(golden), max_workers=2, **kw)
    assert a.best_params == b.best_params
    assert a.results_grid == b.results_grid
    np.testing.assert_array_equal(a.labels, b.labels)


def test_ephemeral_store_is_removed_after_a_call(
    golden: dict[str, np.ndarray], private_tmp: Path
) -> None:
    res = run_clustering_search_on_features(
        *_args(golden), k_range=K_SMALL, density_range=DP_SMALL, max_workers=2
    )
    assert isinstance(res, ClusteringSearchResult)
    assert res.knn_searches == 1
    assert list(private_tmp.glob("knn_cache_*")) == []


def test_ephemeral_store_is_removed_after_workers_raised(
    golden: dict[str, np.ndarray], private_tmp: Path
) -> None:
    with pytest.raises(InvalidInputError, match="dense_method"):
        AlgorithmParams(dense_method=99)  # refused up front, before any work
    # A value that passes the table but that every worker rejects (bypassing the check the
    # way a corrupted pickle could), so every configuration raises in a worker.
    bad = AlgorithmParams()
    object.__setattr__(bad, "dense_method", 99)
    with pytest.raises(SearchFailedError) as info:
        run_clustering_search_on_features(
            *_args(golden), k_range=K_SMALL, density_range=DP_SMALL, max_workers=2, params=bad
        )
    assert len(info.value.errors) == len(K_SMALL) * len(DP_SMALL)
    assert "dense_method" in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).errors == info.value.errors
    assert list(private_tmp.glob("knn_cache_*")) == []


def test_a_given_persistent_store_is_reused(golden: dict[str, np.ndarray], tmp_path: Path) -> None:
    store = PersistentStore(tmp_path / "store")
    kw = dict(k_range=K_SMALL, density_range=DP_SMALL, max_workers=1, store=store)
    first = run_clustering_search_on_features(*_args(golden), **kw)
    second = run_clustering_search_on_features(*_args(golden), **kw)
    assert (first.knn_searches, second.knn_searches) == (1, 0)
    np.testing.assert_array_equal(first.labels, second.labels)
    # New features (one value changed) are never served the old graph.
    X2 = golden["features"].copy()
    X2[5, 3] += 0.5
    third = run_clustering_search_on_features(X2, *_args(golden)[1:], **kw)
    assert third.knn_searches == 1
    assert len(store.entries()) == 2


def test_a_pickled_task_is_small(golden: dict[str, np.ndarray]) -> None:
    with EphemeralStore() as store:
        X, y, known, labeled = _args(golden)
        shared = prepare_inputs(store, X, y, known, labeled, ~labeled, k_max=20)
        task = ConfigTask(
            shared=shared,
            k=20,
            density_percentile=95,
            group="x" * 40,
            feature_source="/some/long/path/" + "y" * 100 + "/features.npz",
        )
        assert len(pickle.dumps(task)) < 4096
        assert evaluate_config(task).ok


def test_search_after_parent_ran_faiss_and_clustering_finishes(
    golden: dict[str, np.ndarray],
) -> None:
    # The parent process has run a (threaded) neighbour search and a clustering call before
    # the pool starts: forked workers could deadlock in OpenMP; spawned ones must not.
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    X, y, known, labeled = _args(golden)
    compute_knn(X, 10)
    adaptive_density_clustering(X, y, known, labeled, k=10, density_percentile=75)
    res = run_clustering_search_on_features(
        X, y, known, labeled, k_range=K_SMALL, density_range=DP_SMALL, max_workers=2
    )
    assert res.best_params["k"] in K_SMALL  # finished (pytest-timeout guards the hang)


@pytest.mark.parametrize(
    ("change", "exc", "needle"),
    [
        (lambda a: {**a, "targets": a["targets"][:-1]}, InvalidInputError, "targets"),
        (lambda a: {**a, "known_mask": a["known_mask"] * 2}, InvalidInputError, "known_mask"),
        # (a labelled mask outside the known mask is a warning: test_callers.py)
        (lambda a: {**a, "labeled_mask": a["labeled_mask"][1:]}, InvalidInputError, "labeled_mask"),
        (lambda a: {**a, "k_range": []}, SearchConfigError, "k_range"),
        (lambda a: {**a, "k_range": [3, 901]}, SearchConfigError, "k_range"),
        (lambda a: {**a, "density_range": [40, 120]}, SearchConfigError, "density_range"),
    ],
)
def test_bad_input_fails_before_any_work(
    golden: dict[str, np.ndarray], private_tmp: Path, change, exc, needle: str
) -> None:
    args = {
        "features": golden["features"],
        "targets": golden["targets"],
        "known_mask": golden["known_mask"].astype(int),
        "labeled_mask": golden["labeled_mask"],
        "k_range": K_SMALL,
        "density_range": DP_SMALL,
    }
    args = change(args)
    with pytest.raises(exc, match=needle):
        run_clustering_search_on_features(**args, max_workers=1)
    assert list(private_tmp.iterdir()) == []


def test_nan_features_name_the_row(golden: dict[str, np.ndarray]) -> None:
    X = golden["features"].copy()
    X[17, 2] = np.nan
    with pytest.raises(InvalidInputError, match="row 17"):
        run_clustering_search_on_features(
            X, *_args(golden)[1:], k_range=K_SMALL, density_range=DP_SMALL
        )


def test_an_unwritable_store_falls_back_to_a_temporary_one(
    golden: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from knncache import KnnCacheWarning, StoreWriteError

    store = PersistentStore(tmp_path / "store")

    def disk_full(*args, **kwargs):
        raise StoreWriteError(str(tmp_path / "store"), "No space left on device", errno.ENOSPC)

    monkeypatch.setattr(store, "ensure", disk_full)
    with pytest.warns(KnnCacheWarning, match="temporary store"):
        res = run_clustering_search_on_features(
            *_args(golden), k_range=K_SMALL, density_range=DP_SMALL, max_workers=1, store=store
        )
    assert res.knn_searches == 1
    assert store.entries() == []


class _ClearingExecutor(ThreadPoolExecutor):
    """Runs a real ``knncache clear`` in another process when the first task is submitted."""

    def __init__(self, root: Path) -> None:
        super().__init__(max_workers=1)
        self.root = root
        self.report: dict[str, Any] | None = None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.report is None:
            done = subprocess.run(
                [sys.executable, "-m", "knncache", "clear", str(self.root), "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            self.report = json.loads(done.stdout)
        return super().submit(fn, *args, **kwargs)


def test_a_clear_in_another_process_skips_the_entry_of_a_running_search(
    golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    kw = dict(k_range=K_SMALL, density_range=DP_SMALL, return_all=True)
    expected = run_clustering_search_on_features(*_args(golden), max_workers=1, **kw)
    store = PersistentStore(root)
    with _ClearingExecutor(root) as executor:
        got = run_clustering_search_on_features(
            *_args(golden), store=store, executor=executor, **kw
        )
    assert executor.report is not None
    (fp,) = [e.fingerprint for e in store.entries()]
    assert executor.report["pinned"] == [fp]  # the run pinned its entry for its whole length
    assert executor.report["removed"] == []
    assert got.best_params == expected.best_params
    np.testing.assert_array_equal(got.labels, expected.labels)
    # The pin ended with the call: now a clear removes the entry.
    assert store.clear() == [fp]
