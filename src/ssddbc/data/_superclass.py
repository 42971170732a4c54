"""One superclass of a feature cache in memory: :class:`SuperclassData` and its validation.

Every route to a :class:`SuperclassData` (the constructor, :func:`superclass_from_dict`, the
readers of :mod:`ssddbc.data.feature_cache`) checks the arrays here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from ssddbc._errors import InvalidInputError
from ssddbc._validation import warn_labeled_outside_known

__all__ = ["SuperclassData", "superclass_from_dict"]

_FIELDS = ("features", "targets", "known_mask", "labeled_mask", "indices")
_REQUIRED = ("all_features", "all_targets", "all_known_mask", "all_labeled_mask")
#: Every array key of the original's layout (``all_``/``train_``/``test_`` x field).
ARRAY_KEYS = tuple(f"{p}_{f}" for p in ("all", "train", "test") for f in _FIELDS)
# Metadata keys that restate the arrays' shape: dropped on construction (so a write/read
# round trip compares equal) and recomputed by SuperclassData.to_dict.
_DERIVED_META = frozenset({"train_size", "test_size", "total_size", "feat_dim"})
#: ``fail(key, message)``: raises the error a reader reports for a bad key.
Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True, eq=False)
class SuperclassData:
    """One superclass of a feature cache, ordered train then test.

    Construct it directly, with :func:`superclass_from_dict`, or read it with
    :func:`~ssddbc.data.feature_cache.load_superclass`; every route validates the arrays.

    Attributes
    ----------
    name : str
        Superclass (folder) name.
    features : numpy.ndarray of float32, shape (n, d)
    targets : numpy.ndarray of int64, shape (n,)
        Class ids inside the superclass.
    known_mask : numpy.ndarray of bool, shape (n,)
        True for samples of known classes.
    labeled_mask : numpy.ndarray of bool, shape (n,)
        True where the label may be used (a subset of the known-class samples).
    train_size : int
        The first ``train_size`` rows are the training split, the rest the test split.
    source : pathlib.Path or None
        The file it was read from; None for data built in memory.
    metadata : dict
        JSON-able information (class lists, label mapping, feature dimension, ...).
    indices : numpy.ndarray of int64, shape (n,), or None
        Each row's index in the original dataset, when known.
    """

    name: str
    features: NDArray[np.float32]
    targets: NDArray[np.int64]
    known_mask: NDArray[np.bool_]
    labeled_mask: NDArray[np.bool_]
    train_size: int
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    indices: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        def fail(key: str, message: str) -> NoReturn:
            raise InvalidInputError(key, message)

        arrays = {
            "all_features": self.features,
            "all_targets": self.targets,
            "all_known_mask": self.known_mask,
            "all_labeled_mask": self.labeled_mask,
        }
        if self.indices is not None:
            arrays["all_indices"] = self.indices
        clean = _validate(arrays, int(self.train_size) if _is_int(self.train_size) else -1, fail)
        object.__setattr__(self, "features", clean["all_features"])
        object.__setattr__(self, "targets", clean["all_targets"])
        object.__setattr__(self, "known_mask", clean["all_known_mask"])
        object.__setattr__(self, "labeled_mask", clean["all_labeled_mask"])
        object.__setattr__(self, "indices", clean.get("all_indices"))
        object.__setattr__(self, "train_size", int(self.train_size))
        meta = {k: v for k, v in dict(self.metadata).items() if k not in _DERIVED_META}
        # The name is the truth (a copied folder keeps its file): the metadata follows it.
        meta["superclass_name"] = self.name
        object.__setattr__(self, "metadata", _jsonable(meta))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.features.shape[0])

    @property
    def d(self) -> int:
        """Feature dimension."""
        return int(self.features.shape[1])

    @property
    def train_mask(self) -> NDArray[np.bool_]:
        """True for the training rows (indices < ``train_size``)."""
        return np.arange(self.n) < self.train_size

    @property
    def test_mask(self) -> NDArray[np.bool_]:
        """True for the test rows (indices >= ``train_size``)."""
        return np.arange(self.n) >= self.train_size

    def to_dict(self) -> dict[str, Any]:
        """The original's dict layout: ``all_``/``train_``/``test_`` arrays plus metadata.

        ``all_indices`` is ``arange(n)`` when the indices are unknown.
        """
        ts = self.train_size
        idx = self.indices if self.indices is not None else np.arange(self.n, dtype=np.int64)
        all_arrays: dict[str, np.ndarray] = {
            "features": self.features,
            "targets": self.targets,
            "known_mask": self.known_mask,
            "labeled_mask": self.labeled_mask,
            "indices": idx,
        }
        out: dict[str, Any] = dict(self.metadata)
        for f, arr in all_arrays.items():
            out[f"all_{f}"] = arr
            out[f"train_{f}"] = arr[:ts]
            out[f"test_{f}"] = arr[ts:]
        out["train_size"] = ts
        out["test_size"] = self.n - ts
        out["total_size"] = self.n
        out["feat_dim"] = self.d
        return out

    def same_content(self, other: SuperclassData) -> bool:
        """True when arrays, split, name and metadata are identical (the source is ignored)."""
        same_idx = (self.indices is None and other.indices is None) or (
            self.indices is not None
            and other.indices is not None
            and np.array_equal(self.indices, other.indices)
        )
        return bool(
            self.name == other.name
            and self.train_size == other.train_size
            and self.features.shape == other.features.shape
            and np.array_equal(self.features, other.features)
            and np.array_equal(self.targets, other.targets)
            and np.array_equal(self.known_mask, other.known_mask)
            and np.array_equal(self.labeled_mask, other.labeled_mask)
            and same_idx
            and self.metadata == other.metadata
        )


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _jsonable(value: Any) -> Any:
    """Metadata as plain JSON types: sets become sorted lists, mapping keys strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else repr(v)
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, Path):
        return str(value)
    # Anything else (a torch device, a custom object) is kept as its text: metadata is for
    # people, and the .npz format never stores objects.
    return repr(value)


