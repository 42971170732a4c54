"""Synthetic GCD data at the original's scale (N=3,000, d=768, 5 classes) for benchmarks."""

from __future__ import annotations

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc.data.feature_cache import SuperclassData
from ssddbc.data.splits import make_gcd_split, train_test_permutation

__all__ = ["make_synthetic_superclass"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(name, f"expected an int, got {value!r}")
    if value < 1:
        raise InvalidInputError(name, f"expected an int >= 1, got {value}")
    return int(value)


def make_synthetic_superclass(
    *,
    n: int = 3000,
    d: int = 768,
    n_classes: int = 5,
    n_known: int = 3,
    labeled_fraction: float = 0.8,
    seed: int = 0,
    noise: float = 1.0,
    name: str = "synthetic",
) -> SuperclassData:
    """Gaussian blobs shaped like one superclass of the original's ViT features.

    Class centres are random unit vectors; each sample is its centre plus isotropic Gaussian
    noise of total norm about ``noise`` (per-coordinate deviation ``noise / sqrt(d)``), then
    L2-normalised and stored as float32. Classes have equal sizes (±1). The split follows the
    digits recipe: one ``default_rng(seed)`` stream draws a 5:1 train/test permutation, then
    ``int(labeled_fraction × known-class training samples)`` labelled samples; classes
    ``0..n_known-1`` are known.

    Parameters
    ----------
    n, d : int
        Samples and feature dimension.
    n_classes, n_known : int
        Classes in total and known classes (``1 <= n_known <= n_classes``).
    labeled_fraction : float
        Share of known-class training samples labelled.
    seed : int
    noise : float
        Noise norm relative to the unit centres: 1.0 gives overlapping but mostly
        separable classes.
    name : str
        Superclass name recorded in the result.

    Returns
    -------
    SuperclassData
        ``source`` is None.
    """
    n = _positive_int("n", n)
    d = _positive_int("d", d)
    n_classes = _positive_int("n_classes", n_classes)
    n_known = _positive_int("n_known", n_known)
    if n_known > n_classes:
        raise InvalidInputError("n_known", f"expected <= n_classes ({n_classes}), got {n_known}")
    if n < n_classes:
        raise InvalidInputError("n", f"expected at least one sample per class, got {n}")
    if not noise >= 0:
        raise InvalidInputError("noise", f"expected a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    targets = np.arange(n, dtype=np.int64) % n_classes
    x = centres[targets] + rng.standard_normal((n, d)) * (noise / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    train_pos, test_pos = train_test_permutation(n, seed=rng)
    order = np.concatenate([train_pos, test_pos])
    targets = targets[order]
    train_size = int(train_pos.size)
    known_mask, labeled_mask = make_gcd_split(
        targets,
        range(n_known),
        labeled_fraction=labeled_fraction,
        train_mask=np.arange(n) < train_size,
        seed=rng,
    )
    return SuperclassData(
        name=name,
        features=x[order].astype(np.float32),
        targets=targets,
        known_mask=known_mask,
        labeled_mask=labeled_mask,
        train_size=train_size,
        source=None,
        metadata={
            "superclass_name": name,
            "dataset": "synthetic gaussian blobs",
            "seed": seed,
            "noise": noise,
            "labeled_fraction": labeled_fraction,
            "known_classes_mapped": list(range(n_known)),
            "unknown_classes_mapped": list(range(n_known, n_classes)),
            "l2_normalised": True,
        },
        indices=order.astype(np.int64),
    )
