"""Built-in real data: scikit-learn's bundled handwritten digits as a GCD feature cache.

No download: ``sklearn.datasets.load_digits`` ships with scikit-learn. Each superclass takes
some digits, L2-normalises their 64 pixel values (in float32), splits them 5:1 into train
and test with one seeded permutation, marks three digits known and the rest novel, and
labels 80% of the known-class training samples. With the default seed, ``digits_low`` is
bit for bit the golden split the original research code was run on (``original_lowdigits.npz``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc.data.feature_cache import SuperclassData, write_superclass
from ssddbc.data.splits import make_gcd_split, train_test_permutation

__all__ = [
    "DIGITS_SUPERCLASSES",
    "LABELED_FRACTION",
    "build_digits_feature_cache",
    "load_digits_superclass",
]

#: name → (digits in the superclass, known digits). The others are novel.
DIGITS_SUPERCLASSES: MappingProxyType[str, tuple[tuple[int, ...], tuple[int, ...]]] = (
    MappingProxyType(
        {
            "digits_low": ((0, 1, 2, 3, 4), (0, 1, 2)),
            "digits_high": ((5, 6, 7, 8, 9), (5, 6, 7)),
        }
    )
)
#: Share of known-class training samples that carry a label (the original's 0.8).
LABELED_FRACTION = 0.8


def load_digits_superclass(name: str, *, seed: int = 0) -> SuperclassData:
    """Build one digits superclass in memory.

    Recipe (one ``numpy.random.default_rng(seed)`` stream, in this order): take the samples
    of the superclass's digits in dataset order; draw a permutation and put its first
    ``n // 6`` positions in the test split (train and test each kept in dataset order, train
    first); then draw ``int(0.8 × known-class training samples)`` of them, without
    replacement, to be labelled. Targets are the digits renumbered 0..4 in ascending order
    (the original's ``label_mapping``), so the known classes are 0, 1, 2.

    Parameters
    ----------
    name : str
        A key of :data:`DIGITS_SUPERCLASSES`.
    seed : int

    Returns
    -------
    SuperclassData
        ``source`` is None; ``indices`` index ``sklearn.datasets.load_digits()``.
    """
    if name not in DIGITS_SUPERCLASSES:
        raise InvalidInputError(
            "name", f"expected one of {sorted(DIGITS_SUPERCLASSES)}, got {name!r}"
        )
    from sklearn.datasets import load_digits  # optional (ssddbc extra): only this loader needs it

    digits, known_digits = DIGITS_SUPERCLASSES[name]
    bunch = load_digits()
    y = np.asarray(bunch.target, dtype=np.int64)
    members = np.flatnonzero(np.isin(y, digits))
    rng = np.random.default_rng(seed)
    train_pos, test_pos = train_test_permutation(members.size, seed=rng)
    order = np.concatenate([members[train_pos], members[test_pos]])
    mapping = {d: i for i, d in enumerate(sorted(digits))}
    targets = np.array([mapping[int(d)] for d in y[order]], dtype=np.int64)
    known_mapped = [mapping[d] for d in known_digits]
    train_size = int(train_pos.size)
    known_mask, labeled_mask = make_gcd_split(
        targets,
        known_mapped,
        labeled_fraction=LABELED_FRACTION,
        train_mask=np.arange(order.size) < train_size,
        seed=rng,
    )
    raw = np.asarray(bunch.data, dtype=np.float32)[order]
    # Normalised in float32, as the golden file was: a float64 division differs in the last bit.
    features = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    novel_digits = [d for d in digits if d not in known_digits]
    metadata = {
        "superclass_name": name,
        "dataset": "sklearn.datasets.load_digits",
        "seed": seed,
        "labeled_fraction": LABELED_FRACTION,
        "known_classes_orig": list(known_digits),
        "unknown_classes_orig": novel_digits,
        "known_classes_mapped": known_mapped,
        "unknown_classes_mapped": [mapping[d] for d in novel_digits],
        "label_mapping": mapping,
        "all_classes_sorted": sorted(digits),
        "l2_normalised": True,
    }
    return SuperclassData(
        name=name,
        features=features,
        targets=targets,
        known_mask=known_mask,
        labeled_mask=labeled_mask,
        train_size=train_size,
        source=None,
        metadata=metadata,
        indices=order.astype(np.int64),
    )


def build_digits_feature_cache(feature_cache_dir: str | Path, *, seed: int = 0) -> list[str]:
    """Write the digits superclasses as a feature cache in our ``.npz`` format.

    Idempotent: a superclass whose ``features.npz`` already holds the same content is not
    rewritten (its modification time does not change), so repeated builds are cheap and a
    knncache keyed on the features stays valid.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path
        Cache root; created if needed.
    seed : int
        Split seed; 0 reproduces the golden ``digits_low`` split.

    Returns
    -------
    list of str
        The superclass names written (sorted), for :func:`~ssddbc.data.load_superclass`.
    """
    names = sorted(DIGITS_SUPERCLASSES)
    for name in names:
        write_superclass(feature_cache_dir, load_digits_superclass(name, seed=seed))
    return names