def _validate(arrays: Mapping[str, Any], train_size: int, fail: Fail) -> dict[str, np.ndarray]:
    """Check the ``all_*`` arrays and return them in canonical dtypes."""
    for key in _REQUIRED:
        if arrays.get(key) is None:
            fail(key, "missing")
    feats = np.asarray(arrays["all_features"])
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        fail("all_features", f"expected a non-empty 2-D array (n, d), got shape {feats.shape}")
    if not (np.issubdtype(feats.dtype, np.floating) or np.issubdtype(feats.dtype, np.integer)):
        fail("all_features", f"expected a float array, got dtype {feats.dtype}")
    if not np.all(np.isfinite(feats)):
        bad = int(np.count_nonzero(~np.isfinite(feats).all(axis=1)))
        fail("all_features", f"{bad} rows hold NaN or infinite values")
    n = feats.shape[0]
    out: dict[str, np.ndarray] = {"all_features": np.ascontiguousarray(feats, dtype=np.float32)}

    def ints(key: str) -> NDArray[np.int64]:
        a = np.asarray(arrays[key])
        if a.shape != (n,):
            fail(key, f"expected shape ({n},) like all_features, got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
                fail(key, f"expected integer values, got dtype {a.dtype}")
            if np.any(a != np.round(a)):
                fail(key, "expected integer values, got non-integral numbers")
        return np.ascontiguousarray(a, dtype=np.int64)

    def mask(key: str) -> NDArray[np.bool_]:
        a = np.asarray(arrays[key])
        if a.shape != (n,):
            fail(key, f"expected shape ({n},) like all_features, got {a.shape}")
        if a.dtype != np.bool_:
            if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
                fail(key, f"expected booleans or 0/1 values, got dtype {a.dtype}")
            bad = ~np.isin(a, (0, 1))
            if bad.any():
                shown = np.unique(a[bad])[:5].tolist()
                fail(key, f"expected booleans or 0/1 values, got {shown}")
        return np.ascontiguousarray(a, dtype=bool)

    out["all_targets"] = ints("all_targets")
    out["all_known_mask"] = known = mask("all_known_mask")
    out["all_labeled_mask"] = labeled = mask("all_labeled_mask")
    if arrays.get("all_indices") is not None:
        out["all_indices"] = ints("all_indices")
    # Labelled samples outside the known classes: accepted with a warning, as the original
    # research code accepted them (see ssddbc._validation.warn_labeled_outside_known).
    warn_labeled_outside_known(known, labeled, stacklevel=5)
    targets = out["all_targets"]
    mixed = np.intersect1d(targets[known], targets[~known])
    if mixed.size:
        fail(
            "all_known_mask",
            f"classes {mixed[:5].tolist()} are marked known for some samples and novel for others",
        )
    if not 0 <= train_size <= n:
        fail("train_size", f"expected an int in [0, {n}], got {train_size}")
    return out


def superclass_from_dict(
    feature_dict: Mapping[str, Any],
    name: str | None = None,
    *,
    source: Path | None = None,
    fail: Fail | None = None,
) -> SuperclassData:
    """Build a :class:`SuperclassData` from the original's dict layout.

    Parameters
    ----------
    feature_dict : mapping
        ``all_*`` arrays (required), ``train_*``/``test_*`` arrays (optional, checked against
        ``all_*``), ``train_size`` (optional) and any JSON-able metadata.
    name : str, optional
        Superclass name; defaults to ``feature_dict["superclass_name"]``.
    source : pathlib.Path, optional
        Recorded as the data's source.
    fail : callable, optional
        ``fail(key, message)`` raises the error to report; by default an
        :class:`~ssddbc.InvalidInputError` naming the key.

    Returns
    -------
    SuperclassData

    Raises
    ------
    InvalidInputError
        (or what ``fail`` raises) on a missing key, mismatched lengths, non-finite features,
        masks that are neither boolean nor 0/1, labelled samples outside the known classes,
        or ``train_*``/``test_*`` arrays that disagree with ``all_*``.
    """
    if fail is None:

        def fail(key: str, message: str) -> NoReturn:
            raise InvalidInputError(key, message)

    if not isinstance(feature_dict, Mapping):
        fail("feature_dict", f"expected a dict of arrays, got {type(feature_dict).__name__}")
    arrays = {k: feature_dict.get(k) for k in ARRAY_KEYS}
    for key in _REQUIRED:
        if arrays[key] is None:
            fail(key, "missing")
    train_size = _train_size(feature_dict, arrays, fail)
    clean = _validate(arrays, train_size, fail)
    # The split arrays are redundant copies of all_*; a disagreement means a damaged file.
    for prefix, sl in (("train", slice(0, train_size)), ("test", slice(train_size, None))):
        for f in _FIELDS:
            key = f"{prefix}_{f}"
            part = arrays.get(key)
            whole = clean.get(f"all_{f}")
            if part is None or whole is None:
                continue
            part = np.asarray(part)
            expected = whole[sl]
            if part.shape[:1] != expected.shape[:1] or not np.array_equal(
                part.astype(expected.dtype, copy=False), expected
            ):
                fail(key, f"does not equal all_{f}[{sl.start}:{sl.stop or ''}] (train then test)")
    meta = {k: v for k, v in feature_dict.items() if k not in ARRAY_KEYS}
    meta_name = meta.get("superclass_name")
    if name is None:
        if not isinstance(meta_name, str):
            fail("superclass_name", "no superclass name given and none in the metadata")
        name = meta_name
    try:
        return SuperclassData(
            name=name,
            features=clean["all_features"],
            targets=clean["all_targets"],
            known_mask=clean["all_known_mask"],
            labeled_mask=clean["all_labeled_mask"],
            train_size=train_size,
            source=source,
            metadata=meta,
            indices=clean.get("all_indices"),
        )
    except InvalidInputError as exc:  # pragma: no cover - _validate already checked all this
        fail(exc.argument, exc.message)


def _train_size(feature_dict: Mapping[str, Any], arrays: Mapping[str, Any], fail: Fail) -> int:
    n_all = np.shape(arrays["all_features"])[0] if arrays.get("all_features") is not None else 0
    sizes = {}
    for prefix in ("train", "test"):
        if arrays.get(f"{prefix}_features") is not None:
            shape = np.shape(arrays[f"{prefix}_features"])
            if len(shape) != 2:
                fail(f"{prefix}_features", f"expected a 2-D array, got shape {shape}")
            sizes[prefix] = shape[0]
    if "train" in sizes and "test" in sizes and sizes["train"] + sizes["test"] != n_all:
        fail(
            "train_features",
            f"train ({sizes['train']}) + test ({sizes['test']}) rows != all_features rows "
            f"({n_all})",
        )
    declared = feature_dict.get("train_size")
    if declared is not None and not _is_int(declared):
        fail("train_size", f"expected an int, got {declared!r}")
    if "train" in sizes:
        if declared is not None and int(declared) != sizes["train"]:
            fail("train_size", f"is {declared} but train_features has {sizes['train']} rows")
        return int(sizes["train"])
    if declared is not None:
        return int(declared)
    if "test" in sizes:
        return int(n_all - sizes["test"])
    # The original's single-split caches (train_* = None) are all test data.
    return 0
