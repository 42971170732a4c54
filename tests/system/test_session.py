"""``SearchSession``: one worker pool and one store policy across repeated searches."""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import PersistentStore
from ssddbc import SearchConfigError
from ssddbc.grid_search.api import (
    ClusteringSearchResult,
    SearchSession,
    run_clustering_search_on_features,
)
from tests.golden import GOLDEN_DIR

pytestmark = pytest.mark.slow  # worker pools
KS = range(4, 9)
DPS = range(40, 100, 20)


@pytest.fixture(scope="module")
def epochs() -> list[tuple[np.ndarray, ...]]:
    """Two 'epochs' of a training loop: the same split, features that moved."""
    with np.load(GOLDEN_DIR / "original_lowdigits.npz", allow_pickle=False) as z:
        X, y, known, labeled = (z[k] for k in ("features", "targets", "known_mask", "labeled_mask"))
    rng = np.random.default_rng(3)
    moved = (X + rng.normal(0.0, 0.05 * float(X.std()), X.shape)).astype(X.dtype)
    return [(X, y, known, labeled), (moved, y, known, labeled)]


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EphemeralStore directories under tmp_path, to check they vanish."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _same(a: ClusteringSearchResult, b: ClusteringSearchResult) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.core_points, b.core_points)
    assert a.densities is not None and b.densities is not None
    np.testing.assert_array_equal(a.densities, b.densities)
    assert (a.best_params, a.score, a.n_clusters) == (b.best_params, b.score, b.n_clusters)
    assert a.results_grid == b.results_grid
    assert (a.errors, a.knn_searches, a.silhouette_se) == (b.errors, b.knn_searches, 0.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _temp_dirs(root: Path) -> list[Path]:
    return sorted(root.glob("knn_cache_*"))


def test_session_equals_the_function_and_starts_its_pool_once(
    epochs: list[tuple[np.ndarray, ...]], private_tmp: Path
) -> None:
    kw: dict[str, Any] = {"k_range": KS, "density_range": DPS, "return_all": True}
    expected = [run_clustering_search_on_features(*e, max_workers=2, **kw) for e in epochs]
    assert _temp_dirs(private_tmp) == []
    assert expected[0].results_grid != expected[1].results_grid  # the features did move

    pids: set[int] = set()
    with SearchSession(max_workers=2) as session:
        for _ in range(2):  # epoch 1, epoch 2, epoch 1 again, epoch 2 again
            for e, ref in zip(epochs, expected, strict=True):
                got = session.run(*e, **kw)
                _same(got, ref)
                assert got.worker_pids and os.getpid() not in got.worker_pids
                pids.update(got.worker_pids)
                # Between calls: the session's store holds no entry of a finished call.
                (store_dir,) = _temp_dirs(private_tmp)
                assert [p for p in store_dir.iterdir() if len(p.name) == 32] == []
        # Four calls, one pool: never more processes than workers, all still running.
        assert len(pids) <= 2
        assert all(_alive(pid) for pid in pids)
    assert session.closed
    assert not any(_alive(pid) for pid in pids)
    assert _temp_dirs(private_tmp) == []
    with pytest.raises(SearchConfigError, match="closed"):
        session.run(*epochs[0], **kw)


def test_a_given_store_keeps_its_entries_across_calls(
    epochs: list[tuple[np.ndarray, ...]], tmp_path: Path
) -> None:
    store = PersistentStore(tmp_path / "store")
    with SearchSession(max_workers=1, store=store) as session:
        first = session.run(*epochs[0], k_range=KS, density_range=DPS)
        again = session.run(*epochs[0], k_range=KS, density_range=DPS)
        session.run(*epochs[1], k_range=KS, density_range=DPS)
    assert (first.knn_searches, again.knn_searches) == (1, 0)  # served from the store
    assert first.worker_pids == again.worker_pids == (os.getpid(),)  # serial: this process
    assert len(store.entries()) == 2
    assert not store.closed


def test_an_error_in_one_call_keeps_the_session_usable(
    epochs: list[tuple[np.ndarray, ...]], private_tmp: Path
) -> None:
    with SearchSession(max_workers=2) as session:
        ok = session.run(*epochs[0], k_range=KS, density_range=DPS)
        with pytest.raises(SearchConfigError):
            session.run(*epochs[0], k_range=[], density_range=DPS)
        again = session.run(*epochs[0], k_range=KS, density_range=DPS)
        assert len(set(ok.worker_pids) | set(again.worker_pids)) <= 2
        np.testing.assert_array_equal(ok.labels, again.labels)
    assert _temp_dirs(private_tmp) == []


def test_inputs_warning_names_the_caller_once_per_search(
    epochs: list[tuple[np.ndarray, ...]],
) -> None:
    from ssddbc import SsddbcWarning

    X, y, known, labeled = epochs[0]
    known = known.copy()
    known[np.flatnonzero(labeled)[:3]] = False  # three labelled samples of no known class
    kw: dict[str, Any] = {"k_range": range(4, 6), "density_range": DPS, "max_workers": 1}
    with pytest.warns(SsddbcWarning, match="not of a known class") as record:
        run_clustering_search_on_features(X, y, known, labeled, **kw)
    assert [w.filename for w in record] == [__file__]
    del kw["max_workers"]
    with (
        SearchSession(max_workers=1) as session,
        pytest.warns(SsddbcWarning, match="not of a known class") as record,
    ):
        session.run(X, y, known, labeled, **kw)
    assert [w.filename for w in record] == [__file__]


@pytest.mark.parametrize("max_workers", [1, 2])
def test_one_session_shared_by_two_threads_serialises_their_runs(
    epochs: list[tuple[np.ndarray, ...]], private_tmp: Path, max_workers: int
) -> None:
    kw: dict[str, Any] = {"k_range": KS, "density_range": DPS, "return_all": True}
    expected = [run_clustering_search_on_features(*e, max_workers=1, **kw) for e in epochs]
    start = threading.Barrier(2, timeout=60)

    with SearchSession(max_workers=max_workers) as session:

        def loop(epoch: int) -> list[ClusteringSearchResult]:
            start.wait()  # both threads call run at the same moment
            return [session.run(*epochs[epoch], **kw) for _ in range(3)]

        with ThreadPoolExecutor(2) as threads:
            futures = [threads.submit(loop, epoch) for epoch in (0, 1)]
            # A warning raised in a thread (pytest runs with warnings as errors) surfaces
            # here as the call's exception.
            results = [future.result(timeout=240) for future in futures]
    for got, ref in zip(results, expected, strict=True):
        for one in got:
            _same(one, ref)
    assert session.closed and _temp_dirs(private_tmp) == []
