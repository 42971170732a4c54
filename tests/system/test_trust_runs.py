"""``ssddbc-search`` trusts only its command line: run folders, store folders, names, lists.

A run folder edited by someone else never decides what code runs; ``--clear_knn_cache``
never removes what is not a store entry; a resumed run keeps every superclass's neighbour
graph disclosure; names that cannot become files, superclass lists that are not files, and
grids too wide for a superclass are refused up front with one line and exit status 2.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssddbc import InvalidInputError
from ssddbc.grid_search._files import check_name_lengths, write_bytes
from ssddbc.grid_search._inputs import APPROXIMATE_NOTE
from ssddbc.grid_search.batch_runner import run_batch
from tests.system.conftest import run_cli

TINY = ["--k_min", "3", "--k_max", "5", "--density_min", "50", "--density_max", "55"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    try:
        code = run_batch(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def _search(cache: Path, out: Path, *extra: str) -> list[str]:
    return ["--feature_cache_dir", str(cache), "--output_dir", str(out), "--n_jobs", "1",
            "--quiet", *TINY, *extra]  # fmt: skip


def _one_run(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


# ---- a tampered run folder --------------------------------------------------------------


class _Planted:
    """Unpickling this creates the file ``path`` (what code planted in a pickle can do)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.fixture
def tampered_run(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """A finished run whose config.json now names a planted pickle and allows unpickling."""
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out, "--superclasses", "digits_low"))
    assert code == 0, err
    run = _one_run(out)
    marker = tmp_path / "code_ran"
    planted = tmp_path / "planted"
    (planted / "digits_low").mkdir(parents=True)
    (planted / "digits_low" / "features.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    config = json.loads((run / "config.json").read_text())
    config["allow_pickle"] = True
    config["feature_cache_dir"] = str(planted)
    (run / "config.json").write_text(json.dumps(config))
    return run, marker


@pytest.mark.slow  # a CLI subprocess
def test_a_tampered_run_folder_never_unpickles(tampered_run: tuple[Path, Path]) -> None:
    run, marker = tampered_run
    before = (run / "results.csv").read_bytes()
    proc = run_cli("--resume", str(run), cwd=run.parent)
    assert not marker.exists(), "the planted pickle was loaded"
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "features.pkl" in proc.stderr, proc.stderr
    assert (run / "results.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--allow_pickle"], "--feature_cache_dir"),
        (["--allow_pickle", "--feature_cache_dir", "CACHE"], "recorded"),
    ],
    ids=["allow_pickle_alone", "another_folder"],
)
def test_allow_pickle_on_a_resume_unpickles_only_the_folder_the_command_names(
    tampered_run: tuple[Path, Path],
    digits_cache: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    run, marker = tampered_run
    argv = [str(digits_cache) if a == "CACHE" else a for a in extra]
    code, err = _run(capsys, "--resume", str(run), *argv)
    assert not marker.exists(), "the planted pickle was loaded"
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_a_resume_refuses_a_recorded_feature_cache_reached_through_a_link(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out, "--superclasses", "digits_low"))
    assert code == 0, err
    run = _one_run(out)
    link = tmp_path / "link"
    link.symlink_to(digits_cache)
    config = json.loads((run / "config.json").read_text())
    config["feature_cache_dir"] = str(link)
    (run / "config.json").write_text(json.dumps(config))
    code, err = _run(capsys, "--resume", str(run))
    assert code == 2 and len(err) == 1 and "symbolic link" in err[0], err


