"""End-to-end tests of ``ssddbc-search`` (the offline batch runner), in real processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ssddbc.grid_search._journal import ResultsJournal
from tests.system.conftest import SMALL_GRID, run_cli

pytestmark = pytest.mark.slow  # worker pools, CLI subprocesses, killed runs
TIMING = {"seconds"}


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as fh:
            out += [int(c) for c in fh.read().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"  # a zombie is dead
    except OSError:
        return False


def _run_dir(out: Path) -> Path:
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _search(cache: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    proc = run_cli(
        "--feature_cache_dir", str(cache), "--output_dir", str(out), *SMALL_GRID, *extra, cwd=out
    )
    new = sorted(set(out.iterdir()) - before)
    return proc, (new[0] if new else out)


def test_serial_and_parallel_give_identical_rows(digits_cache: Path, tmp_path: Path) -> None:
    serial, run1 = _search(digits_cache, tmp_path / "a", "--n_jobs", "1")
    assert serial.returncode == 0, serial.stderr
    parallel, run2 = _search(digits_cache, tmp_path / "b", "--n_jobs", "2")
    assert parallel.returncode == 0, parallel.stderr
    rows1, rows2 = _rows(run1), _rows(run2)
    assert len(rows1) == 2 * 12  # two superclasses × 4 k × 3 percentiles
    assert all(r["status"] == "ok" for r in rows1)
    assert rows1 == rows2
    s1, s2 = _summary(run1), _summary(run2)
    for name in s1["superclasses"]:
        assert s1["superclasses"][name]["selected"] == s2["superclasses"][name]["selected"]
    for name in ("digits_low", "digits_high"):
        assert (run1 / f"heatmap_{name}.png").stat().st_size > 1000


def test_warm_cache_runs_no_search_and_changes_nothing(digits_cache: Path, tmp_path: Path) -> None:
    cold, run1 = _search(digits_cache, tmp_path / "cold", "--n_jobs", "2")
    assert cold.returncode == 0, cold.stderr
    assert _summary(run1)["this_invocation"]["knn_searches"] == 2
    warm, run2 = _search(digits_cache, tmp_path / "warm", "--n_jobs", "2")
    assert warm.returncode == 0, warm.stderr
    inv = _summary(run2)["this_invocation"]
    assert inv["knn_searches"] == 0
    assert inv["knn_cache_hits"] == 2
    assert "0 neighbour search(es) run, 2 cache hit(s)" in warm.stdout
    assert _rows(run1) == _rows(run2)


def test_changed_features_are_recomputed_without_a_flag(digits_cache: Path, tmp_path: Path) -> None:
    first, _ = _search(
        digits_cache, tmp_path / "r1", "--n_jobs", "1", "--superclasses", "digits_low"
    )
    assert first.returncode == 0, first.stderr
    path = digits_cache / "digits_low" / "features.npz"
    with np.load(path, allow_pickle=False) as z:
        arrays = dict(z)
    for key in ("all_features", "train_features"):  # sample 0 is a training sample
        arrays[key] = arrays[key].copy()
        arrays[key][0, 0] += 0.25
    np.savez(path, **arrays)
    second, run2 = _search(
        digits_cache, tmp_path / "r2", "--n_jobs", "1", "--superclasses", "digits_low"
    )
    assert second.returncode == 0, second.stderr
    knn = _summary(run2)["superclasses"]["digits_low"]["knn"]
    assert knn["searches"] == 1 and knn["cache_hits"] == 0


def test_clear_knn_cache_recomputes(digits_cache: Path, tmp_path: Path) -> None:
    first, _ = _search(digits_cache, tmp_path / "r1", "--n_jobs", "1")
    assert first.returncode == 0, first.stderr
    assert (digits_cache / "digits_low" / "knn_cache").is_dir()
    again, run2 = _search(digits_cache, tmp_path / "r2", "--n_jobs", "1", "--clear_knn_cache")
    assert again.returncode == 0, again.stderr
    assert _summary(run2)["this_invocation"]["knn_searches"] == 2


def test_resume_after_sigkill_gives_the_same_results(digits_cache: Path, tmp_path: Path) -> None:
    # The full default grid of one superclass (198 configurations), so that the run is still
    # going when it is killed.
    out = tmp_path / "killed"
    out.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(digits_cache),
            "--superclasses",
            "digits_low",
            "--output_dir",
            str(out),
            "--n_jobs",
            "2",
            "--quiet",
        ],
        cwd=out,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and proc.poll() is None:
        results = list(out.glob("run_*/results.csv"))
        if results:
            rows = results[0].read_text().count("\n") - 1
            if rows >= 30:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    children = _children(proc.pid)
    assert children, "the run has no worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # Its workers must not outlive it (a pool worker would otherwise wait forever).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]
    run_dir = _run_dir(out)
    partial = len([r for r in ResultsJournal(run_dir / "results.csv").read() if r.ok])
    assert 30 <= partial < 198

    resumed = run_cli("--resume", str(run_dir), "--n_jobs", "2", cwd=out)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {partial} of 198 configurations already done" in resumed.stderr
    # Only the missing configurations ran, and no neighbour search (the cache is warm).
    assert _summary(run_dir)["this_invocation"]["knn_searches"] == 0

    clean_out = tmp_path / "clean"
    clean_out.mkdir()
    clean = run_cli(
        "--feature_cache_dir",
        str(digits_cache),
        "--superclasses",
        "digits_low",
        "--output_dir",
        str(clean_out),
        "--n_jobs",
        "2",
        "--quiet",
        cwd=clean_out,
    )
    assert clean.returncode == 0, clean.stderr
    run_clean = _run_dir(clean_out)
    assert _rows(run_dir) == _rows(run_clean)
    a, b = _summary(run_dir), _summary(run_clean)
    for name in a["superclasses"]:
        assert a["superclasses"][name]["selected"] == b["superclasses"][name]["selected"]


@pytest.mark.parametrize(
    ("setup", "extra", "needle"),
    [
        ("none", ["--superclasses", "digits_low,no_such_class"], "no_such_class"),
        ("none", ["--k_min", "9", "--k_max", "4"], "--k_min/--k_max"),
        ("none", ["--density_min", "90", "--density_max", "40"], "--density_min"),
        ("garbage", [], "features.npz"),
        ("mismatch", [], "features.npz"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(
    digits_cache: Path, tmp_path: Path, setup: str, extra: list[str], needle: str
) -> None:
    path = digits_cache / "digits_high" / "features.npz"
    if setup == "garbage":
        path.write_bytes(b"this is not an npz file")
    elif setup == "mismatch":
        with np.load(path, allow_pickle=False) as z:
            arrays = dict(z)
        arrays["all_targets"] = arrays["all_targets"][:-3]
        np.savez(path, **arrays)
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli(
        "--feature_cache_dir", str(digits_cache), "--output_dir", str(out), *extra, cwd=out
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert list(out.iterdir()) == []  # no run folder: nothing started
    assert not (digits_cache / "digits_low" / "knn_cache").exists()


def test_missing_feature_cache_dir_is_exit_2(tmp_path: Path) -> None:
    proc = run_cli("--feature_cache_dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_says_ranges_are_half_open(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "half-open" in text and "EXCLUDED" in text and "INCLUSIVE" not in text
    assert "198 configurations" in text


def test_a_failing_configuration_is_recorded_and_the_search_goes_on(
    digits_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssddbc.ssddbc._per_k as per_k
    import ssddbc.ssddbc.adaptive_clustering as ac
    from ssddbc.grid_search.batch_runner import run_batch

    real = ac.adaptive_density_clustering
    real_per_k = per_k.iter_cluster_percentiles

    def flaky(*args, **kwargs):
        if kwargs["k"] == 4:
            raise RuntimeError("boom at k=4")
        return real(*args, **kwargs)

    def flaky_per_k(*args, **kwargs):  # (X, targets, known, labeled, k, percentiles)
        if args[4] == 4:
            raise RuntimeError("boom at k=4")
        return real_per_k(*args, **kwargs)

    # Both paths: the per-k task, and each configuration alone once the per-k part failed.
    monkeypatch.setattr(ac, "adaptive_density_clustering", flaky)
    monkeypatch.setattr(per_k, "iter_cluster_percentiles", flaky_per_k)
    out = tmp_path / "out"
    code = run_batch(
        [
            "--feature_cache_dir",
            str(digits_cache),
            "--output_dir",
            str(out),
            *SMALL_GRID,
            "--n_jobs",
            "1",
            "--quiet",
        ]
    )
    assert code == 1
    run_dir = _run_dir(out)
    rows = _rows(run_dir)
    assert len(rows) == 24
    failed = [r for r in rows if r["status"] == "error"]
    assert {r["k"] for r in failed} == {"4"} and len(failed) == 6
    assert all("boom at k=4" in r["error"] for r in failed)
    summary = _summary(run_dir)
    assert summary["failed_configurations"] == 6
    assert summary["superclasses"]["digits_low"]["selected"]["k"] != 4


def test_worker_recomputes_a_graph_that_vanished_mid_run(digits_cache: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from knncache import PersistentStore
    from ssddbc.data import load_superclass
    from ssddbc.evaluation import evaluation_mask
    from ssddbc.grid_search._tasks import ConfigTask, evaluate_config, prepare_inputs

    d = load_superclass(digits_cache, "digits_low")
    store = PersistentStore(digits_cache / "digits_low" / "knn_cache")
    mask = evaluation_mask(d.n, train_size=d.train_size, mode="test")
    shared = prepare_inputs(
        store, d.features, d.targets, d.known_mask, d.labeled_mask, mask, k_max=6
    )
    task = ConfigTask(
        shared=shared, k=5, density_percentile=65, group="digits_low", feature_source=str(d.source)
    )
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        expected = pool.submit(evaluate_config, task).result()
    assert expected.ok and not expected.knn_fallback
    store.clear()  # someone clears the store while the search runs
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        got = pool.submit(evaluate_config, task).result()
    assert got.ok, got.error
    assert got.knn_fallback
    assert got.metrics() == expected.metrics()


def test_summary_says_whether_the_silhouette_was_sampled(
    digits_cache: Path, tmp_path: Path
) -> None:
    from ssddbc.grid_search._plan import SearchPlan
    from ssddbc.grid_search.batch_runner import run_batch

    args = [
        "--feature_cache_dir",
        str(digits_cache),
        "--superclasses",
        "digits_low",
        "--k_min",
        "5",
        "--k_max",
        "7",
        "--density_min",
        "50",
        "--density_max",
        "55",
        "--n_jobs",
        "1",
        "--quiet",
    ]
    assert run_batch([*args, "--output_dir", str(tmp_path / "exact")]) == 0
    exact = _summary(_run_dir(tmp_path / "exact"))["superclasses"]["digits_low"]
    assert exact["silhouette"].startswith("exact")
    # Force the large-N path on the 901 digits: sampled silhouette, said so in the summary.
    plan = SearchPlan(pairwise_max_n=500, silhouette_sample_size=100, exact_silhouette_max_n=500)
    assert run_batch([*args, "--output_dir", str(tmp_path / "sampled")], plan=plan) == 0
    run_dir = _run_dir(tmp_path / "sampled")
    sampled = _summary(run_dir)["superclasses"]["digits_low"]
    assert sampled["silhouette"].startswith("sampled") and "100" in sampled["silhouette"]
    assert {r["silhouette_sample"] for r in _rows(run_dir)} == {"100"}
    # Its standard error is next to it, positive (100 of the ~650 unlabelled points), and
    # also in the summary's selected configuration; exact rows carry 0.0.
    assert all(float(r["silhouette_se"]) > 0 for r in _rows(run_dir))
    assert sampled["selected"]["silhouette_se"] > 0
    assert {float(r["silhouette_se"]) for r in _rows(_run_dir(tmp_path / "exact"))} == {0.0}
    assert exact["selected"]["silhouette_se"] == 0.0
