"""``ssddbc.testing.test_superclass``: one configuration plus baselines on a digits cache."""

from __future__ import annotations

import inspect
import io
import json
import math
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from ssddbc import FeatureCacheError, InvalidInputError
from ssddbc.data import build_digits_feature_cache
from ssddbc.testing import test_superclass as ts
from tests.golden import GOLDEN_DIR

GOLDEN = GOLDEN_DIR


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits_cache")
    build_digits_feature_cache(root)
    return root


def test_module_defines_no_pytest_functions() -> None:
    """Its one ``test_*`` name is the original's entry point, marked not to be collected."""
    names = [n for n, obj in vars(ts).items() if callable(obj) and n.lower().startswith("test")]
    assert names == ["test_adaptive_clustering_on_superclass"]
    assert all(getattr(ts, n).__test__ is False for n in names)


def test_run_matches_the_golden_configuration(cache: Path) -> None:
    out = io.StringIO()
    result = ts.run_test_superclass(cache, "digits_low", k=10, density_percentile=75, file=out)
    with np.load(GOLDEN / "original_lowdigits.npz") as z:
        golden_labels = z["labels_k10_dp75"]
        test_part = np.arange(z["targets"].size) >= int(z["train_size"])
        targets, known = z["targets"], z["known_mask"]
    expected = json.loads((GOLDEN / "original_lowdigits_search.json").read_text())["grid"]
    expected = expected["k10_dp75"]
    assert adjusted_rand_score(result["labels"], golden_labels) == 1.0
    ssddbc = result["methods"]["SS-DDBC"]
    assert ssddbc["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert ssddbc["l1_loss"] == pytest.approx(expected["l1_loss"], abs=1e-12)
    assert ssddbc["separation_score"] == pytest.approx(expected["separation_score"], abs=1e-6)
    assert ssddbc["n_clusters"] == expected["n_clusters"]
    # accuracy v2 on the test part, the original's evaluation samples
    from ssddbc.evaluation import split_cluster_acc_v2

    v2 = split_cluster_acc_v2(targets[test_part], golden_labels[test_part], known[test_part])
    assert (ssddbc["all_acc"], ssddbc["old_acc"], ssddbc["new_acc"]) == pytest.approx(v2)
    assert result["n_evaluated"] == 150 and result["eval_mode"] == "test"
    assert set(result["methods"]) == {"SS-DDBC", "k-means", "SS-k-means"}
    for m in result["methods"].values():
        assert all(0.0 <= m[key] <= 1.0 for key in ("all_acc", "old_acc", "new_acc"))
    table = out.getvalue()
    for word in ("SS-DDBC", "k-means", "SS-k-means", "All", "Old", "New", "150 samples"):
        assert word in table
    assert result["best_params"] == {"k": 10, "density_percentile": 75}
    assert set(result["core_points"].tolist()) <= set(range(901))


def test_unlabelled_mode_and_no_baselines(cache: Path) -> None:
    result = ts.run_test_superclass(
        cache, "digits_high", k=8, eval_mode="unlabelled", baselines=False, print_table=False
    )
    assert list(result["methods"]) == ["SS-DDBC"]
    assert result["n_evaluated"] == 896 - 366  # every sample without a label
    assert not math.isnan(result["methods"]["SS-DDBC"]["new_acc"])


def test_bad_inputs_raise_before_work(cache: Path) -> None:
    with pytest.raises(FeatureCacheError):
        ts.run_test_superclass(cache, "missing", print_table=False)
    with pytest.raises(InvalidInputError) as err:
        ts.run_test_superclass(cache, "digits_low", k=901, print_table=False)
    assert err.value.argument == "k"
    with pytest.raises(InvalidInputError) as err:
        ts.run_test_superclass(cache, "digits_low", eval_mode="train", print_table=False)
    assert err.value.argument == "mode"


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = ts.main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_cli(cache: Path) -> None:
    code, out, err = _cli("--feature_cache_dir", str(cache), "--superclass", "digits_low",
                          "--k", "12", "--density_percentile", "40", "--no_baselines")  # fmt: skip
    assert code == 0 and err == ""
    assert "density_percentile=40\n" in out and "SS-DDBC" in out
    for bad in (
        ["--superclass", "nope"],
        ["--superclass", "digits_low", "--k", "0"],
        ["--superclass", "digits_low", "--k", "x"],
        ["--superclass", "digits_low", "--density_percentile", "101"],
        ["--superclass", "digits_low", "--eval_mode", "train"],
    ):
        code, out, err = _cli("--feature_cache_dir", str(cache), *bad)
        assert code == 2, bad
        assert len(err.strip().splitlines()) == 1 and "error" in err, err
    code, _, err = _cli("--feature_cache_dir", str(cache / "nowhere"), "--superclass", "x")
    assert code == 2 and "does not exist" in err


def test_signature_keeps_the_documented_defaults() -> None:
    sig = inspect.signature(ts.run_test_superclass)
    assert sig.parameters["k"].default == 10
    assert sig.parameters["density_percentile"].default == 75
    assert sig.parameters["eval_mode"].default == "test"
