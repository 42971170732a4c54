"""The large-N grid-search path (N > PAIRWISE_MAX_N), run end to end on a moderate N.

A :class:`SearchPlan` with a low ``pairwise_max_n`` makes a 1,500-point problem take the path
a 50,000-point one takes: no N×N array anywhere, the graph ensured at the plan's
``candidate_width`` columns and used whole as exact candidates, the silhouette averaged over
a seeded sample of unlabelled points whose distance rows are computed once and shared.
Labels must equal the full-matrix path's.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples

import ssddbc._distances as distances_mod
import ssddbc.evaluation as evaluation
from knncache import PersistentStore
from ssddbc.grid_search import _tasks
from ssddbc.grid_search._inputs import SharedInputs
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.grid_search._tasks import ConfigTask, evaluate_config, prepare_inputs, run_configuration
from ssddbc.grid_search.api import run_clustering_search_on_features

pytestmark = pytest.mark.slow  # worker pools on the large-N path
N = 1500
SAMPLE = 300
KS = [3, 8, 14]
DPS = [40, 70, 95]
#: The large-N route on N=1,500, with a 300-point silhouette sample.
LARGE = SearchPlan(pairwise_max_n=500, silhouette_sample_size=SAMPLE, exact_silhouette_max_n=500)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    c, d = 6, 16
    centers = rng.standard_normal((c, d))
    y = rng.integers(0, c, N)
    X = (centers[y] + rng.standard_normal((N, d)) * 0.6).astype(np.float32)
    known = y < 4
    labeled = known & (rng.random(N) < 0.6)
    return X, y, known, labeled


@pytest.fixture
def large_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forbid the N×N matrix and any N×N block (the tests pass the ``LARGE`` plan)."""

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pairwise_euclidean called on the large-N path")

    monkeypatch.setattr(distances_mod, "pairwise_euclidean", forbidden)
    # Every distance block computed anywhere has fewer than N×N elements.
    original = distances_mod.euclidean_block

    def bounded(A: Any, B: Any, **kwargs: Any) -> Any:
        out = original(A, B, **kwargs)
        assert out.size < N * N, f"distance block of shape {out.shape}"
        return out

    for name, module in list(sys.modules.items()):
        if name.startswith("ssddbc") and getattr(module, "euclidean_block", None) is original:
            monkeypatch.setattr(module, "euclidean_block", bounded)


