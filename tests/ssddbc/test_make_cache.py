"""``python -m ssddbc.data.make_cache``: your own arrays to a feature cache.

* the documented recipe rebuilds the golden digits split bit for bit from plain arrays
  (through the command and through :func:`build_superclass`);
* masks given as arrays, ``FILE.npz:KEY``, a train mask that moves rows (``indices`` records
  where each row came from), ``--l2_normalize``;
* bad input is one line on stderr, exit 2, and nothing is written; an existing file is
  replaced only with ``--overwrite``;
* the cache it writes is what ``ssddbc-search`` reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import InvalidInputError
from ssddbc._metric import l2_normalize
from ssddbc.data import load_superclass
from ssddbc.data.make_cache import build_superclass, main


@pytest.fixture(scope="module")
def digits_arrays() -> dict[str, np.ndarray]:
    """Digits 0-4 in dataset order, rows L2-normalised in float32 as the golden file's."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    members = np.flatnonzero(np.isin(bunch.target, [0, 1, 2, 3, 4]))
    raw = np.asarray(bunch.data, dtype=np.float32)[members]
    return {
        "features": raw / np.linalg.norm(raw, axis=1, keepdims=True),
        "targets": np.asarray(bunch.target[members], dtype=np.int64),
        "digits_index": members,
    }


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "ssddbc.data.make_cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_golden(data: Any, golden: dict[str, Any], digits: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(data.features, golden["features"])
    np.testing.assert_array_equal(data.targets, golden["targets"])
    np.testing.assert_array_equal(data.known_mask, golden["known_mask"])
    np.testing.assert_array_equal(data.labeled_mask, golden["labeled_mask"])
    assert data.train_size == int(golden["train_size"])
    np.testing.assert_array_equal(digits["digits_index"][data.indices], golden["digits_index"])


def test_command_rebuilds_the_golden_split(
    tmp_path: Path, golden: dict[str, Any], digits_arrays: dict[str, np.ndarray]
) -> None:
    np.save(tmp_path / "feats.npy", digits_arrays["features"])
    np.save(tmp_path / "y.npy", digits_arrays["targets"])
    args = ["cache", "--name", "mine", "--features", "feats.npy", "--targets", "y.npy"]
    args += ["--known_classes", "0,1,2", "--test_size", "150", "--seed", "0"]
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout.splitlines()
    assert out[0] == f"wrote {Path('cache') / 'mine' / 'features.npz'}"
    assert "901 samples (train 751, test 150), 64-d features, L2-normalised: yes" in out[1]
    n_labeled = int(golden["labeled_mask"].sum())
    trainable = int((golden["known_mask"][: int(golden["train_size"])]).sum())
    assert f"known classes [0, 1, 2], novel [3, 4]; labelled {n_labeled} of {trainable} " in out[2]
    assert out[3] == "next: ssddbc-search --feature_cache_dir cache --superclasses mine"
    data = load_superclass(tmp_path / "cache", "mine")
    _assert_golden(data, golden, digits_arrays)
    assert data.metadata["made_by"] == "ssddbc.data.make_cache"
    assert data.metadata["labeled_fraction"] == 0.8
    # A fraction gives floor(f * n) test rows: the same split.
    again = build_superclass(
        "mine",
        digits_arrays["features"],
        digits_arrays["targets"],
        known_classes=[0, 1, 2],
        test_size=0.1665,
    )
    _assert_golden(again, golden, digits_arrays)
    # Same command again: nothing rewritten.
    path = tmp_path / "cache" / "mine" / "features.npz"
    before = path.stat().st_mtime_ns
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged (same content)")
    assert path.stat().st_mtime_ns == before


