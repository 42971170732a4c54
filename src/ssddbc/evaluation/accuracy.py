"""GCD clustering accuracy: Hungarian matching, All/Old/New splits, evaluation masks.

Cluster and class ids are arbitrary integers, re-indexed with :func:`numpy.unique` before a
rectangular matching (the same optimum as the GCD reference code's zero-padded square one).
An empty split gives ``nan`` for that split, silently (the original divides by zero there).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask, as_targets

__all__ = [
    "EvaluationMode",
    "cluster_acc",
    "evaluation_mask",
    "split_cluster_acc_original_api",
    "split_cluster_acc_v1",
    "split_cluster_acc_v2",
]

EvaluationMode = Literal["test", "unlabelled", "all"]


def _check_pair(
    y_true: ArrayLike, y_pred: ArrayLike
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    t = as_targets(y_true, None, "y_true")
    p = as_targets(y_pred, None, "y_pred")
    if t.shape != p.shape:
        raise InvalidInputError(
            "y_pred", f"expected the length of y_true ({t.shape[0]}), got {p.shape[0]}"
        )
    return t, p


def _matching(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Optimal one-to-one matching between clusters and classes.

    Returns the class ids, the per-sample class index, the contingency table (clusters ×
    classes) and, for each class index, the matched cluster index (``-1`` when the class is
    left unmatched because there are fewer clusters than classes).
    """
    classes, t_idx = np.unique(y_true, return_inverse=True)
    clusters, p_idx = np.unique(y_pred, return_inverse=True)
    w = np.zeros((clusters.size, classes.size), dtype=np.int64)
    np.add.at(w, (p_idx, t_idx), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    cluster_of_class = np.full(classes.size, -1, dtype=np.int64)
    cluster_of_class[cols] = rows
    return classes, t_idx, w, cluster_of_class


def _matched_hits(w: NDArray[np.int64], cluster_of_class: NDArray[np.int64]) -> NDArray[np.int64]:
    """Samples of each class that fall in its matched cluster (0 when unmatched)."""
    hits = np.zeros(cluster_of_class.size, dtype=np.int64)
    ok = cluster_of_class >= 0
    hits[ok] = w[cluster_of_class[ok], np.flatnonzero(ok)]
    return hits


def cluster_acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Clustering accuracy under the best one-to-one cluster-to-class matching.

    Parameters
    ----------
    y_true : array_like of int, shape (n,)
        True class ids.
    y_pred : array_like of int, shape (n,)
        Predicted cluster ids (any integers; the ids themselves carry no meaning).

    Returns
    -------
    float
        Fraction of samples whose cluster is matched to their class by the Hungarian
        algorithm (:func:`scipy.optimize.linear_sum_assignment`); ``nan`` for empty input.

    Raises
    ------
    InvalidInputError
        If the arrays are not 1-D integer ids of the same length.
    """
    t, p = _check_pair(y_true, y_pred)
    if t.size == 0:
        return float("nan")
    _, _, w, cluster_of_class = _matching(t, p)
    return float(_matched_hits(w, cluster_of_class).sum() / t.size)


def split_cluster_acc_v2(
    y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike
) -> tuple[float, float, float]:
    """GCD All/Old/New accuracy with one matching over all evaluated samples (v2).

    This is the version the original searches report. One Hungarian matching is computed on
    all samples; All is its accuracy; Old (New) is the number of matched hits among the
    samples of the known (novel) classes over their count. As in the GCD reference code the
    old classes are the classes present in ``y_true[mask]`` and the new classes those in
    ``y_true[~mask]``; with a class-consistent mask this equals counting the hits among the
    masked (unmasked) samples.

    Parameters
    ----------
    y_true : array_like of int, shape (n,)
        True class ids.
    y_pred : array_like of int, shape (n,)
        Predicted cluster ids.
    mask : array_like of bool or 0/1, shape (n,)
        True for samples of known (old) classes.

    Returns
    -------
    (all, old, new) : tuple of float
        Accuracies in [0, 1]; ``nan`` for a split without samples (for example ``new`` on a
        superclass without novel classes), ``nan`` everywhere for empty input.

    Raises
    ------
    InvalidInputError
        On mismatched lengths, non-integer ids or a mask that is neither boolean nor 0/1.
    """
    t, p = _check_pair(y_true, y_pred)
    m = as_mask(mask, "mask", t.size)
    nan = float("nan")
    if t.size == 0:
        return nan, nan, nan
    classes, _, w, cluster_of_class = _matching(t, p)
    hits = _matched_hits(w, cluster_of_class)
    counts = w.sum(axis=0)
    all_acc = float(hits.sum() / t.size)

    def part(class_ids: NDArray[np.int64]) -> float:
        sel = np.isin(classes, class_ids)
        total = counts[sel].sum()
        return float(hits[sel].sum() / total) if total else nan

    return all_acc, part(np.unique(t[m])), part(np.unique(t[~m]))


def split_cluster_acc_v1(
    y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike
) -> tuple[float, float, float]:
    """GCD All/Old/New accuracy with Old and New matched separately (v1).

    Old is the Hungarian accuracy of the masked samples alone, New that of the others, and
    All their combination weighted by the share of each split.

    Parameters
    ----------
    y_true : array_like of int, shape (n,)
        True class ids.
    y_pred : array_like of int, shape (n,)
        Predicted cluster ids.
    mask : array_like of bool or 0/1, shape (n,)
        True for samples of known (old) classes.

    Returns
    -------
    (all, old, new) : tuple of float
        ``nan`` for an empty split; All is then the accuracy of the non-empty split.

    Raises
    ------
    InvalidInputError
        On mismatched lengths, non-integer ids or a mask that is neither boolean nor 0/1.
    """
    t, p = _check_pair(y_true, y_pred)
    m = as_mask(mask, "mask", t.size)
    nan = float("nan")
    if t.size == 0:
        return nan, nan, nan
    old_acc = cluster_acc(t[m], p[m])
    new_acc = cluster_acc(t[~m], p[~m])
    weight = float(m.mean())
    # The weighted sum is written out per case so an empty split (nan) does not poison All.
    if weight == 1.0:
        return old_acc, old_acc, new_acc
    if weight == 0.0:
        return new_acc, old_acc, new_acc
    return weight * old_acc + (1.0 - weight) * new_acc, old_acc, new_acc


def split_cluster_acc_original_api(
    y_true: ArrayLike, y_pred: ArrayLike, mask: ArrayLike
) -> tuple[float, float, float]:
    """All/Old/New as the original in-memory search API reported them.

    The original ``grid_search/api.py`` debug grid (``return_all=True``, the source of the
    golden search json) computes All with one matching over all samples and Old and New each
    with their own matching: Old and New are v1's, All is v2's (and not v1's weighted
    combination). Kept to compare with that json; new results should use
    :func:`split_cluster_acc_v2`.

    Parameters
    ----------
    y_true, y_pred, mask
        As for :func:`split_cluster_acc_v2`.

    Returns
    -------
    (all, old, new) : tuple of float
        ``nan`` for an empty split.
    """
    t, p = _check_pair(y_true, y_pred)
    m = as_mask(mask, "mask", t.size)
    return cluster_acc(t, p), cluster_acc(t[m], p[m]), cluster_acc(t[~m], p[~m])


def evaluation_mask(
    n: int,
    *,
    train_size: int | None = None,
    labeled_mask: ArrayLike | None = None,
    mode: EvaluationMode = "test",
) -> NDArray[np.bool_]:
    """Which samples the accuracies are computed on.

    Parameters
    ----------
    n : int
        Number of samples (train then test, as in a feature cache).
    train_size : int, optional
        Number of leading training samples; required for ``mode="test"``.
    labeled_mask : array_like of bool, shape (n,), optional
        Required for ``mode="unlabelled"``.
    mode : {"test", "unlabelled", "all"}
        ``"test"``: the test part, indices ``>= train_size`` (what the original
        ``testing/test_superclass.py`` and batch runner score when the cache has a train/test
        split). ``"unlabelled"``: every sample without a usable label, train and test (the
        standard GCD protocol). ``"all"``: every sample (what the original in-memory API's
        debug grid scores: it has no train/test split).

    Returns
    -------
    numpy.ndarray of bool, shape (n,)

    Raises
    ------
    InvalidInputError
        On a missing or out-of-range ``train_size``, a missing or malformed ``labeled_mask``,
        an unknown ``mode``, or a mask that selects nothing.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError("n", f"expected a non-negative int, got {n!r}")
    n = int(n)
    if mode == "test":
        if train_size is None:
            raise InvalidInputError("train_size", "required when mode='test'")
        if (
            isinstance(train_size, (bool, np.bool_))
            or not isinstance(train_size, (int, np.integer))
            or not 0 <= train_size < n
        ):
            raise InvalidInputError(
                "train_size",
                f"expected an int in [0, {n}) so that the test part is not empty, got "
                f"{train_size!r}",
            )
        out = np.zeros(n, dtype=bool)
        out[int(train_size) :] = True
        return out
    if mode == "unlabelled":
        if labeled_mask is None:
            raise InvalidInputError("labeled_mask", "required when mode='unlabelled'")
        out = ~as_mask(labeled_mask, "labeled_mask", n)
        if not out.any():
            raise InvalidInputError("labeled_mask", "every sample is labelled: nothing to evaluate")
        return out
    if mode == "all":
        return np.ones(n, dtype=bool)
    raise InvalidInputError("mode", f"expected 'test', 'unlabelled' or 'all', got {mode!r}")