# ---- --clear_knn_cache aimed at a feature cache ----------------------------------------


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_clear_knn_cache_never_deletes_a_feature_cache(
    digits_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    # A run that put its stores into the feature cache itself: entries beside features.npz.
    code, err = _run(
        capsys,
        *_search(digits_cache, tmp_path / "first", "--superclasses", "digits_low"),
        "--knn_cache_dir",
        str(digits_cache),
    )
    assert code == 0, err
    folder = digits_cache / "digits_low"
    (folder / "notes.txt").write_text("mine")
    before = sorted(p.name for p in folder.iterdir())
    features = (folder / "features.npz").read_bytes()
    if how == "flag":
        extra = ["--knn_cache_dir", str(digits_cache)]
    else:
        extra = []
        monkeypatch.setenv("SSDDBC_KNN_CACHE_DIR", str(digits_cache))
    out = tmp_path / "out"
    code, err = _run(
        capsys,
        *_search(digits_cache, out, "--superclasses", "digits_low", "--clear_knn_cache"),
        *extra,
    )
    assert code == 2 and len(err) == 1, err
    assert str(folder) in err[0] and "features.npz" in err[0], err
    assert sorted(p.name for p in folder.iterdir()) == before  # not even an entry removed
    assert (folder / "features.npz").read_bytes() == features
    assert (folder / "notes.txt").read_text() == "mine"
    assert not out.exists()


def test_clear_knn_cache_removes_entries_only(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = tmp_path / "stores"
    base = ["--superclasses", "digits_low", "--knn_cache_dir", str(stores)]
    code, err = _run(capsys, *_search(digits_cache, tmp_path / "first", *base))
    assert code == 0, err
    (stores / "digits_low" / "notes.txt").write_text("mine")
    argv = _search(digits_cache, tmp_path / "again", *base, "--clear_knn_cache")
    argv.remove("--quiet")
    code, err = _run(capsys, *argv)
    assert code == 0, err
    assert any("cleared" in line and "(1 entry removed)" in line for line in err), err
    assert (stores / "digits_low" / "notes.txt").read_text() == "mine"


# ---- the knn block after a resume -------------------------------------------------------


def test_a_resume_keeps_the_knn_block_of_a_superclass_done_before_the_interruption(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    hnsw = ["--superclasses", "digits_low,digits_high", "--knn_method", "hnsw"]
    code, err = _run(capsys, *_search(digits_cache, out, *hnsw))
    assert code == 0, err
    run = _one_run(out)
    full = json.loads((run / "summary.json").read_text())["superclasses"]
    # What a run interrupted after digits_low's last configuration leaves: digits_low's
    # rows in the journal, nothing of digits_high, no summary.
    journal = run / "results.csv"
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [x for x in lines[1:] if x.startswith("digits_low,")]
    assert len(kept) == 3
    journal.write_text("".join(kept), encoding="utf-8")
    (run / "summary.json").unlink()
    code, err = _run(capsys, "--resume", str(run), "--n_jobs", "1", "--quiet")
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())["superclasses"]
    for name in ("digits_low", "digits_high"):
        knn = summary[name].get("knn")
        assert knn is not None, f"{name}: no knn block"
        assert knn["method"] == "hnsw" and knn["note"] == APPROXIMATE_NOTE
        assert knn["recall"] == full[name]["knn"]["recall"]
        assert knn["params"] == full[name]["knn"]["params"]


# ---- names that cannot become files ------------------------------------------------------


def test_an_over_long_superclass_name_is_refused_before_any_work(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "s" * 240  # a legal folder name; heatmap_<name>.png is not a legal file name
    (digits_cache / name).mkdir()
    shutil.copy(digits_cache / "digits_low" / "features.npz", digits_cache / name)
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out, "--superclasses", name))
    assert code == 2 and len(err) == 1, err
    assert "too long" in err[0] and name[:40] in err[0], err
    assert not out.exists()
    assert not (digits_cache / name / "knn_cache").exists()  # no search ran


def test_the_longest_accepted_name_can_be_written(tmp_path: Path) -> None:
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    name = "s" * (limit - len("heatmap_.png") - len("..0123456789abcdef.tmp"))
    check_name_lengths([name], ["png", "svg"], tmp_path)  # accepted, and it fits:
    write_bytes(tmp_path / f"heatmap_{name}.png", b"png")
    assert (tmp_path / f"heatmap_{name}.png").read_bytes() == b"png"
    with pytest.raises(InvalidInputError, match="too long"):
        check_name_lengths([name + "s"], ["png"], tmp_path)


# ---- --superclass_file that is not a regular file ----------------------------------------


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


@pytest.mark.slow  # CLI subprocesses (a FIFO would block an in-process read forever)
@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "huge"])
def test_superclass_file_that_is_no_small_regular_file_is_refused(
    digits_cache: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "dev_zero":
        listing = Path("/dev/zero")
    elif kind == "fifo":
        listing = tmp_path / "names.fifo"
        os.mkfifo(listing)
    else:
        listing = tmp_path / "names.txt"
        with open(listing, "w", encoding="utf-8") as fh:
            fh.write("digits_low\n")
            fh.truncate(2 * 2**30)  # sparse: 2 GiB of NUL after one name
    env = dict(os.environ)
    argv = ["--feature_cache_dir", str(digits_cache), "--output_dir", str(tmp_path / "out"),
            "--superclass_file", str(listing), *TINY]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "ssddbc.grid_search.batch_runner", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=_limit_memory,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(listing) in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# ---- duplicate superclasses --------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "file"])
def test_a_superclass_named_twice_is_searched_once(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    if how == "flag":
        given = ["--superclasses", "digits_low,digits_low"]
    else:
        listing = tmp_path / "names.txt"
        listing.write_text("digits_low\ndigits_low\n", encoding="utf-8")
        given = ["--superclass_file", str(listing)]
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out, *given))
    assert code == 0, err
    assert len(err) == 1 and "warning" in err[0] and "digits_low" in err[0], err
    run = _one_run(out)
    assert run.name.endswith("_1sc")
    assert json.loads((run / "config.json").read_text())["superclasses"] == ["digits_low"]
    assert len((run / "results.csv").read_text().splitlines()) == 1 + 2


def test_a_resume_refuses_a_run_folder_naming_a_superclass_twice(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, *_search(digits_cache, out, "--superclasses", "digits_low"))
    assert code == 0, err
    run = _one_run(out)
    config = json.loads((run / "config.json").read_text())
    config["superclasses"] = ["digits_low", "digits_low"]
    (run / "config.json").write_text(json.dumps(config))
    code, err = _run(capsys, "--resume", str(run))
    assert code == 2 and len(err) == 1 and "superclasses" in err[0] and "twice" in err[0], err


# ---- a grid too wide for a superclass ----------------------------------------------------


def test_an_out_of_range_k_max_is_one_short_line_naming_the_superclass(
    digits_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _search(digits_cache, tmp_path / "out", "--superclasses", "digits_high")
    argv[argv.index("--k_max") + 1] = "100000"
    code, err = _run(capsys, *argv)
    assert code == 2 and len(err) == 1, err
    assert len(err[0]) < 200 and "'digits_high'" in err[0] and "--k_max" in err[0], err
    assert not (tmp_path / "out").exists()
