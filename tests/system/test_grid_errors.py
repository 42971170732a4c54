"""``ssddbc-search`` refuses bad input and changed inputs up front, with one line, exit 2."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc.grid_search._files import new_run_dir
from ssddbc.grid_search.batch_runner import run_batch

TINY = ["--k_min", "3", "--k_max", "5", "--density_min", "50", "--density_max", "55"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = run_batch(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def _search(cache: Path, out: Path, *extra: str) -> list[str]:
    return ["--feature_cache_dir", str(cache), "--output_dir", str(out), "--n_jobs", "1",
            "--quiet", "--superclasses", "digits_low", *TINY, *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--voting_k", "0"], "voting_k"),
        (["--co_mode", "1", "--co_manual", "-1"], "co_manual"),
        (["--co_mode", "1", "--co_manual", "nan"], "co_manual"),
        (["--co_mode", "1"], "co_manual"),
        (["--n_jobs", "0"], "--n_jobs"),
        (["--k_max", "4.5"], "--k_max"),
        (["--density_step", "2.5"], "--density_step"),
        (["--n_jobs", "-99"], "--n_jobs"),
    ],
)
def test_bad_flags_are_one_line_exit_2_before_anything(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra, needle
) -> None:
    (digits_cache / "digits_low" / "knn_cache").mkdir()
    code, err = _run(capsys, *_search(digits_cache, tmp_path / "out", "--clear_knn_cache", *extra))
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "out").exists()
    assert (digits_cache / "digits_low" / "knn_cache").is_dir()  # nothing deleted


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_unusable_output_dir_is_found_before_the_caches_are_cleared(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    cache = digits_cache / "digits_low" / "knn_cache"
    cache.mkdir()
    (cache / "keep").write_text("x")
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if kind == "file" else blocker / "runs"
    code, err = _run(capsys, *_search(digits_cache, out, "--clear_knn_cache"))
    assert code == 2 and len(err) == 1 and str(blocker) in err[0], err
    assert (cache / "keep").exists()


def test_clear_knn_cache_refuses_a_symlinked_cache(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "data").write_text("keep me")
    (digits_cache / "digits_low" / "knn_cache").symlink_to(elsewhere)
    code, err = _run(capsys, *_search(digits_cache, tmp_path / "out", "--clear_knn_cache"))
    assert code == 2 and len(err) == 1 and "symbolic link" in err[0], err
    assert (elsewhere / "data").read_text() == "keep me"


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return dict(z)


def _huge_header(path: Path) -> None:
    arrays = _npz(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 64)}
    )
    with zipfile.ZipFile(path, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, value)
            zf.writestr(
                f"{key}.npy", header.getvalue() if key == "all_features" else buf.getvalue()
            )


def _typed(path: Path) -> None:
    arrays = _npz(path)
    arrays["all_targets"] = arrays["all_targets"].astype(str)
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", [_huge_header, _typed], ids=["huge_shape", "wrong_type"])
def test_malformed_feature_files_are_one_line_exit_2(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage
) -> None:
    damage(digits_cache / "digits_low" / "features.npz")
    code, err = _run(capsys, *_search(digits_cache, tmp_path / "out"))
    assert code == 2 and len(err) == 1 and "digits_low" in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def finished_run(digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out))
    assert code == 0, err
    (run,) = out.iterdir()
    return run


def _edit_split(cache: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Edit the all_* arrays of digits_low and re-derive train_*/test_* from them."""
    path = cache / "digits_low" / "features.npz"
    arrays = _npz(path)
    edit(arrays)
    n_train = arrays["train_features"].shape[0]
    for key in ("features", "targets", "known_mask", "labeled_mask", "indices"):
        arrays[f"train_{key}"] = arrays[f"all_{key}"][:n_train]
        arrays[f"test_{key}"] = arrays[f"all_{key}"][n_train:]
    np.savez(path, **arrays)


def _nudge_features(a: dict[str, np.ndarray]) -> None:
    a["all_features"] = a["all_features"].copy()
    a["all_features"][0, 0] += 0.25


def _relabel_test_sample(a: dict[str, np.ndarray]) -> None:
    a["all_targets"] = a["all_targets"].copy()
    i = int(np.flatnonzero(~a["all_labeled_mask"])[-1])
    a["all_targets"][i] = (a["all_targets"][i] + 1) % 5


