"""The original batch runner's flags, ``run_grid_search`` and ``parse_superclasses``.

In-process runs (``run_batch``, ``--no_parallel``) on the digits cache; the full default
grid in a real process is in ``tests/ssddbc/test_callers.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ssddbc import FeatureCacheError, InvalidInputError, SearchConfigError
from ssddbc.data import build_digits_feature_cache
from ssddbc.grid_search._batch_report import format_grid
from ssddbc.grid_search.batch_runner import parse_superclasses, run_batch, run_grid_search

TINY = ["--k_min", "10", "--k_max", "12", "--density_min", "40", "--density_max", "45"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fc") / "feature_cache"
    build_digits_feature_cache(root)
    return root


def _run(cache: Path, out: Path, *extra: str) -> int:
    return run_batch(
        ["--feature_cache_dir", str(cache), "--output_dir", str(out), "--no_parallel", *extra]
    )


def _refused(capsys: pytest.CaptureFixture[str], code: int, out: Path, *needles: str) -> None:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err
    assert not out.exists() or list(out.iterdir()) == []  # nothing started


# ---- the resolved grid ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ks", "dps", "sets", "text"),
    [
        (
            range(3, 21),
            range(40, 95, 5),
            1,
            "k 3..20 (18) × density 40..90 step 5 (11) = 198 configurations",
        ),
        ([12], [40], 1, "k 12 (1) × density 40 (1) = 1 configurations"),
        (
            [3, 5, 9],
            [40, 45],
            2,
            "k 3,5,9 (3) × density 40..45 step 5 (2) = 6 configurations per superclass, "
            "12 for 2 superclasses",
        ),
    ],
)
def test_format_grid(ks: range | list[int], dps: range | list[int], sets: int, text: str) -> None:
    assert format_grid(list(ks), list(dps), sets) == text


def test_the_run_prints_the_resolved_grid_and_records_the_lists(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _run(cache, out, "--superclasses", "digits_low", *TINY) == 0
    assert "grid: k 10..11 (2) × density 40 (1) = 2 configurations" in capsys.readouterr().err
    (run,) = out.iterdir()
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["k_values"] == [10, 11] and config["density_values"] == [40]
    report = (run / "digits_low" / "digits_low.txt").read_text(encoding="utf-8")
    assert "k values: [10, 11]" in report and "Success: 2/2 combinations" in report


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--k_min", "5", "--k_max", "5"], "upper bound of 6"),
        (["--density_min", "40", "--density_max", "40"], "upper bound of 41"),
    ],
)
def test_an_empty_half_open_range_is_one_line_exit_2(
    cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    needle: str,
) -> None:
    out = tmp_path / "out"
    _refused(capsys, _run(cache, out, *flags), out, "half-open", needle)


# ---- the original's fixed-behaviour flags -----------------------------------------------


def test_the_original_fixed_values_are_accepted(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    flags = ["--use_cluster_quality", "--cluster_distance_method", "3"]
    flags += ["--l2_components", "silhouette,separation", "--dense_method", "1"]
    flags += ["--co_mode", "2", "--assign_model", "3"]
    assert _run(cache, out, "--superclasses", "digits_low", *TINY, *flags, "--quiet") == 0
    (run,) = out.iterdir()
    plain = tmp_path / "plain"
    assert _run(cache, plain, "--superclasses", "digits_low", *TINY, "--quiet") == 0
    (run_plain,) = plain.iterdir()
    # They name the behaviour this package always has: the same rows (but the timings).
    assert _rows(run) == _rows(run_plain)


def _rows(run: Path) -> list[list[str]]:
    lines = (run / "results.csv").read_text(encoding="utf-8").splitlines()
    return [line.split(",")[:14] for line in lines]  # up to knn_fallback


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--cluster_distance_method", "1"], "--cluster_distance_method 1"),
        (["--l2_components", "separation penalty"], "separation silhouette"),
        (["--l2_components", "silhouette"], "separation silhouette"),
        (["--l2_components", "separation silhouette silhouette"], "separation silhouette"),
    ],
)
def test_other_values_of_fixed_flags_are_one_line_exit_2(
    cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    needle: str,
) -> None:
    out = tmp_path / "out"
    _refused(capsys, _run(cache, out, *TINY, *flags), out, needle, "original")


def test_model_path_is_reported_unused(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = _run(cache, out, "--superclasses", "digits_low", *TINY, "--model_path", "m.pt")
    assert code == 0
    assert f"--model_path m.pt is not used: features are read from the feature cache {cache}" in (
        capsys.readouterr().err
    )


def test_model_path_with_a_missing_cache_names_it(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (cache / "empty").mkdir(exist_ok=True)
    try:
        code = _run(cache, out, "--superclasses", "digits_low,empty", "--model_path", "m.pt")
    finally:
        (cache / "empty").rmdir()
    _refused(capsys, code, out, "--model_path m.pt", str(cache / "empty" / "features.npz"))


# ---- --superclass_file and parse_superclasses --------------------------------------------


def test_superclass_file_is_read_as_the_original(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# the low digits\n\ndigits_low  \n   \n", encoding="utf-8")
    out = tmp_path / "out"
    assert _run(cache, out, "--superclass_file", str(listing), *TINY, "--quiet") == 0
    (run,) = out.iterdir()
    assert json.loads((run / "config.json").read_text())["superclasses"] == ["digits_low"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--superclass_file", "nope.txt"], "nope.txt: no such file"),
        (["--superclass_file", "list.txt", "--superclasses", "digits_low"], "--superclasses"),
        (["--superclass_file", "list.txt", "--count_all"], "--count_all"),
        (["--superclass_file", "blank.txt"], "no names"),
    ],
)
def test_superclass_file_errors(
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text("digits_low\n", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("# only a comment\n\n", encoding="utf-8")
    out = tmp_path / "out"
    _refused(capsys, _run(cache, out, *TINY, *extra), out, needle)


def test_resume_refuses_a_superclass_file(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _run(cache, out, "--superclasses", "digits_low", *TINY, "--quiet") == 0
    (run,) = out.iterdir()
    capsys.readouterr()
    listing = tmp_path / "list.txt"
    listing.write_text("digits_high\n", encoding="utf-8")
    code = run_batch(["--resume", str(run), "--superclass_file", str(listing)])
    assert code == 2
    assert "--superclass_file" in capsys.readouterr().err


def test_parse_superclasses(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("trees\n# comment\n\n  humans \n  # indented\n", encoding="utf-8")
    assert parse_superclasses(["d"], " a, b ,,", str(listing)) == ["a", "b"]
    # Only a # in the first column starts a comment, as the original read the file.
    assert parse_superclasses(["d"], None, str(listing)) == ["trees", "humans", "# indented"]
    assert parse_superclasses(["d"], None, None) == ["d"]
    assert parse_superclasses(["d"], "", "") == ["d"]
    with pytest.raises(FileNotFoundError, match="nope"):
        parse_superclasses([], None, str(tmp_path / "nope"))


# ---- run_grid_search --------------------------------------------------------------------

_FIXED = {
    "eval_version": "v2",
    "co_mode": 2,
    "co_manual": None,
    "use_l2": True,
    "eval_dense": False,
    "dense_method": 1,
    "assign_model": 3,
    "voting_k": 5,
    "use_train_and_test": True,
    "detail_dense": False,
    "use_cluster_quality": True,
    "cluster_distance_method": 3,
    "l2_components": ["separation", "silhouette"],
}

_BLOCK = re.compile(
    r"k=(\d+), density_percentile=(\d+)\n-+\n.*?all_acc: (\d+\.?\d*)\nold_acc: "
    r"(\d+\.?\d*)\nnew_acc: (\d+\.?\d*)\nclusters: (\d+)",
    re.DOTALL,
)


def test_run_grid_search_writes_the_original_report(cache: Path, tmp_path: Path) -> None:
    import ssddbc

    out = tmp_path / "task" / "digits_low"
    path = ssddbc.run_grid_search(
        "digits_low",
        None,
        range(3, 21),
        range(40, 100, 5),
        output_dir=out,
        **_FIXED,
        feature_cache_dir=str(cache),
        use_parallel=False,
        silent=True,
    )
    assert path.parent == out
    assert re.fullmatch(r"digits_low_\d\d_\d\d_\d\d_\d\d\.txt", path.name), path.name
    text = path.read_text(encoding="utf-8")
    blocks = _BLOCK.findall(text)
    assert len(blocks) == 216
    assert "Success: 216/216 combinations" in text and "Parallel workers: 1" in text
    best = max(blocks, key=lambda b: float(b[2]))  # first of the highest, in grid order
    assert f"Best params: k={best[0]}, density_percentile={best[1]}\n" in text
    assert f"Best all_acc: {best[2]}\n" in text
    assert "Selected params (label-only score, no ground truth): k=12, density_percentile=40" in (
        text
    )
    # The neighbour graph went to the superclass's persistent store.
    assert (cache / "digits_low" / "knn_cache").is_dir()


def test_run_grid_search_parallel_suffix(cache: Path, tmp_path: Path) -> None:
    path = run_grid_search(
        "digits_low",
        "ckpt.pt",
        [10],
        [40, 45],
        output_dir=tmp_path,
        **_FIXED,
        feature_cache_dir=str(cache),
        max_workers=1,
        silent=True,
    )
    assert path.name.endswith("_parallel.txt")
    assert "Model path: ckpt.pt" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "exc", "needle"),
    [
        ({"eval_version": "v1"}, SearchConfigError, "eval_version"),
        ({"eval_dense": True}, SearchConfigError, "eval_dense"),
        ({"l1_type": "mse"}, SearchConfigError, "l1_type"),
        ({"cluster_distance_method": 4}, SearchConfigError, "cluster_distance_method"),
        ({"l2_components": ["separation", "penalty"]}, SearchConfigError, "l2_components"),
        ({"co_mode": 1}, InvalidInputError, "co_manual"),
        ({"feature_cache_dir": None}, InvalidInputError, "feature_cache_dir"),
        ({"superclass": "no_such"}, FeatureCacheError, "no_such"),
    ],
)
def test_run_grid_search_refuses_before_any_work(
    cache: Path, tmp_path: Path, change: dict[str, object], exc: type, needle: str
) -> None:
    kwargs: dict[str, object] = {**_FIXED, "feature_cache_dir": str(cache)}
    kwargs.update(change)
    superclass = str(kwargs.pop("superclass", "digits_low"))
    out = tmp_path / "out"
    with pytest.raises(exc, match=needle):
        run_grid_search(superclass, None, [10], [40], output_dir=out, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()