def _split(data: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    X, y, known, labeled = data
    return X, y, known, labeled, ~labeled


def test_large_path_labels_equal_the_matrix_path(
    data: tuple[np.ndarray, ...], tmp_path: Path, large_path: None
) -> None:
    X, y, known, labeled, eval_mask = _split(data)
    big = prepare_inputs(
        PersistentStore(tmp_path / "big"),
        X,
        y,
        known,
        labeled,
        eval_mask,
        k_max=max(KS),
        plan=LARGE,
    )
    assert not big.has_pairwise
    assert big.candidate_width == LARGE.candidate_width
    assert big.silhouette_sample == SAMPLE
    # The entry holds no N×N array: graph, features, split, sample indices and rows only.
    meta = json.loads((big.ref.path / "meta.json").read_text())
    names = sorted(meta.get("arrays", {}))
    assert not any("pairwise" in name for name in names), names
    for name in names:
        assert big.ref.array(name).size < N * N // 4, name

    small = _matrix_inputs(tmp_path / "small", X, y, known, labeled, eval_mask)
    assert small.has_pairwise and small.silhouette_sample == 0
    for k in KS:
        for dp in DPS:
            got, _ = run_configuration(ConfigTask(shared=big, k=k, density_percentile=dp))
            ref, _ = run_configuration(ConfigTask(shared=small, k=k, density_percentile=dp))
            np.testing.assert_array_equal(got[0], ref[0])
            assert got[6] == ref[6]  # core clusters
            r_big = evaluate_config(ConfigTask(shared=big, k=k, density_percentile=dp))
            r_small = evaluate_config(ConfigTask(shared=small, k=k, density_percentile=dp))
            assert r_big.ok and r_small.ok
            assert r_big.silhouette_sample == SAMPLE and r_small.silhouette_sample == 0
            assert r_big.l1_loss == r_small.l1_loss
            assert (r_big.all_acc, r_big.n_clusters) == (r_small.all_acc, r_small.n_clusters)


def _matrix_inputs(root: Path, *arrays: np.ndarray) -> SharedInputs:
    """The full-matrix path (default plan), with the real pairwise_euclidean (the fixture
    forbids it)."""
    saved = distances_mod.pairwise_euclidean
    distances_mod.pairwise_euclidean = _REAL_PAIRWISE
    try:
        return prepare_inputs(PersistentStore(root), *arrays, k_max=max(KS))
    finally:
        distances_mod.pairwise_euclidean = saved


_REAL_PAIRWISE = distances_mod.pairwise_euclidean


def test_sampled_silhouette_equals_sklearn_over_the_sample(
    data: tuple[np.ndarray, ...], tmp_path: Path, large_path: None
) -> None:
    X, y, known, labeled, eval_mask = _split(data)
    shared = prepare_inputs(
        PersistentStore(tmp_path), X, y, known, labeled, eval_mask, k_max=max(KS), plan=LARGE
    )
    sample = shared.ref.array(shared.silhouette_index_array)
    np.testing.assert_array_equal(
        sample, evaluation.silhouette_sample_indices(labeled, SAMPLE, evaluation.SILHOUETTE_SEED)
    )
    assert np.all(np.diff(sample) > 0) and not labeled[sample].any()
    for k, dp in ((3, 40), (8, 70), (14, 95)):
        task = ConfigTask(shared=shared, k=k, density_percentile=dp)
        out, _ = run_configuration(task)
        result = evaluate_config(task)
        expected = silhouette_samples(X.astype(np.float64), out[0])[sample].mean()
        assert result.silhouette == pytest.approx(expected, abs=1e-9)


def _evaluate_in_child(task: ConfigTask) -> dict[str, Any]:
    result = evaluate_config(task)
    return {**result.metrics(), "ok": result.ok, "error": result.error}


def test_large_search_end_to_end_is_deterministic(
    data: tuple[np.ndarray, ...], tmp_path: Path, large_path: None
) -> None:
    X, y, known, labeled = data
    kwargs: dict[str, Any] = dict(k_range=KS, density_range=DPS, return_all=True, plan=LARGE)
    first = run_clustering_search_on_features(
        X, y, known, labeled, max_workers=1, store=PersistentStore(tmp_path / "a"), **kwargs
    )
    again = run_clustering_search_on_features(
        X, y, known, labeled, max_workers=1, store=PersistentStore(tmp_path / "b"), **kwargs
    )
    assert first.results_grid == again.results_grid
    assert first.best_params == again.best_params
    np.testing.assert_array_equal(first.labels, again.labels)
    assert first.results_grid is not None
    assert all(m["silhouette_sample"] == SAMPLE for m in first.results_grid.values())

    # A spawned process (fresh interpreter, no monkeypatch) follows the shared inputs and
    # gets the same numbers: the path is recorded in the task, not in module constants.
    shared = prepare_inputs(
        PersistentStore(tmp_path / "a"), X, y, known, labeled, ~labeled, k_max=max(KS), plan=LARGE
    )
    tasks = [ConfigTask(shared=shared, k=k, density_percentile=95) for k in (3, 14)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        remote = list(pool.map(_evaluate_in_child, tasks))
    for task, got in zip(tasks, remote, strict=True):
        assert got["ok"], got["error"]
        del got["ok"], got["error"]
        assert got == first.results_grid[(task.k, task.density_percentile)]


def test_vanished_entry_is_recomputed_on_the_large_path(tmp_path: Path) -> None:
    """A worker whose entry vanished rebuilds the wide graph and the sample rows itself."""
    from ssddbc.data import build_digits_feature_cache, load_superclass
    from ssddbc.evaluation import evaluation_mask

    plan = SearchPlan(pairwise_max_n=100, silhouette_sample_size=200, exact_silhouette_max_n=100)
    build_digits_feature_cache(tmp_path / "fc")
    d = load_superclass(tmp_path / "fc", "digits_low")
    store = PersistentStore(tmp_path / "store")
    mask = evaluation_mask(d.n, train_size=d.train_size, mode="test")
    shared = prepare_inputs(
        store, d.features, d.targets, d.known_mask, d.labeled_mask, mask, k_max=6, plan=plan
    )
    assert not shared.has_pairwise and shared.silhouette_sample == 200
    task = ConfigTask(
        shared=shared, k=5, density_percentile=65, group="digits_low", feature_source=str(d.source)
    )
    before = evaluate_config(task)
    assert before.ok and not before.knn_fallback
    store.clear()
    _tasks.clear_resources()  # this process opened the entry above
    with pytest.warns(Warning, match="vanished"):
        after = evaluate_config(task)
    assert after.ok and after.knn_fallback, after.error
    assert after.metrics() == before.metrics()
    _tasks.clear_resources()
