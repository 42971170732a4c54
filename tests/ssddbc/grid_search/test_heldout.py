"""Held-out selection: the stratified draw, its checks, and its choice beside the default."""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
import pytest

from ssddbc import InvalidInputError, SearchConfigError
from ssddbc.data import load_digits_superclass
from ssddbc.evaluation.accuracy import cluster_acc
from ssddbc.grid_search.api import run_clustering_search_on_features
from ssddbc.grid_search.heldout import heldout_mask, heldout_selection

KS = [3, 6]
DPS = [40, 80]


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_digits_superclass("digits_low")


class _NoWork(Executor):
    """An executor that records every task it is given (none may come)."""

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls += 1
        raise AssertionError("work started before the inputs were checked")


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, math.nan, True, "0.2", None])
def test_a_bad_fraction_is_refused_before_any_work(digits: Any, fraction: Any) -> None:
    ex = _NoWork()
    with pytest.raises(SearchConfigError, match=r"fraction: expected a number in \(0, 1\)"):
        heldout_selection(
            digits.features, digits.targets, digits.known_mask, digits.labeled_mask,
            KS, DPS, fraction=fraction, executor=ex,
        )  # fmt: skip
    assert ex.calls == 0


def test_a_class_with_one_labelled_sample_is_refused_naming_it(digits: Any) -> None:
    labeled = digits.labeled_mask.copy()
    ones = np.flatnonzero(labeled & (digits.targets == 1))
    labeled[ones[1:]] = False
    ex = _NoWork()
    with pytest.raises(InvalidInputError, match=r"class 1 has 1 labelled sample"):
        heldout_selection(
            digits.features, digits.targets, digits.known_mask, labeled, KS, DPS, executor=ex
        )
    assert ex.calls == 0


@pytest.mark.parametrize("name", ["return_all"])
def test_its_own_arguments_cannot_be_passed(digits: Any, name: str) -> None:
    with pytest.raises(SearchConfigError, match=name):
        heldout_selection(
            digits.features, digits.targets, digits.known_mask, None, KS, DPS, **{name: True}
        )


def test_a_bad_grid_is_refused_before_any_work(digits: Any) -> None:
    ex = _NoWork()
    with pytest.raises(SearchConfigError, match="k_range"):
        heldout_selection(
            digits.features, digits.targets, digits.known_mask, None, [0], DPS, executor=ex
        )
    assert ex.calls == 0


def test_the_draw_is_stratified_and_seeded(digits: Any) -> None:
    args = (digits.targets, digits.known_mask, digits.labeled_mask)
    hidden = heldout_mask(*args, fraction=0.25, seed=3)
    assert not (hidden & ~digits.labeled_mask).any()
    for c in np.unique(digits.targets[digits.known_mask]):
        n_c = int((digits.labeled_mask & (digits.targets == c)).sum())
        assert int((hidden & (digits.targets == c)).sum()) == round(0.25 * n_c)
    assert np.array_equal(hidden, heldout_mask(*args, fraction=0.25, seed=3))
    assert not np.array_equal(hidden, heldout_mask(*args, fraction=0.25, seed=4))


def test_the_choices_beside_each_other(digits: Any) -> None:
    out = heldout_selection(
        digits.features, digits.targets, digits.known_mask, digits.labeled_mask,
        KS, DPS, fraction=0.3, seed=1, max_workers=1,
    )  # fmt: skip
    default = run_clustering_search_on_features(
        digits.features, digits.targets, digits.known_mask, digits.labeled_mask,
        k_range=KS, density_range=DPS, return_all=True, max_workers=1,
    )  # fmt: skip
    grid = default.results_grid
    assert grid is not None
    label_only = out.label_only
    assert (label_only.k, label_only.density_percentile) == (
        default.best_params["k"],
        default.best_params["density_percentile"],
    )
    best_all = max(m["all_acc"] for m in grid.values())
    assert out.oracle.all_acc == best_all and out.oracle.oracle_gap == 0.0
    for choice in (out.heldout, out.label_only):
        assert choice.all_acc == grid[(choice.k, choice.density_percentile)]["all_acc"]
        assert choice.oracle_gap == pytest.approx(best_all - choice.all_acc)
    assert out.heldout.heldout_acc == max(out.heldout_scores.values())
    assert set(out.heldout_scores) == {(k, dp) for k in KS for dp in DPS}
    # The held-out score is the Hungarian accuracy on the hidden samples of the search
    # that did not see their labels.
    k, dp = out.heldout.k, out.heldout.density_percentile
    hidden = out.heldout_mask
    alone = run_clustering_search_on_features(
        digits.features, digits.targets, digits.known_mask, digits.labeled_mask & ~hidden,
        k_range=[k], density_range=[dp], max_workers=1,
    )  # fmt: skip
    assert out.heldout.heldout_acc == pytest.approx(
        cluster_acc(digits.targets[hidden], alone.labels[hidden])
    )
