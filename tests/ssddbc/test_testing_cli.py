"""The original's single-configuration entry points on this project's feature caches.

``ssddbc.testing.test_superclass.test_adaptive_clustering_on_superclass`` (its parameters,
positional, and its result dict), ``python -m ssddbc.testing.main`` (its flags) and
``python -m ssddbc.testing.test_superclass`` with the original's flags.
"""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import FeatureCacheError, InvalidInputError
from ssddbc.data import build_digits_feature_cache
from ssddbc.evaluation import split_cluster_acc_v1, split_cluster_acc_v2

#: The original's result keys (its test_superclass.py), kmeans_* only with the baseline.
ORIGINAL_KEYS = {
    "method",
    "all_acc",
    "old_acc",
    "new_acc",
    "n_clusters",
    "unknown_clusters",
    "dbcv",
    "labeled_acc",
    "loss",
    "l1",
    "l2",
    "loss_dict",
    "l2_components",
    "l2_component_weights",
    "l2_component_params",
    "dataset",
    "test_features",
    "test_targets",
    "test_known_mask",
    "train_features",
    "train_targets",
    "train_known_mask",
    "train_labeled_mask",
    "labels",
    "core_points",
    "best_params",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits_cache")
    build_digits_feature_cache(root)
    return root


def _one() -> Any:
    from ssddbc.testing import test_superclass

    return test_superclass.test_adaptive_clustering_on_superclass


def _test_part(golden: dict[str, Any]) -> np.ndarray:
    return np.arange(golden["targets"].size) >= int(golden["train_size"])


def test_positional_call_gives_the_original_result(
    cache: Path, golden: dict[str, Any], golden_search: dict[str, Any]
) -> None:
    out = io.StringIO()
    # superclass_name, model_path, use_train_and_test, k, density_percentile, random_state,
    # eval_version, run_kmeans_baseline, use_l2, feature_cache_dir
    res = _one()("digits_low", None, True, 10, 75, 0, "v2", True, True, str(cache), file=out)
    assert set(res) == ORIGINAL_KEYS | {
        "kmeans_all_acc",
        "kmeans_old_acc",
        "kmeans_new_acc",
        "kmeans_n_clusters",
    }
    labels = golden["labels_k10_dp75"]
    test = _test_part(golden)
    expected = split_cluster_acc_v2(
        golden["targets"][test], labels[test], golden["known_mask"][test]
    )
    assert (res["all_acc"], res["old_acc"], res["new_acc"]) == pytest.approx(expected)
    # no L2 component by default (an explicit empty list: L2 = 0): the loss is the L1
    assert res["l2"] == 0.0 and res["l2_components"] == []
    assert res["loss"] == pytest.approx(golden_search["grid"]["k10_dp75"]["l1_loss"], abs=1e-12)
    assert res["best_params"] == {"k": 10, "density_percentile": 75}
    assert res["n_clusters"] == len(np.unique(labels)) and res["kmeans_n_clusters"] == 5
    assert res["test_targets"].shape == (150,) and res["dataset"].train_size == 751
    assert 0.0 <= res["labeled_acc"] <= 1.0
    assert "cluster 0 " in out.getvalue()  # the composition report (not fast_mode)


def test_fast_mode_eval_dense_and_cluster_quality(cache: Path) -> None:
    out = io.StringIO()
    dense = _one()(
        "digits_low",
        None,
        k=10,
        density_percentile=75,
        eval_version="v1",
        feature_cache_dir=cache,
        eval_dense=True,
        fast_mode=True,
        file=out,
    )
    assert out.getvalue() == ""  # fast_mode prints nothing
    assert dense["unknown_clusters"] == [] and dense["l2_components"] == []
    quality = _one()(
        "digits_low",
        "/nonexistent/model.pt",
        feature_cache_dir=cache,
        fast_mode=True,
        use_cluster_quality=True,
        cluster_distance_method=3,
    )
    assert quality["l2_components"] == ["separation", "penalty"]
    parts = quality["loss_dict"]["l2_metrics"]["components"]
    assert quality["l2"] == pytest.approx(parts["separation"]["value"] - parts["penalty"]["value"])
    assert quality["loss"] == pytest.approx(quality["l1"] + quality["l2"])


def test_eval_dense_accuracy_is_over_the_core(cache: Path, golden: dict[str, Any]) -> None:
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    res = _one()(
        "digits_low",
        None,
        k=10,
        density_percentile=75,
        eval_version="v1",
        feature_cache_dir=cache,
        eval_dense=True,
        fast_mode=True,
    )
    full = adaptive_density_clustering(
        golden["features"], golden["targets"], golden["known_mask"], golden["labeled_mask"]
    )
    core = np.zeros(golden["targets"].size, dtype=bool)
    core[sorted(set().union(*full[6]))] = True
    lab = np.full(core.size, -1)
    for c, members in enumerate(full[6]):
        lab[sorted(members)] = c
    expected = split_cluster_acc_v1(golden["targets"][core], lab[core], golden["known_mask"][core])
    assert (res["all_acc"], res["old_acc"], res["new_acc"]) == pytest.approx(expected)


def test_errors(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatureCacheError, match="does not exist"):
        _one()("digits_low", None, feature_cache_dir=tmp_path / "nowhere")
    with pytest.raises(FeatureCacheError, match="no feature cache"):
        _one()("trees", "model.pt", feature_cache_dir=cache)
    with pytest.raises(InvalidInputError, match="feature_cache_dir"):
        _one()("digits_low", None)
    with pytest.raises(InvalidInputError, match="eval_version"):
        _one()("digits_low", None, eval_version="v3", feature_cache_dir=cache)


def _main(module: str, *argv: str) -> tuple[int, str, str]:
    import importlib

    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("module", ["ssddbc.testing.main", "ssddbc.testing.test_superclass"])
def test_original_flags_are_accepted(cache: Path, golden: dict[str, Any], module: str) -> None:
    flag = "--superclass_name"
    code, out, err = _main(
        module,
        "--feature_cache_dir",
        str(cache),
        flag,
        "digits_low",
        "--eval_version",
        "v2",
        "--fast_mode",
        "False",
        "--k",
        "10",
        "--density_percentile",
        "75",
        "--dense_method",
        "1",
        "--assign_model",
        "3",
        "--use_train_and_test",
        "True",
        "--l2",
        "True",
        "--run_kmeans_baseline",
        "True",
        "--kmeans_merge",
        "True",
        "--l1_type",
        "cross_entropy",
        "--l2_components",
        "separation silhouette",
        "--l2_component_weights",
        "separation=0,silhouette=3",
        "--cluster_distance_method",
        "3",
        "--model_path",
        "m.pt",
    )
    assert code == 0, err
    assert err == ""
    test = _test_part(golden)
    all_acc = split_cluster_acc_v2(
        golden["targets"][test], golden["labels_k10_dp75"][test], golden["known_mask"][test]
    )[0]
    assert f"All {all_acc:.4f}" in out
    assert "model_path 'm.pt' unused" in out and "k-means" in out


def test_main_bad_flags_and_grid_search(cache: Path) -> None:
    base = ("--feature_cache_dir", str(cache), "--superclass_name", "digits_low")
    code, _, err = _main("ssddbc.testing.main", *base, "--fast_mode", "maybe")
    assert code == 2 and "boolean value expected" in err
    code, _, err = _main("ssddbc.testing.main", *base, "--l2_component_weights", "a=b")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, out, _ = _main("ssddbc.testing.main", *base, "--grid_search", "True")
    assert code == 0 and "ssddbc-search" in out
    code, _, err = _main("ssddbc.testing.main", "--feature_cache_dir", str(cache))
    assert code == 2 and "trees" in err  # the original's default superclass, not in this cache


@pytest.mark.slow
def test_python_dash_m_entry_point(cache: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssddbc.testing.main",
            "--feature_cache_dir",
            str(cache),
            "--superclass_name",
            "digits_high",
            "--fast_mode",
            "True",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


#: ``from ssddbc.testing import main; main()`` as the original's scripts call it, in a fresh
#: interpreter, after each way the submodule may have been imported first.
_CALL_MAIN = {
    "fresh": "from ssddbc.testing import main",
    "submodule first": "import ssddbc.testing.main\nfrom ssddbc.testing import main",
    "from submodule first": "from ssddbc.testing.main import build_parser\n"
    "from ssddbc.testing import main",
    "package attribute": "import ssddbc.testing\nmain = ssddbc.testing.main",
}


@pytest.mark.slow
@pytest.mark.parametrize("order", sorted(_CALL_MAIN))
@pytest.mark.parametrize("call", ["main(['--help'])", "main()", "main.main(['--help'])"])
def test_from_ssddbc_testing_import_main_calls_it(order: str, call: str) -> None:
    code = f"import sys\nsys.argv = ['main.py', '--help']\n{_CALL_MAIN[order]}\n{call}\n"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "--superclass_name" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.slow
def test_python_dash_m_help_has_no_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "ssddbc.testing.main", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and proc.stderr == ""
