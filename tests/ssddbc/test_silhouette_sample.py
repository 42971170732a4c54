"""The sampled silhouette of successive partitions: exact sums, reused between partitions.

:class:`~ssddbc.evaluation._sample.SilhouetteSample` derives each partition's cluster-sum
table from the previous one. These tests pin that the result never depends on what came
before (equal, bit for bit, to the from-scratch :func:`sampled_silhouette` in any sequence
of partitions), that it is the silhouette (against scikit-learn's over the sample), that it
really reuses (few points added when few move), and that the fixed-point sums equal a
plain float64 accumulation wherever that one is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import silhouette_samples

from ssddbc._errors import InvalidInputError
from ssddbc.evaluation import sampled_silhouette, silhouette_sample_indices
from ssddbc.evaluation._sample import SilhouetteSample, fixed_point_scale
from ssddbc.evaluation.loss_function import silhouette_rows

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)


def problem(seed: int, n: int, d: int = 5, integer: bool = False) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, (n, d)) if integer else rng.standard_normal((n, d))
    labeled = rng.random(n) < 0.3
    index = silhouette_sample_indices(labeled, max(1, n // 3), seed)
    rows = silhouette_rows(X.astype(np.float32), index)
    return X.astype(np.float32), labeled, index, rows


def mutate(rng: np.random.Generator, labels: np.ndarray, kind: int) -> np.ndarray:
    """A next partition: a few points moved, clusters merged, split or renumbered."""
    out = labels.copy()
    n = out.size
    if kind == 0:  # a few points move
        pick = rng.choice(n, size=max(1, n // 20), replace=False)
        out[pick] = rng.integers(out.min(), out.max() + 2, pick.size)
    elif kind == 1:  # two clusters merge
        a, b = rng.choice(np.unique(out), size=2, replace=np.unique(out).size < 2)
        out[out == b] = a
    elif kind == 2:  # one cluster splits
        c = rng.choice(np.unique(out))
        members = np.flatnonzero(out == c)
        out[members[rng.random(members.size) < 0.5]] = out.max() + 1
    elif kind == 3:  # ids renumbered (the same partition)
        ids = np.unique(out)
        out = rng.permutation(ids.size)[np.searchsorted(ids, out)] * 7 - 3
    else:  # unrelated
        out = rng.integers(0, 6, n)
    return out


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(8, 120),
    steps=st.lists(st.integers(0, 4), min_size=1, max_size=8),
    integer=st.booleans(),
)
def test_any_sequence_of_partitions_gives_the_from_scratch_values(
    seed: int, n: int, steps: list[int], integer: bool
) -> None:
    _, labeled, index, rows = problem(seed, n, integer=integer)
    sample = SilhouetteSample(index, np.ascontiguousarray(rows.T), labeled)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    for kind in [None, *steps]:
        if kind is not None:
            labels = mutate(rng, labels, kind)
        assert sample.score(labels) == sampled_silhouette(labels, labeled, (index, rows))


@pytest.mark.parametrize("seed", range(4))
def test_it_is_the_silhouette_of_the_sampled_points(seed: int) -> None:
    X, labeled, index, rows = problem(seed, 300, d=8)
    labels = np.random.default_rng(seed).integers(0, 5, 300)
    sample = SilhouetteSample(index, np.ascontiguousarray(rows.T), labeled)
    mean, se = sample.score(labels)
    full = silhouette_samples(X.astype(np.float64), labels)[index]
    assert mean == pytest.approx(full.mean(), rel=1e-6, abs=1e-9)
    population = int((~labeled).sum())
    want = full.std(ddof=1) / np.sqrt(index.size) * np.sqrt(1 - index.size / population)
    assert se == pytest.approx(want, rel=1e-5)


def test_few_moved_points_cost_few_additions() -> None:
    _, labeled, index, rows = problem(0, 2000)
    sample = SilhouetteSample(index, np.ascontiguousarray(rows.T), labeled)
    labels = np.random.default_rng(1).integers(0, 6, 2000)
    sample.score(labels)
    assert sample.points_added == 2000  # the first table is built from scratch
    moved = labels.copy()
    moved[:10] = (moved[:10] + 1) % 6
    ids = np.unique(moved)
    renamed = np.searchsorted(ids, moved) + 100  # renumbered as well
    before = sample.points_added
    assert sample.score(renamed) == sampled_silhouette(renamed, labeled, (index, rows))
    # Each moved point is added to its new cluster and subtracted from its old one's copy.
    assert sample.points_added - before == 20
    before = sample.points_added
    sample.score(renamed)  # the same partition again: nothing to add
    assert sample.points_added == before


def test_fixed_point_sums_equal_an_exact_float_accumulation() -> None:
    """On distances that are small multiples of a power of two, float64 sums are exact, and
    the silhouette equals the plain float64 computation (bincount, in index order)."""
    rng = np.random.default_rng(3)
    n, s = 500, 40
    rows = (rng.integers(0, 64, (s, n)) / 8).astype(np.float32)
    labeled = np.zeros(n, dtype=bool)
    index = np.sort(rng.choice(n, s, replace=False))
    labels = rng.integers(0, 4, n)
    sums = np.stack([np.bincount(labels, weights=r, minlength=4) for r in rows])
    counts = np.bincount(labels, minlength=4)
    own = labels[index]
    r = np.arange(s)
    intra = sums[r, own] / np.maximum(counts[own] - 1, 1)
    means = sums / counts
    means[r, own] = np.inf
    inter = means.min(axis=1)
    expect = ((inter - intra) / np.maximum(intra, inter)).mean()
    sample = SilhouetteSample(index, np.ascontiguousarray(rows.T), labeled)
    assert sample.score(labels)[0] == expect


def test_the_scale_keeps_every_sum_below_two_to_the_61() -> None:
    for value, n in [(1.0, 1), (3.5, 50_000), (1e-30, 130_000), (3e38, 10), (0.0, 5)]:
        q = fixed_point_scale(value, n)
        assert value * n * 2.0**q < 2.0**61
        if value:
            assert value * n * 2.0**q >= 2.0**60  # and uses the precision there is
    with pytest.raises(InvalidInputError, match="silhouette_rows"):
        fixed_point_scale(float("nan"), 3)


def test_bad_columns_are_refused_before_any_work() -> None:
    labeled = np.zeros(10, dtype=bool)
    labeled[0] = True
    with pytest.raises(InvalidInputError, match="columns"):
        SilhouetteSample(np.array([1, 2]), np.zeros((2, 10), np.float32), labeled)
    with pytest.raises(InvalidInputError, match="unlabelled"):
        SilhouetteSample(np.array([0, 2]), np.zeros((10, 2), np.float32), labeled)
    sample = SilhouetteSample(np.array([1, 2]), np.zeros((10, 2), np.float32), labeled)
    with pytest.raises(InvalidInputError, match="labels"):
        sample.score(np.zeros(9, dtype=np.int64))


@pytest.mark.parametrize("factor", [1e-35, 1e-20, 1e20, 1e30])
def test_the_silhouette_is_scale_free_at_extreme_scales(factor: float) -> None:
    """Distances scaled by ``factor`` (2**q far outside float32's range at 1e-35) give the
    same silhouette: the fixed point adapts its scale."""
    _, labeled, index, rows = problem(7, 400)
    labels = np.random.default_rng(7).integers(0, 4, 400)
    base = SilhouetteSample(index, np.ascontiguousarray(rows.T), labeled).score(labels)
    scaled = (rows.astype(np.float64) * factor).astype(np.float32)
    assert fixed_point_scale(float(scaled.max()), 400) != fixed_point_scale(float(rows.max()), 400)
    got = SilhouetteSample(index, np.ascontiguousarray(scaled.T), labeled).score(labels)
    assert got[0] == pytest.approx(base[0], rel=1e-5)
    assert got == sampled_silhouette(labels, labeled, (index, scaled))
