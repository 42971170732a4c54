"""GCD splits: which classes are known and which known-class samples carry a label."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ssddbc._errors import InvalidInputError

__all__ = ["make_gcd_split", "train_test_permutation"]


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError("seed", f"expected an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def make_gcd_split(
    targets: ArrayLike,
    known_classes: Iterable[int],
    *,
    labeled_fraction: float = 0.8,
    train_mask: ArrayLike | None = None,
    seed: int | np.random.Generator = 0,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Known-class mask and labelled mask of a GCD split.

    A sample is known when its class is in ``known_classes``. Of the known-class training
    samples (``train_mask``, all samples by default), ``int(labeled_fraction * count)`` are
    drawn without replacement, uniformly over the samples rather than per class, as the GCD
    code's ``subsample_instances`` does; every other sample (novel classes, test samples) is
    unlabelled.

    Parameters
    ----------
    targets : array_like of int, shape (n,)
        Class ids.
    known_classes : iterable of int
        Classes whose labels may be used.
    labeled_fraction : float
        Share of known-class training samples that are labelled, in [0, 1].
    train_mask : array_like of bool, shape (n,), optional
        True for training samples; only those can be labelled.
    seed : int or numpy.random.Generator
        An int seeds ``numpy.random.default_rng``; a Generator is used (and advanced) as is,
        which lets a caller draw the train/test split and the labels from one stream.

    Returns
    -------
    known_mask, labeled_mask : numpy.ndarray of bool, shape (n,)

    Raises
    ------
    InvalidInputError
        On non-integer targets, a fraction outside [0, 1], a malformed ``train_mask`` or
        seed.
    """
    t = np.asarray(targets)
    if t.ndim != 1 or (t.size and not np.issubdtype(t.dtype, np.integer)):
        raise InvalidInputError(
            "targets", f"expected a 1-D integer array, got shape {t.shape} dtype {t.dtype}"
        )
    known = np.asarray(list(known_classes))
    if known.size and not np.issubdtype(known.dtype, np.integer):
        raise InvalidInputError("known_classes", f"expected integer class ids, got {known!r}")
    if not isinstance(labeled_fraction, (int, float, np.floating)) or not (
        0.0 <= float(labeled_fraction) <= 1.0
    ):
        raise InvalidInputError(
            "labeled_fraction", f"expected a number in [0, 1], got {labeled_fraction!r}"
        )
    if train_mask is None:
        train = np.ones(t.size, dtype=bool)
    else:
        train = np.asarray(train_mask)
        if train.shape != t.shape:
            raise InvalidInputError("train_mask", f"expected shape {t.shape}, got {train.shape}")
        if train.dtype != np.bool_:
            if train.size and not np.isin(train, (0, 1)).all():
                raise InvalidInputError("train_mask", "expected booleans or 0/1 values")
            train = train.astype(bool)
    rng = _rng(seed)
    known_mask = np.isin(t, known)
    candidates = np.flatnonzero(known_mask & train)
    n_labeled = int(float(labeled_fraction) * candidates.size)
    labeled_mask = np.zeros(t.size, dtype=bool)
    labeled_mask[candidates[rng.choice(candidates.size, n_labeled, replace=False)]] = True
    return known_mask, labeled_mask


def train_test_permutation(
    n: int,
    *,
    test_fraction_denominator: int = 6,
    seed: int | np.random.Generator = 0,
    n_test: int | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Split ``range(n)`` into train and test positions, 5:1 by default.

    ``n // test_fraction_denominator`` positions (or ``n_test``, when given) are drawn for
    the test split from one random permutation (not stratified); both parts are returned in
    ascending order, which is how the golden digits split was made.

    Parameters
    ----------
    n : int
        Number of samples.
    test_fraction_denominator : int
        6 gives the original's 5:1 train/test ratio.
    seed : int or numpy.random.Generator
    n_test : int, optional
        Test positions to draw, in ``[0, n]``; overrides ``test_fraction_denominator``.

    Returns
    -------
    train, test : numpy.ndarray of int, ascending
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError("n", f"expected a non-negative int, got {n!r}")
    if test_fraction_denominator < 1:
        raise InvalidInputError(
            "test_fraction_denominator", f"expected an int >= 1, got {test_fraction_denominator}"
        )
    if n_test is None:
        n_test = int(n) // test_fraction_denominator
    elif (
        isinstance(n_test, bool)
        or not isinstance(n_test, (int, np.integer))
        or not (0 <= n_test <= n)
    ):
        raise InvalidInputError("n_test", f"expected an int in [0, {n}], got {n_test!r}")
    perm = _rng(seed).permutation(int(n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
