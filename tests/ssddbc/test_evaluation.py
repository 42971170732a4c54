"""GCD accuracy and the selection score against hand-computed cases and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import pairwise_distances, silhouette_samples

from ssddbc import InvalidInputError
from ssddbc._distances import pairwise_euclidean
from ssddbc.evaluation import (
    SelectionScore,
    cluster_acc,
    evaluation_mask,
    l1_loss,
    local_density_penalty,
    selection_score,
    separation_score,
    split_cluster_acc_original_api,
    split_cluster_acc_v1,
    split_cluster_acc_v2,
    unlabelled_silhouette,
)

# --- cluster_acc --------------------------------------------------------------------------


def test_cluster_acc_is_invariant_to_renaming_clusters() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_acc(y, np.array([5, 5, 9, 9, -1, -1])) == 1.0


def test_cluster_acc_hand_computed() -> None:
    # clusters: A={0,0,1}, B={1,1,2}, C={2}; best matching A->0 (2), B->1 (2), C->2 (1): 5/7.
    y = np.array([0, 0, 1, 1, 1, 2, 2])
    p = np.array([7, 7, 7, 8, 8, 8, 9])
    assert cluster_acc(y, p) == pytest.approx(5 / 7)


def test_cluster_acc_fewer_clusters_than_classes() -> None:
    # One cluster can match one class only: 3 of 6.
    assert cluster_acc([0, 0, 0, 1, 1, 2], [4, 4, 4, 4, 4, 4]) == pytest.approx(3 / 6)


def test_cluster_acc_more_clusters_than_classes() -> None:
    assert cluster_acc([0, 0, 0, 0], [0, 1, 2, 3]) == pytest.approx(1 / 4)


def test_cluster_acc_empty_is_nan() -> None:
    assert math.isnan(cluster_acc([], []))


@pytest.mark.parametrize(
    ("y", "p", "arg"),
    [([0, 1], [0], "y_pred"), ([[0, 1]], [[0, 1]], "y_true"), ([0.5, 1], [0, 1], "y_true")],
)
def test_cluster_acc_bad_input(y: list, p: list, arg: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        cluster_acc(y, p)
    assert err.value.argument == arg


# --- v1 / v2 ------------------------------------------------------------------------------

# Hand case: classes 0, 1 known, 2 novel; 8 samples.
#   y    0 0 0 1 1 2 2 2
#   pred a a b b b a c c
# v2: one matching over all: a->0 (2), b->1 (2), c->2 (2): all = 6/8;
#     old samples (y in {0,1}) hits 2 + 2 = 4 of 5; new hits 2 of 3.
# v1: old alone: y=[0,0,0,1,1], p=[a,a,b,b,b] -> a->0 (2), b->1 (2): 4/5;
#     new alone: y=[2,2,2], p=[a,c,c] -> c->2: 2/3; all = 5/8*4/5 + 3/8*2/3 = 6/8.
_Y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
_P = np.array([0, 0, 1, 1, 1, 0, 2, 2])
_M = _Y < 2


def test_v2_hand_computed() -> None:
    assert split_cluster_acc_v2(_Y, _P, _M) == pytest.approx((6 / 8, 4 / 5, 2 / 3))


def test_v1_hand_computed() -> None:
    assert split_cluster_acc_v1(_Y, _P, _M) == pytest.approx((6 / 8, 4 / 5, 2 / 3))


def test_v1_and_v2_differ_when_old_and_new_compete_for_a_cluster() -> None:
    # One cluster holds everything: v2 matches it to one class; v1 matches it twice.
    y = np.array([0, 0, 0, 1, 1])
    p = np.zeros(5, dtype=int)
    m = y == 0
    assert split_cluster_acc_v2(y, p, m) == pytest.approx((3 / 5, 1.0, 0.0))
    assert split_cluster_acc_v1(y, p, m) == pytest.approx((1.0, 1.0, 1.0))
    assert split_cluster_acc_original_api(y, p, m) == pytest.approx((3 / 5, 1.0, 1.0))


@pytest.mark.parametrize("fn", [split_cluster_acc_v1, split_cluster_acc_v2])
def test_no_novel_class_gives_nan_new(fn) -> None:  # type: ignore[no-untyped-def]
    y = np.array([0, 0, 1, 1])
    p = np.array([3, 3, 3, 4])
    all_acc, old_acc, new_acc = fn(y, p, np.ones(4, dtype=bool))
    assert all_acc == pytest.approx(3 / 4)
    assert old_acc == pytest.approx(3 / 4)
    assert math.isnan(new_acc)


@pytest.mark.parametrize("fn", [split_cluster_acc_v1, split_cluster_acc_v2])
def test_no_old_class_gives_nan_old(fn) -> None:  # type: ignore[no-untyped-def]
    y = np.array([5, 5, 6])
    p = np.array([0, 0, 0])
    all_acc, old_acc, new_acc = fn(y, p, np.zeros(3, dtype=int))
    assert math.isnan(old_acc)
    assert all_acc == pytest.approx(2 / 3)
    assert new_acc == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [split_cluster_acc_v1, split_cluster_acc_v2])
def test_empty_input_is_nan(fn) -> None:  # type: ignore[no-untyped-def]
    assert all(math.isnan(v) for v in fn([], [], np.zeros(0, dtype=bool)))


def test_mask_must_be_boolean_or_01() -> None:
    with pytest.raises(InvalidInputError) as err:
        split_cluster_acc_v2([0, 1], [0, 1], [0, 2])
    assert err.value.argument == "mask"
    with pytest.raises(InvalidInputError):
        split_cluster_acc_v1([0, 1], [0, 1], [True])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(-1, 5)), min_size=1, max_size=40),
)
def test_v2_all_equals_cluster_acc_and_splits_are_consistent(pairs: list) -> None:
    y = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    m = y < 3
    all_acc, old_acc, new_acc = split_cluster_acc_v2(y, p, m)
    assert all_acc == pytest.approx(cluster_acc(y, p))
    # All is the count-weighted mean of Old and New (one matching).
    parts = [(v, w) for v, w in ((old_acc, m.sum()), (new_acc, (~m).sum())) if w]
    assert all_acc == pytest.approx(sum(v * w for v, w in parts) / len(y))
    v1 = split_cluster_acc_v1(y, p, m)
    # Separate matchings can only do better on each part.
    for a, b in ((v1[1], old_acc), (v1[2], new_acc)):
        assert (math.isnan(a) and math.isnan(b)) or a >= b - 1e-12


# --- evaluation mask ----------------------------------------------------------------------


def test_evaluation_mask_modes() -> None:
    lab = np.array([1, 1, 0, 0, 0], dtype=bool)
    assert evaluation_mask(5, train_size=3).tolist() == [False, False, False, True, True]
    assert evaluation_mask(5, labeled_mask=lab, mode="unlabelled").tolist() == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert evaluation_mask(5, mode="all").all()


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({}, "train_size"),
        ({"train_size": 5}, "train_size"),
        ({"train_size": -1}, "train_size"),
        ({"mode": "unlabelled"}, "labeled_mask"),
        ({"mode": "unlabelled", "labeled_mask": np.ones(5, dtype=bool)}, "labeled_mask"),
        ({"mode": "unlabelled", "labeled_mask": np.ones(4, dtype=bool)}, "labeled_mask"),
        ({"mode": "train"}, "mode"),
    ],
)
def test_evaluation_mask_errors(kwargs: dict, arg: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        evaluation_mask(5, **kwargs)
    assert err.value.argument == arg


# --- L1 -----------------------------------------------------------------------------------


def test_l1_hand_computed() -> None:
    # Cluster 0 labelled members: labels [0, 0, 1] -> p = 2/3, 2/3, 1/3; cluster 1: [1] -> 1.
    labels = np.array([0, 0, 0, 1, 1, 0])
    targets = np.array([0, 0, 1, 1, 2, 9])
    labeled = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    expected = -(2 * math.log(2 / 3 + 1e-10) + math.log(1 / 3 + 1e-10) + math.log(1 + 1e-10)) / 4
    assert l1_loss(labels, targets, labeled) == pytest.approx(expected)


def test_l1_ignores_unlabelled_targets_and_is_zero_without_labels() -> None:
    labels = np.array([0, 0, 1, 1])
    labeled = np.array([1, 0, 1, 0], dtype=bool)
    a = l1_loss(labels, np.array([0, 5, 1, 6]), labeled)
    b = l1_loss(labels, np.array([0, 7, 1, 8]), labeled)
    assert a == b == pytest.approx(-math.log(1 + 1e-10))
    assert l1_loss(labels, labels, np.zeros(4, dtype=bool)) == 0.0


# --- silhouette ---------------------------------------------------------------------------


def _reference_silhouette(X: np.ndarray, labels: np.ndarray, labeled: np.ndarray) -> float:
    if np.unique(labels).size < 2 or labeled.all():
        return 0.0
    return float(silhouette_samples(X, labels, metric="euclidean")[~labeled].mean())


@st.composite
def _partitions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(4, 40))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(draw(st.sampled_from([np.float32, np.float64])))
    n_clusters = draw(st.integers(2, min(6, n - 1)))
    labels = rng.integers(-1, n_clusters - 1, size=n)
    # sklearn needs 2 <= distinct labels <= n - 1.
    labels[0], labels[1] = -1, 0
    if np.unique(labels).size > n - 1:
        labels[2] = labels[3]
    labeled = rng.random(n) < draw(st.floats(0.0, 0.9))
    return X, labels, labeled


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_partitions(), st.integers(1, 7))
def test_silhouette_matches_sklearn(case: tuple, block_rows: int) -> None:
    X, labels, labeled = case
    ref = _reference_silhouette(X, labels, labeled)
    D = pairwise_distances(X.astype(np.float64))
    with_d = unlabelled_silhouette(labels, labeled, pairwise_distances=D, block_rows=block_rows)
    with_x = unlabelled_silhouette(labels, labeled, X=X, block_rows=block_rows)
    # X is taken as float32 by the one distance definition (ssddbc._distances).
    tol = 1e-5
    assert with_d == pytest.approx(ref, abs=tol)
    assert with_x == pytest.approx(ref, abs=tol)


def test_silhouette_with_and_without_the_matrix_agree_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 16)).astype(np.float32)
    labels = rng.integers(0, 7, 300)
    labeled = rng.random(300) < 0.3
    D = pairwise_euclidean(X)
    for block_rows in (1, 13, 1024):
        a = unlabelled_silhouette(labels, labeled, pairwise_distances=D, block_rows=block_rows)
        b = unlabelled_silhouette(labels, labeled, X=X, block_rows=block_rows)
        assert a == b


def test_silhouette_singletons_and_degenerate_cases() -> None:
    X = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    labels = np.array([0, 0, 1, 1, 2])  # point 4 is alone: silhouette 0
    unl = np.zeros(5, dtype=bool)
    ref = silhouette_samples(X, labels).mean()
    assert unlabelled_silhouette(labels, unl, X=X) == pytest.approx(ref)
    # One cluster, or nothing unlabelled: 0 by definition (sklearn would raise).
    assert unlabelled_silhouette(np.zeros(5, dtype=int), unl, X=X) == 0.0
    assert unlabelled_silhouette(labels, np.ones(5, dtype=bool), X=X) == 0.0
    # Identical points in different clusters: 0/0 is 0, not nan, and no warning.
    same = np.zeros((4, 2))
    assert unlabelled_silhouette(np.array([0, 0, 1, 1]), np.zeros(4, bool), X=same) == 0.0


def test_silhouette_reads_a_readonly_memmap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 50)
    labeled = rng.random(50) < 0.4
    path = tmp_path / "d.npy"
    np.save(path, pairwise_distances(X).astype(np.float32))
    D = np.load(path, mmap_mode="r")
    got = unlabelled_silhouette(labels, labeled, pairwise_distances=D, block_rows=16)
    assert got == pytest.approx(_reference_silhouette(X, labels, labeled), abs=1e-5)


def test_silhouette_needs_distances_or_features() -> None:
    with pytest.raises(InvalidInputError) as err:
        unlabelled_silhouette([0, 1], [False, False])
    assert err.value.argument == "pairwise_distances"
    with pytest.raises(InvalidInputError) as err:
        unlabelled_silhouette([0, 1], [False, False], pairwise_distances=np.zeros((3, 3)))
    assert err.value.argument == "pairwise_distances"
    with pytest.raises(InvalidInputError) as err:
        unlabelled_silhouette([0, 1], [False, False], X=np.zeros((3, 2)))
    assert err.value.argument == "X"


# --- the score ----------------------------------------------------------------------------


def test_selection_score_combines_its_parts() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    labels = rng.integers(0, 3, 60)
    targets = rng.integers(0, 4, 60)
    labeled = rng.random(60) < 0.5
    s = selection_score(labels, targets, labeled, X=X)
    assert isinstance(s, SelectionScore)
    assert s.l1_loss == l1_loss(labels, targets, labeled)
    assert s.silhouette == pytest.approx(unlabelled_silhouette(labels, labeled, X=X))
    assert s.score == pytest.approx(-s.l1_loss + 3.0 * s.silhouette)
    assert math.isnan(s.separation_score)
    assert s.penalty_score == 0.0
    # Unlabelled targets never matter.
    shuffled = targets.copy()
    shuffled[~labeled] = rng.permutation(shuffled[~labeled]) + 100
    assert selection_score(labels, shuffled, labeled, X=X)[:3] == s[:3]


def test_separation_score_hand_computed() -> None:
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 5.0], [9.0, 9.0]])
    # prototypes (1, 0) and (0, 4): distance sqrt(17)
    assert separation_score([{0, 1}, {2, 3}], X) == pytest.approx(math.exp(-math.sqrt(17)))
    assert separation_score([{0, 1}], X) == 0.0
    s = selection_score([0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [1, 0, 1, 0, 0], X=X,
                        core_clusters=[[0, 1], [2, 3]])  # fmt: skip
    assert s.separation_score == pytest.approx(math.exp(-math.sqrt(17)))


def test_local_density_penalty_hand_computed() -> None:
    labels = np.array([0, 0, 1])
    neighbors = np.array([[1, 2], [0, 2], [1, 0]])
    d = np.array([[1.0, 2.0], [1.0, 3.0], [3.0, 2.0]])
    per_point = [
        (math.exp(-1) - math.exp(2)) / 2,
        (math.exp(-1) - math.exp(3)) / 2,
        (-math.exp(3) - math.exp(2)) / 2,
    ]
    assert local_density_penalty(labels, neighbors, d) == pytest.approx(sum(per_point) / 3)
