"""``ssddbc-search`` under signals, dead processes and full disks, in real processes.

Every interrupted run is resumed and compared with an uninterrupted one; after every kill the
test looks for leftover processes by a marker in their environment (inherited by every
worker, re-parented orphans included), so no worker can hide from it.
"""

from __future__ import annotations

import csv
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.system.conftest import run_cli

MARK = "SSDDBC_TEST_RUN"
TIMING = {"seconds"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def _marked(token: str) -> list[int]:
    """Pids of live processes whose environment carries ``MARK=token``."""
    needle = f"{MARK}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as fh:
                if fh.read().rsplit(") ", 1)[-1][0] == "Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def _no_process_left(token: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _marked(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(token) == [], "processes outlived the run"


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _workers(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(child)
        except OSError:
            pass
    return out


def _start(cache: Path, out: Path, token: str, *extra: str) -> subprocess.Popen[str]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(cache),
            "--output_dir",
            str(out),
            "--n_jobs",
            "2",
            "--quiet",
            *extra,
        ],
        cwd=out,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, MARK: token},
    )


def _journal_rows(out: Path) -> int:
    found = list(out.glob("run_*/results.csv"))
    return found[0].read_bytes().count(b"\n") - 1 if found else 0


@pytest.fixture(scope="module")
def clean_rows(digits_cache_master: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Rows of an uninterrupted run over both digits superclasses (396 configurations)."""
    root = tmp_path_factory.mktemp("clean")
    shutil.copytree(digits_cache_master, root / "fc")
    proc = run_cli(
        "--feature_cache_dir",
        str(root / "fc"),
        "--output_dir",
        str(root / "out"),
        "--quiet",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = (root / "out").iterdir()
    rows = _rows(run)
    assert len(rows) == 396 and all(r["status"] == "ok" for r in rows)
    return rows


def _wait_for(proc: subprocess.Popen[str], out: Path, when: str, seed: int) -> None:
    deadline = time.monotonic() + 120
    if when == "random":
        time.sleep(random.Random(seed).uniform(0.3, 5.0))
        return
    while time.monotonic() < deadline and proc.poll() is None:
        if when == "startup" and _children(proc.pid):
            return  # the pool is starting: its workers are still importing
        if when == "midrun" and _journal_rows(out) >= 30:
            return
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("sig", "when", "seed"),
    [
        (sig, when, seed)
        for sig in (signal.SIGKILL, signal.SIGTERM)
        for when, seed in (("startup", 0), ("midrun", 0), ("random", 1), ("random", 2))
    ]
    + [(signal.SIGINT, "startup", 0), (signal.SIGINT, "midrun", 0)],
    ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v),
)
def test_interrupted_run_resumes_to_the_uninterrupted_rows(
    digits_cache: Path, tmp_path: Path, clean_rows: list, sig: int, when: str, seed: int
) -> None:
    token = uuid.uuid4().hex
    out = tmp_path / "out"
    proc = _start(digits_cache, out, token)
    _wait_for(proc, out, when, seed)
    finished = proc.poll() is not None
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    _no_process_left(token)
    if sig != signal.SIGKILL:
        assert "Traceback" not in err, err
    # (A SIGKILLed parent cannot stop a worker that is still inside multiprocessing's own
    # start-up from printing why it stops: it reads its start-up data from the dead parent.)
    runs = [run for run in out.glob("run_*") if (run / "config.json").exists()]
    if not runs:
        # Killed while Python was still importing, before the run installed its handlers,
        # or before its run folder existed: the default action, and nothing to resume.
        assert when == "random" and proc.returncode in (-sig, 143), err
        return
    if sig != signal.SIGKILL:
        assert "leaked semaphore" not in err, err
        if not finished and proc.returncode == -sig and when == "random":
            # The signal came after the run had ended and put the default handlers back
            # (the interpreter's teardown): the default action, with nothing left undone.
            (run_dir,) = runs
            assert _rows(run_dir) == clean_rows
            return
        if not finished:
            assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
            assert len(err.strip().splitlines()) == 1, err
    (run_dir,) = runs
    if proc.returncode != 0:
        if sig != signal.SIGKILL:
            assert f"--resume {run_dir}" in err
        resumed = run_cli("--resume", str(run_dir), "--n_jobs", "2", "--quiet", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
    assert _rows(run_dir) == clean_rows


def test_a_worker_killed_mid_run_is_replaced_and_its_configurations_retried(
    digits_cache: Path, tmp_path: Path, clean_rows: list
) -> None:
    token = uuid.uuid4().hex
    out = tmp_path / "out"
    proc = _start(digits_cache, out, token)
    _wait_for(proc, out, "midrun", 0)
    workers = _workers(proc.pid)
    assert workers, "no worker to kill"
    os.kill(workers[0], signal.SIGKILL)  # an out-of-memory kill, say
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "a worker process died; a new pool retries" in err
    (run_dir,) = out.glob("run_*")
    assert _rows(run_dir) == clean_rows  # every configuration, the retried ones included
    _no_process_left(token)


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return done.returncode == 0


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_disk_full_is_one_line_exit_1_and_the_journal_resumable(
    digits_cache: Path, tmp_path: Path, clean_rows: list, how: str
) -> None:
    # Warm the knn caches first, so that only the run folder's files are written.
    warm = run_cli(
        "--feature_cache_dir",
        str(digits_cache),
        "--output_dir",
        str(tmp_path / "warm"),
        "--k_min",
        "3",
        "--k_max",
        "21",
        "--density_min",
        "40",
        "--density_max",
        "45",
        "--quiet",
        cwd=tmp_path,
    )
    assert warm.returncode == 0, warm.stderr
    out = tmp_path / "full"
    args = [
        sys.executable,
        "-m",
        "ssddbc.grid_search.batch_runner",
        "--feature_cache_dir",
        str(digits_cache),
        "--output_dir",
        str(out),
        "--n_jobs",
        "2",
        "--quiet",
    ]
    if how == "tmpfs":
        if not _tmpfs(out, "64k"):
            pytest.skip("needs root and mount for a small tmpfs")
        # Leave a few pages: config.json and the first rows fit, the rest does not.
        (out / "filler").write_bytes(b"\0" * (64 - 12) * 1024)
        preexec = None
    else:
        out.mkdir()
        preexec = lambda: _limit_file_size(20_000)  # noqa: E731 - a one-line preexec_fn
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=240, preexec_fn=preexec, cwd=tmp_path
        )
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and "cannot write" in err[0] and "--resume" in err[0], err
        (run_dir,) = out.glob("run_*")
        assert 0 < len(_rows(run_dir)) < 396
        moved = tmp_path / "moved"
        shutil.copytree(run_dir, moved)  # the disk gets space again: resume elsewhere
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(out)], check=False)
    resumed = run_cli("--resume", str(moved), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(moved) == clean_rows


CALLER = """
import os, sys
with open(sys.argv[1], "a") as fh:  # no main guard: a worker importing us would re-run this
    fh.write(f"{os.getpid()}\\n")
import numpy as np
from ssddbc.grid_search.api import run_clustering_search_on_features
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 8)).astype(np.float32)
y = rng.integers(0, 4, 200)
known = y < 2
res = run_clustering_search_on_features(
    X, y, known, known & (rng.random(200) < 0.5), k_range=[3, 5], density_range=[50, 70],
    max_workers=2,
)
print("finished", res.best_params["k"])
"""


@pytest.mark.parametrize("how", ["path", "module"])
def test_workers_never_import_the_callers_main_module(tmp_path: Path, how: str) -> None:
    script = tmp_path / "heavy_caller.py"
    script.write_text(CALLER)
    marker = tmp_path / "imports.txt"
    cmd = [str(script)] if how == "path" else ["-m", "heavy_caller"]
    proc = subprocess.run(
        [sys.executable, *cmd, str(marker)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout
    assert len(marker.read_text().split()) == 1  # imported once: by the caller itself


# Real processes killed at random points, disk-full mounts: the slow tier.
pytestmark = pytest.mark.slow