def test_masks_from_one_npz_and_a_train_mask_that_moves_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 60
    features = rng.normal(size=(n, 5)).astype(np.float32)
    targets = np.arange(n) % 4
    known = targets < 2
    labeled = known & (np.arange(n) % 3 == 0)
    train = np.arange(n) % 5 != 0
    np.savez(
        tmp_path / "emb.npz",
        features=features,
        labels=targets,
        known_mask=known,
        labeled_mask=labeled,
        is_train=train,
    )
    code = main(
        [
            str(tmp_path / "cache"),
            "--name",
            "set-1",
            "--features",
            f"{tmp_path / 'emb.npz'}",
            "--targets",
            f"{tmp_path / 'emb.npz'}:labels",
            "--known-mask",
            f"{tmp_path / 'emb.npz'}",
            "--labeled_mask",
            f"{tmp_path / 'emb.npz'}",
            "--train_mask",
            f"{tmp_path / 'emb.npz'}:is_train",
            "--l2_normalize",
        ]
    )
    assert code == 0
    data = load_superclass(tmp_path / "cache", "set-1")
    order = np.concatenate([np.flatnonzero(train), np.flatnonzero(~train)])
    np.testing.assert_array_equal(data.indices, order)
    assert data.train_size == int(train.sum())
    np.testing.assert_array_equal(data.features, l2_normalize(features)[order])
    np.testing.assert_allclose(np.linalg.norm(data.features, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(data.targets, targets[order])
    np.testing.assert_array_equal(data.known_mask, known[order])
    np.testing.assert_array_equal(data.labeled_mask, labeled[order])
    assert data.metadata["l2_normalised"] is True
    assert data.metadata["labeled_fraction"] is None


def test_drawn_labels_come_only_from_known_training_rows() -> None:
    rng = np.random.default_rng(0)
    n = 200
    targets = rng.integers(0, 5, size=n)
    data = build_superclass(
        "x",
        rng.normal(size=(n, 3)),
        targets,
        known_classes=[1, 3],
        labeled_fraction=0.5,
        seed=7,
        train_size=150,
    )
    np.testing.assert_array_equal(data.indices, np.arange(n))  # --train_size moves nothing
    assert not data.labeled_mask[150:].any()
    assert (data.labeled_mask <= data.known_mask).all()
    trainable = int((data.known_mask & data.train_mask).sum())
    assert int(data.labeled_mask.sum()) == int(0.5 * trainable)
    other = build_superclass(
        "x",
        data.features,
        targets,
        known_classes=[1, 3],
        labeled_fraction=0.5,
        seed=8,
        train_size=150,
    )
    assert not np.array_equal(other.labeled_mask, data.labeled_mask)


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    n = 30
    feats = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    np.save(tmp / "f.npy", feats)
    np.save(tmp / "y.npy", np.arange(n) % 3)
    np.save(tmp / "y_short.npy", np.arange(n - 1) % 3)
    nan = feats.copy()
    nan[4, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    zero = feats.copy()
    zero[2] = 0
    np.save(tmp / "zero.npy", zero)
    np.save(tmp / "obj.npy", np.array([{"a": 1}] * n, dtype=object), allow_pickle=True)
    np.save(tmp / "known.npy", np.arange(n) % 3 == 0)
    np.save(tmp / "stray.npy", np.arange(n) % 3 == 1)
    np.savez(tmp / "two.npz", a=feats, b=feats)
    base = ["--features", "f.npy", "--targets", "y.npy"]
    k = ["--known_classes", "0"]
    return {
        "short targets": (
            ["--features", "f.npy", "--targets", "y_short.npy", *k],
            "targets: expected length 30, got 29",
        ),
        "nan": (["--features", "nan.npy", "--targets", "y.npy", *k], "NaN or inf in row 4"),
        "zero row": (
            ["--features", "zero.npy", "--targets", "y.npy", *k, "--l2_normalize"],
            "row 2 is all zeros",
        ),
        "pickle": (["--features", "obj.npy", "--targets", "y.npy", *k], "object arrays"),
        "missing file": (["--features", "nope.npy", "--targets", "y.npy", *k], "no such file"),
        # One sentence, not wrapped in "unreadable array file" (it is readable).
        "npz key": (
            ["--features", "two.npz", "--targets", "y.npy", *k],
            "error: two.npz: has no array 'features'",
        ),
        "no known": (base, "give exactly one of known_mask and known_classes"),
        "both known": ([*base, *k, "--known_mask", "known.npy"], "give exactly one"),
        "absent class": ([*base, "--known_classes", "0,7"], "classes [7] do not occur"),
        "bad class list": ([*base, "--known_classes", "a,b"], "comma-separated integers"),
        "stray labels": (
            [*base, "--known_mask", "known.npy", "--labeled_mask", "stray.npy"],
            "labelled but not of a known class",
        ),
        "mask and fraction": (
            [
                *base,
                "--known_mask",
                "known.npy",
                "--labeled_mask",
                "known.npy",
                "--labeled_fraction",
                "0.5",
            ],
            "labeled_mask or labeled_fraction",
        ),
        "fraction range": ([*base, *k, "--labeled_fraction", "1.5"], "[0, 1]"),
        "test size": ([*base, *k, "--test_size", "1.5"], "fraction in (0, 1)"),
        "test count": ([*base, *k, "--test_size", "31"], "count in [0, 30]"),
        "train size": ([*base, *k, "--train_size", "31"], "expected an int in [0, 30]"),
        "seed": ([*base, *k, "--seed", "-1"], "non-negative int"),
    }


def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cases = _bad_inputs(tmp_path)
    for label, (args, message) in cases.items():
        code = main(["cache", "--name", "bad", *args])
        out, err = capsys.readouterr()
        assert code == 2, label
        assert out == "", label
        assert err.count("\n") == 1 and err.startswith("error: "), (label, err)
        assert message in err, (label, err)
        assert not (tmp_path / "cache").exists(), label


def test_bad_input_through_the_command(tmp_path: Path) -> None:
    cases = _bad_inputs(tmp_path)
    args, message = cases["stray labels"]
    proc = _run("cache", "--name", "bad", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "cache").exists()
    proc = _run(
        "cache",
        "--name",
        "../escape",
        "--features",
        "f.npy",
        "--targets",
        "y.npy",
        "--known_classes",
        "0",
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "plain folder name" in proc.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "escape").exists()
    # argparse's own errors (mutually exclusive split options) are exit 2 as well.
    proc = _run(
        "cache",
        "--name",
        "x",
        "--features",
        "f.npy",
        "--targets",
        "y.npy",
        "--train_size",
        "3",
        "--test_size",
        "3",
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_existing_other_content_needs_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.normal(size=(40, 3)))
    np.save(tmp_path / "y.npy", np.arange(40) % 4)
    common = [
        "--name",
        "s",
        "--features",
        str(tmp_path / "f.npy"),
        "--targets",
        str(tmp_path / "y.npy"),
        "--known_classes",
        "0,1",
    ]
    cache = str(tmp_path / "cache")
    assert main([cache, *common, "--seed", "1"]) == 0
    path = tmp_path / "cache" / "s" / "features.npz"
    first = path.read_bytes()
    capsys.readouterr()
    assert main([cache, *common, "--seed", "2"]) == 2
    _, err = capsys.readouterr()
    assert "exists with other content; pass --overwrite" in err
    assert path.read_bytes() == first
    assert main([cache, *common, "--seed", "2", "--overwrite"]) == 0
    assert path.read_bytes() != first
    assert load_superclass(tmp_path / "cache", "s").metadata["seed"] == 2
    (tmp_path / "file").write_text("x")
    assert main([str(tmp_path / "file"), *common]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_api_errors_name_the_argument() -> None:
    x = np.ones((5, 2))
    with pytest.raises(InvalidInputError) as info:
        build_superclass(
            "n", x, [0, 1, 0, 1, 0], known_classes=[0], train_mask=[1] * 5, test_size=2
        )
    assert info.value.argument == "test_size"
    with pytest.raises(InvalidInputError) as info:
        build_superclass("n", x, [0, 1, 0, 1, 0], known_mask=[1, 0, 1, 0, 2])
    assert info.value.argument == "known_mask"


def test_the_cache_runs_through_ssddbc_search(
    tmp_path: Path, digits_arrays: dict[str, np.ndarray]
) -> None:
    np.save(tmp_path / "feats.npy", digits_arrays["features"])
    np.save(tmp_path / "y.npy", digits_arrays["targets"])
    proc = _run(
        "cache",
        "--name",
        "mine",
        "--features",
        "feats.npy",
        "--targets",
        "y.npy",
        "--known_classes",
        "0,1,2",
        "--test_size",
        "150",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    search = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            "cache",
            "--superclasses",
            "mine",
            "--k_min",
            "12",
            "--k_max",
            "13",
            "--density_min",
            "40",
            "--density_max",
            "45",
            "--no_parallel",
            "--output_dir",
            "runs",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert search.returncode == 0, search.stderr
    assert "mine" in search.stdout
    assert list((tmp_path / "runs").iterdir())
