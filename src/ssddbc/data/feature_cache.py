"""The per-superclass feature cache: reading, validating, writing, converting.

Layout, as in the original research code::

    <feature_cache_dir>/<superclass>/features.npz    our format (preferred)
    <feature_cache_dir>/<superclass>/features.pkl    the original's pickled dict

Both hold the same keys: ``all_``, ``train_`` and ``test_`` × ``features``, ``targets``,
``known_mask``, ``labeled_mask``, ``indices`` (``all`` = train then test). The ``.npz`` adds
``metadata_json``, a 0-d string array holding JSON (the original's metadata such as
``superclass_name``, ``label_mapping``, ``feat_dim``, sizes and class lists), and is read with
``allow_pickle=False``: loading it can never run code. A ``.pkl`` is read by a restricted
unpickler (:mod:`ssddbc.data._safe_pickle`) that rebuilds only numpy arrays, dtypes and builtin
containers/scalars, which is all an original cache holds; a pickle naming anything else is
refused with :class:`~ssddbc._errors.UnsafePickleError` before it runs. ``allow_pickle=True``
reads arbitrary pickles (it runs whatever code the file names: only for files you created
yourself).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from knncache import atomic_write
from ssddbc._errors import FeatureCacheError, InvalidInputError, UnsafePickleError
from ssddbc._validation import warn_labeled_outside_known
from ssddbc.data._safe_pickle import safe_load

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "NPZ_NAME",
    "PKL_NAME",
    "SuperclassData",
    "convert_feature_cache",
    "list_superclasses",
    "load_superclass",
    "superclass_from_dict",
    "write_superclass",
]

NPZ_NAME = "features.npz"
PKL_NAME = "features.pkl"
FORMAT_NAME = "ssddbc.feature_cache"
FORMAT_VERSION = 1
_FIELDS = ("features", "targets", "known_mask", "labeled_mask", "indices")
_REQUIRED = ("all_features", "all_targets", "all_known_mask", "all_labeled_mask")
_ARRAY_KEYS = tuple(f"{p}_{f}" for p in ("all", "train", "test") for f in _FIELDS)
# Metadata keys that restate the arrays' shape: dropped on construction (so a write/read
# round trip compares equal) and recomputed by SuperclassData.to_dict.
_DERIVED_META = frozenset({"train_size", "test_size", "total_size", "feat_dim"})
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True, eq=False)
class SuperclassData:
    """One superclass of a feature cache, ordered train then test.

    Construct it directly, with :func:`superclass_from_dict`, or read it with
    :func:`load_superclass`; every route validates the arrays.

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
    arrays = {k: feature_dict.get(k) for k in _ARRAY_KEYS}
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
    meta = {k: v for k, v in feature_dict.items() if k not in _ARRAY_KEYS}
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


def _file_fail(path: Path) -> Fail:
    def fail(key: str, message: str) -> NoReturn:
        raise FeatureCacheError(str(path), f"key {key!r}: {message}")

    return fail


