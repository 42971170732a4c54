"""The one-shot search's warm worker pool: reused between calls, never left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc.data.synthetic import make_synthetic_superclass
from ssddbc.grid_search import _execution, _warm, shutdown_workers
from ssddbc.grid_search.api import ClusteringSearchResult, run_clustering_search_on_features

pytestmark = pytest.mark.slow  # worker pools
KW: dict[str, Any] = {"k_range": [3, 4], "density_range": [50, 70], "return_all": True}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, ...]:
    d = make_synthetic_superclass(n=300, d=16)
    return d.features, d.targets, d.known_mask, d.labeled_mask


@pytest.fixture(scope="module")
def serial(data: tuple[np.ndarray, ...]) -> ClusteringSearchResult:
    return run_clustering_search_on_features(*data, max_workers=1, **KW)


@pytest.fixture(autouse=True)
def _no_warm_pool_left() -> Iterator[None]:
    shutdown_workers()
    yield
    shutdown_workers()


def _same(a: ClusteringSearchResult, b: ClusteringSearchResult) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.core_points, b.core_points)
    assert (a.best_params, a.score, a.n_clusters) == (b.best_params, b.score, b.n_clusters)
    assert a.results_grid == b.results_grid and a.errors == b.errors == {}


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _poll(done: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _opened_under(pid: int, root: Path) -> list[str]:
    """Files under ``root`` that ``pid`` maps or holds open."""
    found = []
    try:
        with open(f"/proc/{pid}/maps") as fh:
            found += [line.strip() for line in fh if str(root) in line]
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(str(root)):
                found.append(target)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def test_repeated_calls_reuse_the_warm_workers_and_match_serial(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult
) -> None:
    first = run_clustering_search_on_features(*data, max_workers=2, **KW)
    pids = _warm.warm_pids()
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    assert set(first.worker_pids) <= set(pids) and os.getpid() not in pids
    second = run_clustering_search_on_features(*data, max_workers=2, **KW)
    assert _warm.warm_pids() == pids
    assert set(second.worker_pids) <= set(pids)
    _same(first, serial)
    _same(second, serial)


def test_shutdown_workers_ends_them_and_the_next_call_starts_new_ones(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult
) -> None:
    run_clustering_search_on_features(*data, max_workers=2, **KW)
    pids = _warm.warm_pids()
    assert pids
    shutdown_workers()
    shutdown_workers()  # idempotent
    assert _warm.warm_pids() == ()
    assert _poll(lambda: not any(_alive(p) for p in pids))
    again = run_clustering_search_on_features(*data, max_workers=2, **KW)
    _same(again, serial)
    assert _warm.warm_pids() and not set(_warm.warm_pids()) & set(pids)


def test_idle_workers_end_after_the_idle_timeout(
    data: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_warm, "IDLE_TIMEOUT", 1.0)
    run_clustering_search_on_features(*data, max_workers=2, **KW)
    pids = _warm.warm_pids()
    assert pids
    assert _poll(lambda: _warm.warm_pids() == () and not any(_alive(p) for p in pids))


def test_an_idle_worker_keeps_no_file_of_the_removed_store(
    data: tuple[np.ndarray, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the EphemeralStore goes here
    run_clustering_search_on_features(*data, max_workers=2, **KW)
    assert list(tmp_path.glob("knn_cache_*")) == []  # the call removed its store
    pids = _warm.warm_pids()
    assert len(pids) == 2
    everyone = [*pids, os.getpid()]
    assert _poll(lambda: not any(_opened_under(p, tmp_path) for p in everyone)), {
        p: _opened_under(p, tmp_path) for p in everyone
    }
    assert all(_alive(p) for p in pids)  # still warm, just holding nothing


def test_an_interrupted_call_leaves_no_warm_pool(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_clustering_search_on_features(*data, max_workers=2, **KW)
    pids = _warm.warm_pids()
    assert pids

    def interrupt(self: Any, result: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(_execution.ProgressReporter, "__call__", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_clustering_search_on_features(*data, max_workers=2, **KW)
    assert _warm.warm_pids() == ()
    assert _poll(lambda: not any(_alive(p) for p in pids))
    _same(run_clustering_search_on_features(*data, max_workers=2, **KW), serial)


def test_a_call_while_the_pool_is_held_gets_its_own_workers(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult
) -> None:
    with _warm.borrow(2, 2) as held:
        other = run_clustering_search_on_features(*data, max_workers=2, **KW)
        held_pids = set(held.executor.submit(os.getpid).result() for _ in range(4))
    _same(other, serial)
    assert other.worker_pids and not set(other.worker_pids) & held_pids
    assert _poll(lambda: not any(_alive(p) for p in other.worker_pids))  # cold: ended
    assert set(_warm.warm_pids()) >= held_pids  # the held pool went back warm


def test_two_threads_calling_at_once_both_get_the_right_result(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult
) -> None:
    barrier = threading.Barrier(2)
    results: list[ClusteringSearchResult] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            results.append(run_clustering_search_on_features(*data, max_workers=2, **KW))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(results) == 2
    for got in results:
        _same(got, serial)
    assert len(_warm.warm_pids()) == 2


_SCRIPT = """
import json, sys, time
from ssddbc.data.synthetic import make_synthetic_superclass
from ssddbc.grid_search import _warm
from ssddbc.grid_search.api import run_clustering_search_on_features
d = make_synthetic_superclass(n=300, d=16)
for _ in range(3):
    run_clustering_search_on_features(
        d.features, d.targets, d.known_mask, d.labeled_mask,
        k_range=[3, 4], density_range=[50, 70], max_workers=2,
    )
print(json.dumps(_warm.warm_pids()), flush=True)
{ending}
"""


@pytest.mark.parametrize("ending", ["exit", "exception", "sigkill"])
def test_no_worker_outlives_the_script(tmp_path: Path, ending: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = textwrap.dedent(_SCRIPT).format(
        ending={
            "exit": "",
            "exception": "raise RuntimeError('the training loop failed')",
            "sigkill": "time.sleep(600)",
        }[ending]
    )
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        pids = json.loads(proc.stdout.readline() or "null")
        assert pids and len(pids) == 2, proc.stderr.read() if proc.stderr else ""
        assert all(_alive(p) for p in pids)
        if ending == "sigkill":
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = {"exit": 0, "exception": 1, "sigkill": -signal.SIGKILL}[ending]
    assert proc.returncode == expected, err
    if ending == "exception":
        assert "the training loop failed" in err
    assert _poll(lambda: not any(_alive(p) for p in pids)), pids
    if ending != "sigkill":
        assert "leaked" not in err, err
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_a_forked_child_forgets_the_parents_pool(
    data: tuple[np.ndarray, ...], serial: ClusteringSearchResult
) -> None:
    run_clustering_search_on_features(*data, max_workers=2, **KW)
    pids = _warm.warm_pids()
    assert pids
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            seen = [_warm.warm_pids(), _warm._state.pool is None]
            shutdown_workers()  # must not touch the parent's workers
            os.write(write, json.dumps(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        seen = json.loads(fh.read() or "null")
    os.waitpid(child, 0)
    assert seen == [[], True]  # forgotten, not shut down
    assert all(_alive(p) for p in pids)
    _same(run_clustering_search_on_features(*data, max_workers=2, **KW), serial)
    assert _warm.warm_pids() == pids