def _unlabel_one(a: dict[str, np.ndarray]) -> None:
    a["all_labeled_mask"] = a["all_labeled_mask"].copy()
    a["all_labeled_mask"][int(np.flatnonzero(a["all_labeled_mask"])[0])] = False


def _config(run: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    raw = json.loads((run / "config.json").read_text())
    edit(raw)
    (run / "config.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c, r: _edit_split(c, _nudge_features), "features of superclass 'digits_low'"),
        (lambda c, r: _edit_split(c, _relabel_test_sample), "targets of superclass"),
        (lambda c, r: _edit_split(c, _unlabel_one), "labeled_mask of superclass"),
        (lambda c, r: _config(r, lambda j: j.update(k_values=[3, 4, 5])), "the grid"),
        (
            lambda c, r: _config(r, lambda j: j["params"].update(voting_k=6)),
            "the algorithm parameters",
        ),
        (lambda c, r: _config(r, lambda j: j.update(eval_split="unlabelled")), "evaluation"),
        (
            lambda c, r: _config(r, lambda j: j["identity"].update(algorithm="ssddbc 0.0.0")),
            "the ssddbc version",
        ),
    ],
)
def test_resume_after_an_input_changed_is_refused(
    digits_cache: Path,
    finished_run: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Path, Path], None],
    needle: str,
) -> None:
    before = (finished_run / "results.csv").read_bytes()
    change(digits_cache, finished_run)
    code, err = _run(capsys, "--resume", str(finished_run))
    assert code == 2 and len(err) == 1, err
    assert needle in err[0] and "start a new run" in err[0], err
    assert (finished_run / "results.csv").read_bytes() == before  # rows never mixed


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda b: b.replace(b"superclass,", b"superclas,", 1), "unexpected header"),
        (lambda b: b + b"\xff\xfe garbage\n", "not UTF-8"),
        (lambda b: b + b"digits_low,3,50\n", "malformed"),
    ],
)
def test_a_damaged_journal_is_one_line_exit_2(
    finished_run: Path, capsys: pytest.CaptureFixture[str], damage, needle: str
) -> None:
    path = finished_run / "results.csv"
    path.write_bytes(damage(path.read_bytes()))
    code, err = _run(capsys, "--resume", str(finished_run))
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_noop_resume_keeps_the_knn_block_and_sweeps_temporaries(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    knn = json.loads((finished_run / "summary.json").read_text())["superclasses"]["digits_low"]
    assert "knn" in knn
    stale = finished_run / ".heatmap_digits_low.png.abc123.tmp"
    stale.write_bytes(b"half a png")
    foreign = finished_run / "notes.tmp"
    foreign.write_text("mine")
    code, err = _run(capsys, "--resume", str(finished_run))
    assert code == 0, err
    again = json.loads((finished_run / "summary.json").read_text())["superclasses"]["digits_low"]
    assert again["knn"] == knn["knn"]
    assert not stale.exists() and foreign.exists()
    assert not list(finished_run.glob(".*.tmp"))


def test_a_torn_last_line_is_repaired_on_resume(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = finished_run / "results.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # the last row torn mid-write
    code, err = _run(capsys, "--resume", str(finished_run))
    assert code == 0, err
    assert path.read_bytes().count(b"\n") == len(lines)


def test_concurrent_runs_get_distinct_run_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        made.append(new_run_dir(tmp_path / "out", 1))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)


def test_the_api_maps_no_file_of_its_closed_store(
    digits_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from ssddbc.data import load_superclass
    from ssddbc.grid_search.api import run_clustering_search_on_features

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the EphemeralStore goes here
    d = load_superclass(digits_cache, "digits_low")
    res = run_clustering_search_on_features(
        d.features, d.targets, d.known_mask, d.labeled_mask,
        k_range=[3, 4], density_range=[50], max_workers=1,
    )  # fmt: skip
    assert res.labels.shape == (d.n,)
    with open("/proc/self/maps") as fh:
        mapped = [line for line in fh if str(tmp_path) in line]
    assert mapped == []
    assert list(tmp_path.glob("knn_cache_*")) == []
    assert os.path.isdir(tmp_path)
