"""``ssddbc-search`` as researchers use it (issue 12): demo on purpose, output streams, the
end table, ``--show``, store placement, the metric, dashed flags, named choices, defaults.

Every run here is a real process on the small digits grid.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc.grid_search._cli import build_parser
from ssddbc.ssddbc._params import AlgorithmParams
from tests.system.conftest import SMALL_GRID, run_cli

pytestmark = pytest.mark.slow

TIMING = {"seconds", "pid"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "results.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _run_dir(proc: subprocess.CompletedProcess[str]) -> Path:
    lines = [x for x in proc.stdout.splitlines() if x.startswith("run folder: ")]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return Path(lines[0].removeprefix("run folder: "))


def _search(cache: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    args = ["--feature_cache_dir", str(cache), "--output_dir", str(out), *SMALL_GRID, *extra]
    if env is None:
        return run_cli(*args, cwd=out)
    return subprocess.run(
        [sys.executable, "-m", "ssddbc.grid_search.batch_runner", *args],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )


# ---- demo on purpose ------------------------------------------------------------------


def test_no_feature_cache_and_no_demo_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("--n_jobs", "1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--demo" in proc.stderr and "--feature_cache_dir" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no demo cache, no run folder
    both = run_cli("--demo", "--feature_cache_dir", str(tmp_path), cwd=tmp_path)
    assert both.returncode == 2 and "cannot be combined" in both.stderr


def test_demo_runs_on_purpose_and_quiet_keeps_the_answer(tmp_path: Path) -> None:
    loud = run_cli("--demo", "--n_jobs", "1", *SMALL_GRID, cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert (tmp_path / "ssddbc_demo" / "feature_cache" / "digits_low").is_dir()
    run1 = _run_dir(loud)
    assert run1.parent == (tmp_path / "ssddbc_runs").resolve()
    assert "digits_low" in loud.stdout and "mean of 2" in loud.stdout
    # Progress (demo build, reading, preparation, configurations) is on stderr only.
    assert "demo: built-in digits" in loud.stderr
    assert "read 2 superclass(es)" in loud.stderr
    assert "digits_low: neighbour graph (N=" in loud.stderr
    assert "digits_low: distance matrix" in loud.stderr and "done in" in loud.stderr
    assert "[ssddbc-search]" in loud.stderr
    assert "neighbour graph" not in loud.stdout and "demo:" not in loud.stdout
    quiet = run_cli("--demo", "--n_jobs", "1", "--quiet", *SMALL_GRID, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    run2 = _run_dir(quiet)
    assert run2 != run1 and "mean of 2" in quiet.stdout
    assert _rows(run1) == _rows(run2)


# ---- the end table and --show ---------------------------------------------------------


def test_table_has_mean_gap_and_ties_and_show_reprints_it(
    digits_cache: Path, tmp_path: Path
) -> None:
    proc = _search(digits_cache, tmp_path / "out", "--n_jobs", "1", "--eval", "unlabelled")
    assert proc.returncode == 0, proc.stderr
    run_dir = _run_dir(proc)
    summary = _json(run_dir / "summary.json")
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sels, gaps = [], []
    for name, entry in summary["superclasses"].items():
        assert "oracle_best_by_test_accuracy" not in entry
        oracle = entry["oracle_best_by_unlabelled_accuracy"]
        sel = entry["selected"]
        scores = [float(r["score"]) for r in rows if r["superclass"] == name]
        assert entry["ties_at_best_score"] == scores.count(max(scores)) >= 1
        assert entry["oracle_gap"]["all_acc"] == pytest.approx(oracle["all_acc"] - sel["all_acc"])
        assert oracle["all_acc"] >= sel["all_acc"]
        sels.append(sel["all_acc"])
        gaps.append(entry["oracle_gap"]["new_acc"])
    mean = summary["mean"]
    assert mean["superclasses"] == 2
    assert mean["selected"]["all_acc"] == pytest.approx(np.mean(sels))
    assert mean["oracle_gap"]["new_acc"] == pytest.approx(np.mean(gaps))
    assert "unlabelled split" in proc.stdout

    shown = run_cli("--show", str(run_dir), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    # The same table, from the files: every line of the run's stdout but the timing line.
    assert [x for x in shown.stdout.splitlines() if not x.startswith("knn:")] == [
        x for x in proc.stdout.splitlines() if not x.startswith("knn:")
    ]
    assert "interrupted" not in shown.stdout


def test_show_says_how_many_configurations_an_interrupted_run_misses(
    digits_cache: Path, tmp_path: Path
) -> None:
    proc = _search(digits_cache, tmp_path / "out", "--n_jobs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    run_dir = _run_dir(proc)
    journal = run_dir / "results.csv"
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    # What a run killed after 5 configurations leaves: a journal of 5 rows, no summary.
    journal.write_text("".join(lines[:6]) + lines[6][:10], encoding="utf-8")
    (run_dir / "summary.json").unlink()
    before = journal.read_bytes()
    shown = run_cli("--show", str(run_dir), cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr
    assert "interrupted: 19 of 24 configurations missing (5 done); resume with: " in (shown.stdout)
    assert "digits_low" in shown.stdout
    assert journal.read_bytes() == before  # --show writes nothing, not even a repair
    resumed = run_cli("--resume", str(run_dir), "--n_jobs", "1", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = run_cli("--show", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0 and "interrupted" not in again.stdout
    bad = run_cli("--show", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "config.json" in bad.stderr


# ---- config.json ----------------------------------------------------------------------


def test_config_records_versions_host_and_times(digits_cache: Path, tmp_path: Path) -> None:
    import knncache
    import ssddbc

    proc = _search(digits_cache, tmp_path / "out", "--n_jobs", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    cfg = _json(_run_dir(proc) / "config.json")
    env = cfg["environment"]
    assert env["packages"]["knncache"] == knncache.__version__
    assert env["packages"]["ssddbc"] == ssddbc.__version__
    assert env["packages"]["numpy"] == np.__version__
    for name in ("faiss", "sklearn", "scipy"):
        assert env["packages"][name]
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["host"]
    assert env["started"] <= env["finished"]  # same-offset ISO strings order as times
    assert cfg["metric"] == "euclidean" and cfg["identity"]["metric"] == "euclidean"
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert f"ssddbc {ssddbc.__version__}, knncache {knncache.__version__}" in version.stdout


# ---- metric ---------------------------------------------------------------------------


def test_cosine_search_equals_euclidean_on_normalised_features(
    digits_cache: Path, tmp_path: Path
) -> None:
    from ssddbc._metric import l2_normalize

    normalised = tmp_path / "normalised"
    shutil.copytree(digits_cache, normalised)
    for path in normalised.glob("*/features.npz"):
        with np.load(path, allow_pickle=False) as z:
            arrays = dict(z)
        for key in ("all_features", "train_features", "test_features"):
            if key in arrays:
                arrays[key] = l2_normalize(arrays[key])
        np.savez(path, **arrays)
    cos = _search(digits_cache, tmp_path / "c", "--n_jobs", "1", "--quiet", "--metric", "cosine")
    assert cos.returncode == 0, cos.stderr
    euc = _search(normalised, tmp_path / "e", "--n_jobs", "1", "--quiet")
    assert euc.returncode == 0, euc.stderr
    raw = _search(digits_cache, tmp_path / "r", "--n_jobs", "1", "--quiet")
    assert raw.returncode == 0, raw.stderr
    c_rows, e_rows, r_rows = _rows(_run_dir(cos)), _rows(_run_dir(euc)), _rows(_run_dir(raw))
    keys = ("superclass", "k", "density_percentile", "n_clusters", "all_acc", "new_acc")
    assert [[r[k] for k in keys] for r in c_rows] == [[r[k] for k in keys] for r in e_rows]
    for a, b in zip(c_rows, e_rows, strict=True):
        assert float(a["score"]) == pytest.approx(float(b["score"]), rel=1e-5, abs=1e-6)
    assert [r["score"] for r in c_rows] != [r["score"] for r in r_rows]
    # Both metrics' entries live side by side in each store: the metric is in the key.
    for name in ("digits_low", "digits_high"):
        entries = [p for p in (digits_cache / name / "knn_cache").iterdir() if p.is_dir()]
        assert len(entries) == 2
        metrics = sorted(_json(p / "meta.json")["metric"] for p in entries)
        assert metrics == ["cosine", "euclidean"]
    cfg = _json(_run_dir(cos) / "config.json")
    assert cfg["metric"] == "cosine" and cfg["identity"]["metric"] == "cosine"
    refused = run_cli("--resume", str(_run_dir(cos)), "--metric", "euclidean", cwd=tmp_path)
    assert refused.returncode == 2 and "--metric" in refused.stderr


# ---- store placement ------------------------------------------------------------------


def _read_only(tmp_path: Path, *sources: Path) -> tuple[list[str], list[Path]]:
    """A command prefix that sees each of ``sources`` read-only at the returned paths.

    As root: real read-only bind mounts in a private mount namespace. Otherwise: chmod.
    """
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"):
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            steps, mounts = [], []
            for i, src in enumerate(sources):
                mnt = tmp_path / f"ro_mount{i}"
                mnt.mkdir(parents=True)
                q, m = shlex.quote(str(src)), shlex.quote(str(mnt))
                steps.append(f"mount --bind {q} {m} && mount -o remount,bind,ro {m}")
                mounts.append(mnt)
            return ["unshare", "-m", "sh", "-c", " && ".join(steps) + ' && exec "$@"', "sh"], mounts
    if os.geteuid() == 0:
        pytest.skip("needs unshare -m and mount as root, or a non-root user for chmod")
    for src in sources:
        for path in [src, *src.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    return [], list(sources)


def _run_prefixed(prefix: list[str], *args: str, cwd: Path, env: dict[str, str]) -> Any:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ssddbc.grid_search.batch_runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **env},
    )


def test_read_only_feature_cache_with_a_writable_then_a_read_only_store(
    digits_cache: Path, tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    out = tmp_path / "out"
    out.mkdir()
    prefix, (ro,) = _read_only(tmp_path, digits_cache)
    common = [
        "--feature_cache_dir",
        str(ro),
        "--output_dir",
        str(out),
        *SMALL_GRID,
        "--n_jobs",
        "1",
    ]
    cold = _run_prefixed(prefix, *common, "--knn_cache_dir", str(stores), cwd=out, env={})
    assert cold.returncode == 0, cold.stderr
    assert "warning" not in cold.stderr.lower(), cold.stderr
    assert _json(_run_dir(cold) / "summary.json")["this_invocation"]["knn_searches"] == 2
    assert sorted(p.name for p in stores.iterdir()) == ["digits_high", "digits_low"]
    assert not (digits_cache / "digits_low" / "knn_cache").exists()

    # The same stores, now read-only too (named through the environment variable): warm,
    # so every graph and array is a hit and nothing is written or warned about.
    if prefix:
        prefix2, (ro_cache, ro_stores) = _read_only(tmp_path / "both", digits_cache, stores)
        common2 = [*common]
        common2[1] = str(ro_cache)
    else:
        prefix2, (ro_stores,) = _read_only(tmp_path, stores)
        common2 = common
    warm = _run_prefixed(
        prefix2, *common2, "--quiet", cwd=out, env={"SSDDBC_KNN_CACHE_DIR": str(ro_stores)}
    )
    assert warm.returncode == 0, warm.stderr
    assert warm.stderr == ""
    inv = _json(_run_dir(warm) / "summary.json")["this_invocation"]
    assert (inv["knn_searches"], inv["knn_cache_hits"]) == (0, 2)
    assert _rows(_run_dir(cold)) == _rows(_run_dir(warm))

    # Cold, read-only and no store elsewhere: one warning line per superclass, with the fix.
    lone = _run_prefixed(prefix, *common, cwd=out, env={})
    assert lone.returncode == 0, lone.stderr
    warned = [x for x in lone.stderr.splitlines() if "warning" in x]
    assert warned and all(x.startswith("ssddbc-search: warning: ") for x in warned)
    assert "--knn_cache_dir" in lone.stderr
    assert "KnnCacheWarning" not in lone.stderr and ".py:" not in lone.stderr


def test_knn_max_bytes_caps_the_store(digits_cache: Path, tmp_path: Path) -> None:
    first = _search(
        digits_cache, tmp_path / "a", "--n_jobs", "1", "--quiet", "--superclasses", "digits_low"
    )
    assert first.returncode == 0, first.stderr
    store = digits_cache / "digits_low" / "knn_cache"
    assert len([p for p in store.iterdir() if p.is_dir()]) == 1
    # A cosine run (another entry) under a 1-byte cap: the old entry is evicted, the one in
    # use never is.
    capped = _search(
        digits_cache,
        tmp_path / "b",
        "--n_jobs",
        "1",
        "--quiet",
        "--superclasses",
        "digits_low",
        "--metric",
        "cosine",
        "--knn-max-bytes",
        "1K",
    )
    assert capped.returncode == 0, capped.stderr
    entries = [p for p in store.iterdir() if p.is_dir()]
    assert [_json(p / "meta.json")["metric"] for p in entries] == ["cosine"]
    assert _json(_run_dir(capped) / "config.json")["knn_max_bytes"] == 1024
    bad = _search(digits_cache, tmp_path / "c", "--knn_max_bytes", "lots")
    assert bad.returncode == 2 and "invalid size 'lots'" in bad.stderr


def test_byte_sizes() -> None:
    parse = build_parser().parse_args
    base = ["--demo"]
    for text, value in [
        ("123", 123),
        ("500M", 500 * 2**20),
        ("2G", 2 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("4k", 4096),
    ]:
        assert parse([*base, "--knn_max_bytes", text]).knn_max_bytes == value


# ---- conventions ----------------------------------------------------------------------


def test_dashed_flags_are_accepted_for_every_flag(digits_cache: Path, tmp_path: Path) -> None:
    dashed = [a.replace("_", "-") if a.startswith("--") else a for a in SMALL_GRID]
    proc = run_cli(
        "--feature-cache-dir", str(digits_cache), "--output-dir", str(tmp_path / "o"),
        *dashed, "--n-jobs", "1", "--dense-method", "median", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plain = _search(digits_cache, tmp_path / "p", "--n_jobs", "1", "--quiet")
    assert _rows(_run_dir(proc)) == _rows(_run_dir(plain))
    # Generic: a flag added to the parser later gets its dashed spelling too.
    parser = build_parser()
    parser.add_argument("--some_new_flag", type=int)
    args = parser.parse_args(["--demo", "--some-new-flag=4", "--k-min", "5"])
    assert (args.some_new_flag, args.k_min) == (4, 5)
    assert parser._underscored(["--k-min", "--", "--k-min"]) == ["--k_min", "--", "--k-min"]  # type: ignore[attr-defined]


def test_help_shows_real_defaults_and_lists_each_flag_once(tmp_path: Path) -> None:
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 3)" in text and "[3]" not in text  # k_min's default, stated once
    assert "(default: median (1))" in text and "(default: euclidean)" in text
    assert "--k-min" not in text  # the aliases are described once, not listed
    assert "also accepted as --flag-name" in text


def test_named_choices_beside_the_numbers(digits_cache: Path, tmp_path: Path) -> None:
    assert AlgorithmParams(dense_method="mean", assign_model="vote") == AlgorithmParams(  # type: ignore[arg-type]
        dense_method=0, assign_model=2
    )
    args = build_parser().parse_args(["--demo", "--dense_method", "exponential", "--co_mode", "3"])
    assert AlgorithmParams.from_namespace(args) == AlgorithmParams(dense_method=3, co_mode=3)
    named = _search(
        digits_cache, tmp_path / "n", "--n_jobs", "1", "--quiet", "--superclasses", "digits_low",
        "--dense_method", "mean", "--assign_model", "centroid",
    )  # fmt: skip
    numbered = _search(
        digits_cache, tmp_path / "m", "--n_jobs", "1", "--quiet", "--superclasses", "digits_low",
        "--dense_method", "0", "--assign_model", "1",
    )  # fmt: skip
    assert named.returncode == numbered.returncode == 0, named.stderr
    assert _json(_run_dir(named) / "config.json")["params"]["dense_method"] == 0
    assert _rows(_run_dir(named)) == _rows(_run_dir(numbered))
    bad = _search(digits_cache, tmp_path / "b", "--dense_method", "average")
    assert bad.returncode == 2 and "'average'" in bad.stderr and "median" in bad.stderr