@contextlib.contextmanager
def npy_load_errors(path: Path, what: str, never: str) -> Iterator[None]:
    """``np.load``'s failures on ``path`` as :class:`FeatureCacheError` naming it.

    ``what`` names the file in "unreadable {what}: ..."; ``never`` ends the sentence about
    object arrays ("holds object arrays (pickled data), {never}"). A FeatureCacheError
    raised inside passes through unchanged.
    """
    try:
        yield
    except FeatureCacheError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise FeatureCacheError(
                str(path), f"holds object arrays (pickled data), {never}"
            ) from None
        raise FeatureCacheError(str(path), f"unreadable {what}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise FeatureCacheError(str(path), f"unreadable {what}: {exc}") from None


def _read_npz(path: Path) -> dict[str, Any]:
    # Our own handle: np.load leaks its file when the zip directory is unreadable.
    with (
        npy_load_errors(path, ".npz file", "which a .npz cache never loads"),
        open(path, "rb") as handle,
        np.load(handle, allow_pickle=False) as z,
    ):
        content: dict[str, Any] = {k: z[k] for k in z.files}
    raw = content.pop("metadata_json", None)
    if raw is not None:
        try:
            wrapper = json.loads(str(raw[()]) if raw.ndim == 0 else "".join(raw.tolist()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise FeatureCacheError(
                str(path), f"key 'metadata_json': not valid JSON ({exc})"
            ) from None
        if not isinstance(wrapper, dict) or not isinstance(wrapper.get("metadata", {}), dict):
            raise FeatureCacheError(str(path), "key 'metadata_json': expected a JSON object")
        if wrapper.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise FeatureCacheError(
                str(path),
                f"written by a newer format version ({wrapper['format_version']}); this "
                f"ssddbc reads up to {FORMAT_VERSION}",
            )
        meta = wrapper.get("metadata", {})
        for k, v in meta.items():
            content.setdefault(k, v)
    return content


def _read_pkl(path: Path, allow_pickle: bool = False) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            # allow_pickle=True is the caller's opt-in to run code named by the file; the
            # default rebuilds only numpy arrays, dtypes and builtin containers/scalars.
            obj = pickle.load(handle) if allow_pickle else safe_load(handle, str(path))
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise FeatureCacheError(
            str(path), f"cannot unpickle: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(obj, Mapping):
        raise FeatureCacheError(
            str(path), f"expected a pickled dict of arrays, got {type(obj).__name__}"
        )
    return dict(obj)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise InvalidInputError(
            "superclass", f"expected a plain folder name (letters, digits, _ . -), got {name!r}"
        )


def _cache_root(feature_cache_dir: str | Path) -> Path:
    root = Path(feature_cache_dir)
    if not root.is_dir():
        raise FeatureCacheError(str(root), "feature cache directory does not exist")
    return root


def list_superclasses(feature_cache_dir: str | Path) -> list[str]:
    """Sorted names of the superclass folders holding ``features.npz`` or ``features.pkl``.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path

    Returns
    -------
    list of str

    Raises
    ------
    FeatureCacheError
        If the directory does not exist.
    """
    root = _cache_root(feature_cache_dir)
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and ((p / NPZ_NAME).is_file() or (p / PKL_NAME).is_file())
    )


def load_superclass_file(path: str | Path, *, allow_pickle: bool = False) -> SuperclassData:
    """Read and validate one cache file (``.npz``, or the original's ``.pkl``).

    A ``.pkl`` is read by the restricted unpickler unless ``allow_pickle=True``. The
    superclass name is the file's folder name. See :func:`load_superclass`.
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureCacheError(str(path), "no such file")
    content = _read_pkl(path, allow_pickle) if path.suffix == ".pkl" else _read_npz(path)
    return superclass_from_dict(content, path.parent.name, source=path, fail=_file_fail(path))


def load_superclass(
    feature_cache_dir: str | Path, name: str, *, allow_pickle: bool = False
) -> SuperclassData:
    """Read one superclass of a feature cache, validating every array.

    ``<feature_cache_dir>/<name>/features.npz`` is preferred and read with
    ``allow_pickle=False``. Otherwise ``features.pkl`` (the original's format) is read by a
    restricted unpickler (:mod:`ssddbc.data._safe_pickle`) that rebuilds only numpy arrays,
    dtypes and builtin containers/scalars and refuses any other global before it runs.
    ``allow_pickle=True`` unpickles without restriction, which executes code chosen by
    whoever wrote the file: pass it only for files you created yourself.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path
        Root of the cache.
    name : str
        Superclass folder name.
    allow_pickle : bool
        Read ``features.pkl`` with an unrestricted :func:`pickle.load` (default False:
        the restricted unpickler).

    Returns
    -------
    SuperclassData

    Raises
    ------
    FeatureCacheError
        Naming the folder or file (and the key) on a missing folder or file, a pickle
        naming a global outside the allow-list (:class:`~ssddbc._errors.UnsafePickleError`,
        a subclass, naming the global), an unreadable or malformed file, missing keys, mismatched
        lengths, non-finite features, masks that are neither boolean nor 0/1, labelled
        samples outside the known classes, or train/test arrays disagreeing with ``all_*``.
    InvalidInputError
        If ``name`` is not a plain folder name.
    """
    _check_name(name)
    root = _cache_root(feature_cache_dir)
    folder = root / name
    if not folder.is_dir():
        available = ", ".join(list_superclasses(root)) or "none"
        raise FeatureCacheError(str(folder), f"no such superclass folder (available: {available})")
    npz, pkl = folder / NPZ_NAME, folder / PKL_NAME
    if npz.is_file():
        return load_superclass_file(npz)
    if pkl.is_file():
        return load_superclass_file(pkl, allow_pickle=allow_pickle)
    raise FeatureCacheError(str(folder), f"holds neither {NPZ_NAME} nor {PKL_NAME}")


def _npz_arrays(data: SuperclassData) -> dict[str, np.ndarray]:
    full = data.to_dict()
    arrays = {k: np.ascontiguousarray(full.pop(k)) for k in _ARRAY_KEYS}
    wrapper = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "metadata": full}
    arrays["metadata_json"] = np.array(json.dumps(wrapper, sort_keys=True))
    return arrays


def write_superclass(
    feature_cache_dir: str | Path,
    data_or_arrays: SuperclassData | Mapping[str, Any],
    *,
    name: str | None = None,
    skip_if_identical: bool = True,
) -> Path:
    """Write one superclass as ``<feature_cache_dir>/<name>/features.npz``, atomically.

    The file holds the original's keys (``all_*``, ``train_*``, ``test_*`` arrays) plus
    ``metadata_json`` (a JSON string; never pickled objects). It is written to a temporary
    file, fsynced and renamed into place, so readers never see a partial file.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path
        Root of the cache; created if needed.
    data_or_arrays : SuperclassData or mapping
        The data, or a dict in the original's layout (see :func:`superclass_from_dict`).
    name : str, optional
        Folder name; defaults to the data's name.
    skip_if_identical : bool
        Leave an existing file alone when it already holds the same content (so rebuilding
        a cache rewrites nothing and its modification time does not change).

    Returns
    -------
    pathlib.Path
        The ``features.npz`` path.

    Raises
    ------
    InvalidInputError
        On invalid data or name.
    """
    data = (
        data_or_arrays
        if isinstance(data_or_arrays, SuperclassData)
        else superclass_from_dict(data_or_arrays, name)
    )
    name = data.name if name is None else name
    _check_name(name)
    if name != data.name:
        data = SuperclassData(
            name=name,
            features=data.features,
            targets=data.targets,
            known_mask=data.known_mask,
            labeled_mask=data.labeled_mask,
            train_size=data.train_size,
            source=data.source,
            metadata={**data.metadata, "superclass_name": name},
            indices=data.indices,
        )
    folder = Path(feature_cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NPZ_NAME
    arrays = _npz_arrays(data)
    if skip_if_identical and path.is_file() and _same_npz(path, arrays):
        return path
    # Recent numpy types savez(file, *args, allow_pickle: bool, **kwds), so a dict splatted as
    # keywords cannot match it; older numpy (1.25) has no such parameter (passing it would
    # store an array named "allow_pickle"). No array here has dtype object: nothing is pickled.
    atomic_write(path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    return path


def _same_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> bool:
    """True when the file at ``path`` holds exactly ``arrays`` (same keys, dtypes, values)."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as z:
            if sorted(z.files) != sorted(arrays):
                return False
            for key, arr in arrays.items():
                old = z[key]
                if old.dtype != arr.dtype or not np.array_equal(old, arr):
                    return False
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        return False  # damaged or foreign: rewrite it
    return True


def convert_feature_cache(
    src_dir: str | Path,
    dst_dir: str | Path | None = None,
    superclasses: Iterable[str] | None = None,
) -> list[Path]:
    """Convert the original's ``features.pkl`` files to our ``features.npz`` format.

    Unpickles every selected ``features.pkl`` (this runs code from the file: convert only
    caches you created yourself), validates it and writes ``features.npz`` with the same keys
    and JSON metadata. Existing identical ``.npz`` files are left untouched.

    Parameters
    ----------
    src_dir : str or pathlib.Path
        Cache root holding ``<superclass>/features.pkl``.
    dst_dir : str or pathlib.Path, optional
        Where to write; defaults to ``src_dir`` (the ``.npz`` goes beside the ``.pkl`` and is
        preferred from then on).
    superclasses : iterable of str, optional
        Names to convert; default every folder holding a ``features.pkl``.

    Returns
    -------
    list of pathlib.Path
        The ``.npz`` files, one per converted superclass.

    Raises
    ------
    FeatureCacheError
        On a missing folder or file or a malformed pickle (nothing is written for it).
    """
    src = _cache_root(src_dir)
    dst = Path(dst_dir) if dst_dir is not None else src
    if superclasses is None:
        names = sorted(p.name for p in src.iterdir() if (p / PKL_NAME).is_file())
    else:
        names = list(superclasses)
    # Validate everything first so a bad file stops the run before anything is written.
    loaded = []
    for name in names:
        _check_name(name)
        pkl = src / name / PKL_NAME
        if not pkl.is_file():
            raise FeatureCacheError(str(pkl), "no such file")
        loaded.append(load_superclass_file(pkl, allow_pickle=True))
    return [write_superclass(dst, data, name=data.name) for data in loaded]
