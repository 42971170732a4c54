"""k-means and semi-supervised k-means baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddbc import InvalidInputError
from ssddbc.baselines import kmeans_baseline, semi_supervised_kmeans
from ssddbc.data import load_digits_superclass
from ssddbc.evaluation import split_cluster_acc_v2


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return load_digits_superclass("digits_low")


def test_ss_kmeans_keeps_labelled_points_in_their_class_cluster(digits) -> None:  # type: ignore[no-untyped-def]
    labels = semi_supervised_kmeans(digits.features, digits.targets, digits.labeled_mask, 5)
    lab = digits.labeled_mask
    classes = np.unique(digits.targets[lab])
    assert np.array_equal(labels[lab], np.searchsorted(classes, digits.targets[lab]))
    assert labels.dtype == np.int64 and set(np.unique(labels)) <= set(range(5))


def test_baselines_are_deterministic_and_sensible(digits) -> None:  # type: ignore[no-untyped-def]
    ss = semi_supervised_kmeans(digits.features, digits.targets, digits.labeled_mask, 5, seed=3)
    again = semi_supervised_kmeans(digits.features, digits.targets, digits.labeled_mask, 5, seed=3)
    assert np.array_equal(ss, again)
    km = kmeans_baseline(digits.features, 5, seed=3)
    assert np.array_equal(km, kmeans_baseline(digits.features, 5, seed=3))
    ev = digits.test_mask
    acc_ss = split_cluster_acc_v2(digits.targets[ev], ss[ev], digits.known_mask[ev])
    acc_km = split_cluster_acc_v2(digits.targets[ev], km[ev], digits.known_mask[ev])
    # Measured on this split: SS-k-means 0.89 / k-means 0.84 (All, v2, test part).
    assert acc_ss[0] > 0.8 and acc_km[0] > 0.75
    assert acc_ss[1] >= acc_km[1]  # labels help the known classes


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 5), st.floats(0.0, 0.9))
def test_ss_kmeans_label_constraint_on_random_data(seed: int, n_classes: int, frac: float) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    X = rng.normal(size=(n, 3))
    targets = rng.integers(0, n_classes, n)
    labeled = (rng.random(n) < frac) & (targets < max(1, n_classes - 1))
    k = int(np.unique(targets[labeled]).size) + 1
    labels = semi_supervised_kmeans(X, targets, labeled, k, seed=seed, n_init=2)
    classes = np.unique(targets[labeled])
    assert np.array_equal(labels[labeled], np.searchsorted(classes, targets[labeled]))
    assert labels.min() >= 0 and labels.max() < k


def test_ss_kmeans_without_labels_is_plain_kmeans_shape() -> None:
    X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10]
    labels = semi_supervised_kmeans(X, np.zeros(10, dtype=int), np.zeros(10, dtype=bool), 2)
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"n_clusters": 1}, "n_clusters"),  # 2 labelled classes
        ({"n_clusters": 11}, "n_clusters"),
        ({"n_clusters": 2, "max_iter": 0}, "max_iter"),
        ({"n_clusters": 2, "labeled_mask": np.full(10, 2)}, "labeled_mask"),
        ({"n_clusters": 2, "features": np.full((10, 2), np.nan)}, "features"),
    ],
)
def test_ss_kmeans_bad_input(kwargs: dict, arg: str) -> None:
    args = {
        "features": np.arange(20.0).reshape(10, 2),
        "targets": np.arange(10) % 2,
        "labeled_mask": np.arange(10) < 4,
    }
    args.update(kwargs)
    with pytest.raises(InvalidInputError) as err:
        semi_supervised_kmeans(**args)
    assert err.value.argument == arg


def test_kmeans_bad_input() -> None:
    with pytest.raises(InvalidInputError) as err:
        kmeans_baseline(np.zeros((3, 2)), 4)
    assert err.value.argument == "n_clusters"


# ---- run_baselines: both baselines, scored on the evaluation mask and timed ---------------


def test_run_baselines_scores_the_evaluation_mask_with_the_true_number_of_classes(digits) -> None:  # type: ignore[no-untyped-def]
    from ssddbc.baselines import BASELINES, run_baselines

    ev = digits.test_mask
    out = run_baselines(digits.features, digits.targets, digits.known_mask, digits.labeled_mask, ev)
    assert tuple(out) == BASELINES
    km = kmeans_baseline(digits.features, 5)
    ss = semi_supervised_kmeans(digits.features, digits.targets, digits.labeled_mask, 5)
    for name, pred in (("k-means", km), ("SS-k-means", ss)):
        expected = split_cluster_acc_v2(digits.targets[ev], pred[ev], digits.known_mask[ev])
        got = out[name]
        assert (got["all_acc"], got["old_acc"], got["new_acc"]) == pytest.approx(expected)
        assert got["n_clusters"] == 5 and got["seconds"] > 0
    # Another mask, another score: the mask is the one given, not a fixed split.
    unl = ~digits.labeled_mask
    other = run_baselines(
        digits.features, digits.targets, digits.known_mask, digits.labeled_mask, unl
    )
    expected = split_cluster_acc_v2(digits.targets[unl], km[unl], digits.known_mask[unl])
    assert other["k-means"]["all_acc"] == pytest.approx(expected[0])


def test_run_baselines_refuses_a_mask_of_the_wrong_length(digits) -> None:  # type: ignore[no-untyped-def]
    from ssddbc.baselines import run_baselines

    with pytest.raises(InvalidInputError, match="eval_mask"):
        run_baselines(
            digits.features, digits.targets, digits.known_mask, digits.labeled_mask, [True]
        )


# ---- the compat test_superclass says when its score is not the search's ------------------


def test_score_note_follows_the_search_plan_threshold() -> None:
    from ssddbc.compat.superclass import score_note
    from ssddbc.grid_search._plan import DEFAULT_PLAN

    limit = DEFAULT_PLAN.exact_silhouette_max_n
    assert score_note(limit) is None
    note = score_note(limit + 1)
    assert note is not None and f"N={limit:,}" in note and "samples" in note
    assert score_note(100, exact_max_n=50) is not None


def test_run_test_superclass_records_and_prints_the_score_note(digits) -> None:  # type: ignore[no-untyped-def]
    from ssddbc.compat.superclass import format_table, run_on_data

    small = run_on_data(digits, k=5, density_percentile=50, baselines=False)
    assert small["silhouette"] == "exact" and small["score_note"] is None
    assert "note:" not in format_table(small)
    noted = {**small, "score_note": "score: exact silhouette; ssddbc-search samples it"}
    assert format_table(noted).splitlines()[-1] == (
        "note: score: exact silhouette; ssddbc-search samples it"
    )


@pytest.mark.slow
def test_above_the_threshold_the_score_note_is_set(digits) -> None:  # type: ignore[no-untyped-def]
    from ssddbc.compat.superclass import run_on_data
    from ssddbc.data import SuperclassData
    from ssddbc.grid_search._plan import DEFAULT_PLAN

    # Six copies of the digits with a little jitter: N just above the exact-silhouette limit.
    reps = DEFAULT_PLAN.exact_silhouette_max_n // digits.n + 1
    rng = np.random.default_rng(0)
    X = np.concatenate([digits.features] * reps)
    X = (X + rng.normal(0, 0.01, X.shape)).astype(np.float32)
    big = SuperclassData(
        name="big",
        features=X,
        targets=np.tile(digits.targets, reps),
        known_mask=np.tile(digits.known_mask, reps),
        labeled_mask=np.tile(digits.labeled_mask, reps),
        train_size=X.shape[0] - 100,
    )
    result = run_on_data(big, k=5, density_percentile=50, baselines=False)
    assert result["n"] > DEFAULT_PLAN.exact_silhouette_max_n
    assert result["score_note"] is not None and "samples the silhouette" in result["score_note"]


def test_the_original_test_superclass_says_its_loss_is_not_the_search_score(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    import io

    from ssddbc.compat.test_superclass import test_adaptive_clustering_on_superclass
    from ssddbc.data import build_digits_feature_cache

    build_digits_feature_cache(tmp_path)
    out = io.StringIO()
    result = test_adaptive_clustering_on_superclass(
        "digits_low", None, k=5, density_percentile=50, feature_cache_dir=tmp_path, file=out
    )
    assert "score_note" not in result  # the original's keys, exactly
    note = [x for x in out.getvalue().splitlines() if x.startswith("note: ")]
    assert len(note) == 1 and "not ssddbc-search's label-only score" in note[0]
