"""Bad inputs to ``adaptive_density_clustering`` fail fast with an error naming the argument."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from ssddbc import InvalidInputError, SsddbcError
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

N = 30


@pytest.fixture
def args() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, N)
    known = y < 2
    return {
        "X": rng.standard_normal((N, 4)).astype(np.float32),
        "targets": y,
        "known_mask": known,
        "labeled_mask": known & (rng.random(N) < 0.5),
        "k": 5,
        "density_percentile": 50,
    }


def _nan_features(a: dict[str, Any]) -> None:
    a["X"] = a["X"].copy()
    a["X"][3, 1] = np.nan


def _inf_features(a: dict[str, Any]) -> None:
    a["X"] = a["X"].copy()
    a["X"][0, 0] = np.inf


CASES: list[tuple[str, Any, str]] = [
    ("targets too short", lambda a: a.update(targets=a["targets"][:-1]), "targets"),
    ("known_mask too long", lambda a: a.update(known_mask=np.ones(N + 1, bool)), "known_mask"),
    ("labeled_mask 2-D", lambda a: a.update(labeled_mask=np.zeros((N, 1), bool)), "labeled_mask"),
    ("mask with a 2", lambda a: a.update(known_mask=np.full(N, 2)), "known_mask"),
    ("mask of strings", lambda a: a.update(labeled_mask=np.array(["a"] * N)), "labeled_mask"),
    ("k = 0", lambda a: a.update(k=0), "k"),
    ("k = N", lambda a: a.update(k=N), "k"),
    ("k float", lambda a: a.update(k=2.5), "k"),
    ("percentile 101", lambda a: a.update(density_percentile=101), "density_percentile"),
    ("percentile -1", lambda a: a.update(density_percentile=-1), "density_percentile"),
    ("NaN features", _nan_features, "X"),
    ("inf features", _inf_features, "X"),
    ("1-D features", lambda a: a.update(X=np.zeros(N)), "X"),
    ("float targets", lambda a: a.update(targets=a["targets"] + 0.5), "targets"),
    ("dense_method 4", lambda a: a.update(dense_method=4), "dense_method"),
    ("co_mode 0", lambda a: a.update(co_mode=0), "co_mode"),
    ("co_mode 1 without value", lambda a: a.update(co_mode=1), "co_manual"),
    ("co_manual negative", lambda a: a.update(co_mode=1, co_manual=-1.0), "co_manual"),
    ("assign_model 4", lambda a: a.update(assign_model=4), "assign_model"),
    ("voting_k 0", lambda a: a.update(voting_k=0), "voting_k"),
    (
        "eval_dense with eval_version v3",
        lambda a: a.update(eval_dense=True, eval_version="v3"),
        "eval_version",
    ),
    (
        "knn too narrow",
        lambda a: a.update(precomputed_knn=(np.zeros((N, 2), int), np.zeros((N, 2)))),
        "precomputed_knn",
    ),
    (
        "knn lists self",
        lambda a: a.update(
            precomputed_knn=(np.tile(np.arange(N)[:, None], (1, 5)), np.zeros((N, 5)))
        ),
        "precomputed_knn",
    ),
    ("knn not a pair", lambda a: a.update(precomputed_knn=np.zeros((N, 5))), "precomputed_knn"),
    (
        "pairwise wrong shape",
        lambda a: a.update(pairwise_distances=np.zeros((N, N - 1), np.float32)),
        "pairwise_distances",
    ),
]


@pytest.mark.parametrize(("change", "argument"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_argument(args: dict[str, Any], change: Any, argument: str) -> None:
    change(args)
    with pytest.raises(InvalidInputError) as info:
        adaptive_density_clustering(**args)
    err = info.value
    assert err.argument == argument
    assert isinstance(err, SsddbcError) and isinstance(err, ValueError)
    assert argument in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert clone.argument == err.argument and str(clone) == str(err)


def test_accepted_forms(args: dict[str, Any]) -> None:
    """0/1 integer masks, float 0/1 masks and the original's extra keywords are accepted."""
    base = adaptive_density_clustering(**args)
    args["known_mask"] = args["known_mask"].astype(int)
    args["labeled_mask"] = args["labeled_mask"].astype(float)
    same = adaptive_density_clustering(
        **args,
        random_state=7,
        train_size=20,
        eval_version="v2",
        silent=False,
        detail_dense=True,
        label_guide=True,
    )
    np.testing.assert_array_equal(base[0], same[0])
    fast = adaptive_density_clustering(**args, fast_mode=True)
    np.testing.assert_array_equal(base[0], fast[0])
    assert fast[2] == [] and fast[4] == {}


def test_return_types(args: dict[str, Any]) -> None:
    labels, n_clusters, unknown, clusters, category, neighbors, core, densities = (
        adaptive_density_clustering(**args)
    )
    assert labels.dtype == np.int64 and labels.shape == (N,)
    assert isinstance(n_clusters, int)
    assert all(isinstance(c, int) for c in unknown)
    assert all(isinstance(c, set) for c in clusters + core)
    assert all(isinstance(c, int) and isinstance(v, int) for c, v in category.items())
    assert neighbors.dtype == np.int64 and neighbors.shape == (N, 5)
    assert densities.dtype == np.float64 and densities.shape == (N,)
