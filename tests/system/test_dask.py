"""The grid search on a real Dask cluster: ``ssddbc-search --scheduler`` and ``executor=``.

Every test uses a real :class:`distributed.LocalCluster` of worker *processes* (2 workers, one
thread each) and the small digits feature cache. The batch runner runs in its own process and
connects to the test's cluster by address, as it would to a remote scheduler.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from tests.system.conftest import REPO, SMALL_GRID, run_cli

pytestmark = pytest.mark.slow

TIMING = {"seconds"}


def _local_cluster(**config: Any) -> LocalCluster:
    import dask

    with dask.config.set(config):
        # The scheduler runs in this process and reads its config when it starts.
        return LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: two clusters run at once
            memory_limit=0,
        )


@pytest.fixture(scope="module")
def cluster() -> Any:
    with _local_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Any:
    # Closed before the cluster (fixture teardown runs in reverse order).
    with Client(cluster) as c:
        yield c


def _rows(run_dir: Path, drop: set[str] = TIMING) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(fh)]


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def _search(cache: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out.mkdir(parents=True, exist_ok=True)
    proc = run_cli(
        "--feature_cache_dir", str(cache), "--output_dir", str(out), *SMALL_GRID, *extra, cwd=out
    )
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    return proc, (runs[0] if runs else out)


# --- instrumentation installed in the worker processes ------------------------------------

_SEARCHES = {"count": 0}


def _count_searches() -> None:
    """Wrap every binding of ``compute_knn`` in this process with a call counter."""
    import knncache
    import knncache._engines
    import ssddbc.density.density_estimation
    import ssddbc.grid_search._tasks  # noqa: F401 - binds it at import time

    original = knncache._engines.compute_knn
    if getattr(original, "_counted", False):
        return

    def counted(*args: Any, **kwargs: Any) -> Any:
        _SEARCHES["count"] += 1
        return original(*args, **kwargs)

    counted._counted = True  # type: ignore[attr-defined]
    for module in list(sys.modules.values()):
        if getattr(module, "compute_knn", None) is original:
            module.compute_knn = counted  # type: ignore[attr-defined]


def _searches() -> int:
    return _SEARCHES["count"]


def _tiny_search() -> int:
    import knncache

    knncache.compute_knn(np.random.default_rng(0).random((50, 4), dtype=np.float32), 3)
    return _SEARCHES["count"]


class CountSearches(WorkerPlugin):
    """Counts neighbour searches in every worker process, including restarted ones."""

    name = "test-count-searches"

    def setup(self, worker: Any) -> None:
        _count_searches()


class ExitOnCell(WorkerPlugin):
    """Makes the worker process that runs configuration (k, dp) die on the spot."""

    name = "test-exit-on-cell"

    def __init__(self, k: int, dp: int) -> None:
        self.k, self.dp = k, dp

    def setup(self, worker: Any) -> None:
        import ssddbc.grid_search._tasks as tasks

        original = tasks._score_into  # every configuration passes here, alone or per k
        cell = (self.k, self.dp)

        def dying(result: Any, out: Any, res: Any) -> Any:
            if (result.k, result.density_percentile) == cell:
                os._exit(17)
            return original(result, out, res)

        tasks._score_into = dying


# --- tests ---------------------------------------------------------------------------------


def test_core_does_not_import_distributed() -> None:
    code = (
        "import sys\n"
        "import knncache, ssddbc\n"
        "import ssddbc.grid_search.api, ssddbc.grid_search.batch_runner\n"
        "ssddbc.grid_search.batch_runner.build_parser().format_help()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_scheduler_flag_errors_are_one_line(
    digits_cache: Path, tmp_path: Path, capsys: Any
) -> None:
    from ssddbc.grid_search.batch_runner import run_batch

    base = ["--feature_cache_dir", str(digits_cache), "--output_dir", str(tmp_path / "out")]
    for extra, expected in [
        (["--scheduler", "local:2", "--n_jobs", "2"], "--scheduler conflicts with --n_jobs"),
        (["--scheduler", "local:2", "--no_parallel"], "--scheduler conflicts with --no_parallel"),
        (["--scheduler", "local:zero"], "expected local:N with N >= 1"),
    ]:
        assert run_batch(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err
        assert len(err.splitlines()) == 1
    # Without the optional package (hidden in a separate process, not in this one where
    # Dask clusters may be running): the same one-line error, with the install command.
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "from ssddbc.grid_search.batch_runner import main\n"
        f"main({[*base, '--scheduler', 'local:2']!r})\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "pip install 'knncache[dask]'" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_scheduler_matches_local_pool_and_workers_never_search(
    client: Client, cluster: LocalCluster, digits_cache: Path, tmp_path: Path
) -> None:
    client.register_plugin(CountSearches())
    assert set(client.run(_searches).values()) == {0}

    dask_run, run1 = _search(
        digits_cache, tmp_path / "dask", "--scheduler", cluster.scheduler_address
    )
    assert dask_run.returncode == 0, dask_run.stderr
    assert "note: Dask workers open the knncache stores" in dask_run.stderr
    # The run cleaned up after itself on a cluster it does not own.
    assert "ssddbc-thread-limits" not in cluster.scheduler.worker_plugins
    pool_run, run2 = _search(digits_cache, tmp_path / "pool", "--n_jobs", "2")
    assert pool_run.returncode == 0, pool_run.stderr

    rows1, rows2 = _rows(run1), _rows(run2)
    assert len(rows1) == 2 * 12
    assert all(r["status"] == "ok" for r in rows1)
    assert rows1 == rows2
    s1, s2 = _summary(run1), _summary(run2)
    for name in ("digits_low", "digits_high"):
        assert s1["superclasses"][name]["selected"] == s2["superclasses"][name]["selected"]

    # No worker searched: the main process ran one search per superclass on the cold cache,
    # no row fell back to computing the graph, and the workers' own counters are zero.
    assert all(r["knn_fallback"] == "0" for r in rows1)
    assert s1["this_invocation"]["knn_searches"] == 2
    assert s1["knn_fallback_configurations"] == 0
    assert s1["this_invocation"]["executor"] == f"dask {cluster.scheduler_address}"
    assert set(client.run(_searches).values()) == {0}
    # ... and the counters do see a search when one happens in a worker.
    assert set(client.run(_tiny_search).values()) == {1}


def test_api_with_dask_executor_equals_serial(client: Client, digits_cache: Path) -> None:
    from ssddbc.data import load_superclass
    from ssddbc.grid_search.api import run_clustering_search_on_features

    d = load_superclass(digits_cache, "digits_low")
    kwargs = dict(k_range=range(3, 7), density_range=range(40, 91, 25), return_all=True)
    serial = run_clustering_search_on_features(
        d.features, d.targets, d.known_mask, d.labeled_mask, max_workers=1, **kwargs
    )
    on_dask = run_clustering_search_on_features(
        d.features,
        d.targets,
        d.known_mask,
        d.labeled_mask,
        executor=client.get_executor(),
        **kwargs,
    )
    assert on_dask.best_params == serial.best_params
    assert on_dask.score == serial.score
    np.testing.assert_array_equal(on_dask.labels, serial.labels)
    np.testing.assert_array_equal(on_dask.core_points, serial.core_points)
    assert on_dask.results_grid == serial.results_grid
    assert on_dask.errors == {}


def test_local_n_end_to_end(digits_cache: Path, tmp_path: Path) -> None:
    # As on a cluster's shared filesystem: soft (marker-file) locks on the knncache stores.
    proc, run = _search(
        digits_cache, tmp_path / "out", "--scheduler", "local:2", "--knn_lock", "soft"
    )
    assert proc.returncode == 0, proc.stderr
    assert "started for this run), 2 worker(s), 2 thread(s)" in proc.stderr
    rows = _rows(run)
    assert len(rows) == 2 * 12
    assert all(r["status"] == "ok" and r["knn_fallback"] == "0" for r in rows)
    summary = _summary(run)
    assert summary["this_invocation"]["executor"].startswith("dask tcp://127.0.0.1:")
    assert summary["this_invocation"]["workers"] == 2


def test_repeatedly_killed_task_is_a_failed_configuration(
    digits_cache: Path, tmp_path: Path
) -> None:
    # allowed-failures 1: the second worker death marks the task KilledWorker. Saturation
    # 1.0: a worker holds only the task it runs, so no other task shares its deaths.
    with (
        _local_cluster(
            **{
                "distributed.scheduler.allowed-failures": 1,
                "distributed.scheduler.worker-saturation": 1.0,
            }
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(ExitOnCell(k=4, dp=65))
        proc, run = _search(
            digits_cache,
            tmp_path / "out",
            "--scheduler",
            cluster.scheduler_address,
            "--superclasses",
            "digits_low",
        )
    assert proc.returncode == 1, proc.stderr
    rows = _rows(run)
    cells = Counter((r["k"], r["density_percentile"]) for r in rows)
    assert len(cells) == 12 and set(cells.values()) == {1}
    failed = [r for r in rows if r["status"] != "ok"]
    assert [(r["k"], r["density_percentile"]) for r in failed] == [("4", "65")]
    assert "KilledWorker" in failed[0]["error"]
    assert "every Dask worker that ran this configuration died" in failed[0]["error"]
    assert _summary(run)["failed_configurations"] == 1


def test_worker_killed_mid_search_loses_and_duplicates_nothing(
    client: Client, cluster: LocalCluster, digits_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # The full default grid of one superclass (198 configurations): still running when the
    # worker dies.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(digits_cache),
            "--output_dir",
            str(out),
            "--superclasses",
            "digits_low",
            "--scheduler",
            cluster.scheduler_address,
            "--quiet",
        ],
        cwd=out,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        prefix = cluster.scheduler.task_prefixes.get("evaluate_k")
        suspicious_before = prefix.suspicious if prefix is not None else 0
        rows_at_kill = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            journals = list(out.glob("run_*/results.csv"))
            if journals:
                rows_at_kill = len(journals[0].read_text().splitlines()) - 1
                if rows_at_kill >= 10:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before a worker could be killed"
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert 0 < rows_at_kill < 198
    # The scheduler (in this process) saw tasks lose their worker and reran them.
    prefix = cluster.scheduler.task_prefixes["evaluate_k"]
    assert prefix.suspicious > suspicious_before
    run = next(out.glob("run_*"))
    rows = _rows(run)
    cells = Counter((r["superclass"], r["k"], r["density_percentile"]) for r in rows)
    assert len(cells) == 198
    assert set(cells.values()) == {1}
    assert all(r["status"] == "ok" for r in rows)
    assert _summary(run)["failed_configurations"] == 0
    # The nanny replaced the killed worker: the cluster is whole again.
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()
