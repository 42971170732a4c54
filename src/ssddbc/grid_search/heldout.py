"""Held-out selection: an opt-in alternative to the label-only score, reported beside it.

The default selection stays the original's label-only score. :func:`heldout_selection`
hides a stratified fraction of the labelled samples of every known class, runs the grid
search with them unlabelled, and picks the configuration that clusters the hidden samples
best. The score is the search's own GCD accuracy (Hungarian one-to-one matching between
clusters and classes, :func:`ssddbc.evaluation.cluster_acc`) computed on the hidden samples
only, by passing them as the search's ``eval_mask``: every configuration is scored in the
workers, with no per-configuration labels carried back, and by the one definition of
accuracy the search reports. One-to-one matching also penalises what a majority vote would
forgive: a class split over several clusters counts only its largest part.

The hidden samples belong to known classes only, so the held-out score sees how well the
known classes are recovered, not how the novel ones are; the oracle gaps returned (and
``benchmarks/bench_selection.py``) show how much that matters. The held-out choice is then
reported with its accuracy in the search with every label, the one a user would run.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError, SearchConfigError
from ssddbc.grid_search._validate import validate_grid, validate_search_inputs
from ssddbc.grid_search.api import SearchSession

__all__ = ["HeldoutSelection", "SelectionChoice", "heldout_mask", "heldout_selection"]

#: Arguments the held-out selection sets itself (the rest go to :meth:`SearchSession.run`).
_OWN = ("return_all",)
_SESSION = ("max_workers", "store", "executor")


@dataclass(frozen=True)
class SelectionChoice:
    """One selected configuration and its accuracies on the evaluation split.

    Attributes
    ----------
    k, density_percentile : int
        The configuration.
    all_acc, old_acc, new_acc : float
        Its accuracy (v2) on the evaluation split in the search with every label.
    oracle_gap : float
        The oracle's All accuracy minus this one's (0.0 for the oracle itself).
    heldout_acc : float
        Its accuracy on the held-out samples in the search without their labels.
    """

    k: int
    density_percentile: int
    all_acc: float
    old_acc: float
    new_acc: float
    oracle_gap: float
    heldout_acc: float


@dataclass(frozen=True)
class HeldoutSelection:
    """What :func:`heldout_selection` returns.

    Attributes
    ----------
    heldout : SelectionChoice
        The best accuracy on the held-out samples (ties: the higher label-only score, then
        the first cell in grid order).
    label_only : SelectionChoice
        The default selection (label-only score, every label used).
    oracle : SelectionChoice
        The best All accuracy on the evaluation split (uses its ground truth; reference).
    heldout_mask : ndarray of bool, shape (N,)
        The samples hidden.
    heldout_scores : dict
        ``(k, density_percentile)`` → accuracy on the held-out samples.
    """

    heldout: SelectionChoice
    label_only: SelectionChoice
    oracle: SelectionChoice
    heldout_mask: np.ndarray
    heldout_scores: dict[tuple[int, int], float]


def _check_fraction(fraction: Any) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not math.isfinite(float(fraction))
        or not 0.0 < float(fraction) < 1.0
    ):
        raise SearchConfigError("fraction", f"expected a number in (0, 1), got {fraction!r}")
    return float(fraction)


def heldout_mask(
    targets: np.ndarray,
    known_mask: np.ndarray,
    labeled_mask: np.ndarray,
    *,
    fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """The stratified held-out samples: ``round(fraction * n_c)`` of each known class's
    ``n_c`` labelled samples (at least one, at most ``n_c - 1``), drawn with ``seed``.

    Raises
    ------
    SearchConfigError
        ``fraction`` outside (0, 1).
    InvalidInputError
        No labelled known sample, or a known class with a single labelled sample.
    """
    fraction = _check_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SearchConfigError("seed", f"expected a non-negative integer, got {seed!r}")
    pool = np.asarray(labeled_mask, dtype=bool) & np.asarray(known_mask, dtype=bool)
    classes, counts = np.unique(targets[pool], return_counts=True)
    if classes.size == 0:
        raise InvalidInputError("labeled_mask", "no labelled sample of a known class to hold out")
    few = [(int(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < 2]
    if few:
        raise InvalidInputError(
            "labeled_mask",
            f"class {few[0][0]!r} has {few[0][1]} labelled sample; held-out selection needs at "
            "least 2 per known class (one hidden, one kept)",
        )
    rng = np.random.default_rng(int(seed))
    hidden = np.zeros(len(targets), dtype=bool)
    for c, n in zip(classes, counts, strict=True):
        members = np.flatnonzero(pool & (targets == c))
        take = min(max(1, round(fraction * int(n))), int(n) - 1)
        hidden[rng.choice(members, size=take, replace=False)] = True
    return hidden


def _choice(
    cell: tuple[int, int],
    grid: Mapping[tuple[int, int], Mapping[str, Any]],
    oracle_all: float,
    held: Mapping[tuple[int, int], float],
) -> SelectionChoice:
    m = grid[cell]
    return SelectionChoice(
        k=cell[0],
        density_percentile=cell[1],
        all_acc=float(m["all_acc"]),
        old_acc=float(m["old_acc"]),
        new_acc=float(m["new_acc"]),
        oracle_gap=oracle_all - float(m["all_acc"]),
        heldout_acc=held.get(cell, math.nan),
    )


def _low_nan(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def heldout_selection(
    features: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    k_range: Iterable[int],
    density_range: Iterable[int],
    *,
    fraction: float = 0.2,
    seed: int = 0,
    **search_kwargs: Any,
) -> HeldoutSelection:
    """Select by accuracy on held-out labelled samples; report it beside the default.

    Two searches run on one :class:`~ssddbc.grid_search.api.SearchSession` (one pool, one
    store, so the neighbour graph is computed once): the search with every label (its
    label-only choice is the default selection, its accuracies are the ones reported) and
    the search with the held-out samples unlabelled and evaluated.

    Parameters
    ----------
    features, targets, known_mask, labeled_mask
        As :func:`~ssddbc.grid_search.api.run_clustering_search_on_features`
        (``labeled_mask=None`` means ``known_mask``).
    k_range, density_range : iterables of int
        The grid.
    fraction : float
        Share of each known class's labelled samples hidden, in (0, 1).
    seed : int
        Seed of the stratified draw (:func:`heldout_mask`).
    **search_kwargs
        ``max_workers``, ``store`` and ``executor`` for the session; the rest (``eval_mask``,
        ``params``, ``plan``, ``metric``, ``knn_method``...) for both searches (``eval_mask``
        for the first only: the second evaluates the held-out samples).

    Returns
    -------
    HeldoutSelection

    Raises
    ------
    SearchConfigError
        ``fraction`` outside (0, 1), a bad grid, or ``return_all`` among the
        keyword arguments (before any work).
    InvalidInputError
        Bad arrays, or too few labelled samples per known class (before any work).
    SearchFailedError
        Every configuration of a search raised.
    """
    _check_fraction(fraction)
    for name in _OWN:
        if name in search_kwargs:
            raise SearchConfigError(name, "is set by heldout_selection itself; leave it out")
    inputs = validate_search_inputs(
        features, targets, known_mask, labeled_mask, search_kwargs.get("eval_mask")
    )
    ks, dps = validate_grid(k_range, density_range, n_samples=inputs.features.shape[0])
    hidden = heldout_mask(
        inputs.targets, inputs.known_mask, inputs.labeled_mask, fraction=fraction, seed=seed
    )
    session_kwargs = {k: search_kwargs.pop(k) for k in _SESSION if k in search_kwargs}
    eval_mask = search_kwargs.pop("eval_mask", None)
    order = [(k, dp) for k in ks for dp in dps]
    common = {"k_range": ks, "density_range": dps, "return_all": True, **search_kwargs}
    with SearchSession(**session_kwargs) as session:
        full = session.run(
            inputs.features,
            inputs.targets,
            inputs.known_mask,
            inputs.labeled_mask,
            eval_mask=eval_mask,
            **common,
        )
        held_out = session.run(
            inputs.features,
            inputs.targets,
            inputs.known_mask,
            inputs.labeled_mask & ~hidden,
            eval_mask=hidden,
            **common,
        )
    grid = full.results_grid or {}
    held = {cell: float(m["all_acc"]) for cell, m in (held_out.results_grid or {}).items()}
    both = [c for c in order if c in grid and c in held]
    if not both:  # pragma: no cover - each search raised SearchFailedError already
        raise SearchConfigError("k_range", "no configuration succeeded in both searches")
    oracle = min(grid, key=lambda c: (-_low_nan(float(grid[c]["all_acc"])), order.index(c)))
    chosen = min(
        both,
        key=lambda c: (-_low_nan(held[c]), -_low_nan(float(grid[c]["score"])), order.index(c)),
    )
    label_only = (full.best_params["k"], full.best_params["density_percentile"])
    top = float(grid[oracle]["all_acc"])
    return HeldoutSelection(
        heldout=_choice(chosen, grid, top, held),
        label_only=_choice(label_only, grid, top, held),
        oracle=_choice(oracle, grid, top, held),
        heldout_mask=hidden,
        heldout_scores=held,
    )
