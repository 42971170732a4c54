"""The per-superclass feature cache on disk: reading, writing, converting, and its pickle policy.

Layout, as in the original research code::

    <feature_cache_dir>/<superclass>/features.npz    our format (preferred)
    <feature_cache_dir>/<superclass>/features.pkl    the original's pickled dict

Both hold the same keys: ``all_``, ``train_`` and ``test_`` × ``features``, ``targets``,
``known_mask``, ``labeled_mask``, ``indices`` (``all`` = train then test). The ``.npz`` adds
``metadata_json``, a 0-d string array holding JSON (the original's metadata such as
``superclass_name``, ``label_mapping``, ``feat_dim``, sizes and class lists), and is read with
``allow_pickle=False``: loading it can never run code, and no member header can make it
allocate more than its data holds (:mod:`ssddbc.data._npz`). A ``.pkl`` is read by a restricted
unpickler (:mod:`ssddbc.data._safe_pickle`) that rebuilds only numpy arrays, dtypes and builtin
containers/scalars, which is all an original cache holds; a pickle naming anything else is
refused with :class:`~ssddbc._errors.UnsafePickleError` before it runs. ``allow_pickle=True``
reads arbitrary pickles (it runs whatever code the file names: only for files you created
yourself). The arrays are validated by :mod:`ssddbc.data._superclass`.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from knncache import atomic_write
from ssddbc._errors import FeatureCacheError, InvalidInputError, UnsafePickleError
from ssddbc.data._npz import read_npz
from ssddbc.data._safe_pickle import safe_load
from ssddbc.data._superclass import ARRAY_KEYS, Fail, SuperclassData, superclass_from_dict

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
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


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
    content: dict[str, Any] = dict(read_npz(path))
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
        version = wrapper.get("format_version", FORMAT_VERSION)
        if type(version) is not int or version < 1:
            raise FeatureCacheError(
                str(path),
                f"key 'metadata_json': format_version must be a positive integer, got {version!r}",
            )
        if version > FORMAT_VERSION:
            raise FeatureCacheError(
                str(path),
                f"key 'metadata_json': written by a newer format version ({version}); this "
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


def check_name(name: str) -> None:
    """Refuse a superclass name that is not a plain folder name (package-internal)."""
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
    check_name(name)
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


def npz_arrays(data: SuperclassData) -> dict[str, np.ndarray]:
    """The arrays a ``features.npz`` of ``data`` holds, ``metadata_json`` included."""
    full = data.to_dict()
    arrays = {k: np.ascontiguousarray(full.pop(k)) for k in ARRAY_KEYS}
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
    check_name(name)
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
    arrays = npz_arrays(data)
    if skip_if_identical and path.is_file() and same_npz(path, arrays):
        return path
    # Recent numpy types savez(file, *args, allow_pickle: bool, **kwds), so a dict splatted as
    # keywords cannot match it; older numpy (1.25) has no such parameter (passing it would
    # store an array named "allow_pickle"). No array here has dtype object: nothing is pickled.
    atomic_write(path, lambda handle: np.savez(handle, **arrays))  # type: ignore[arg-type]
    return path


def same_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> bool:
    """True when the file at ``path`` holds exactly ``arrays`` (same keys, dtypes, values)."""
    try:
        old = read_npz(path)
    except FeatureCacheError:
        return False  # damaged or foreign: rewrite it
    return sorted(old) == sorted(arrays) and all(
        old[key].dtype == arr.dtype and np.array_equal(old[key], arr) for key, arr in arrays.items()
    )


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
        check_name(name)
        pkl = src / name / PKL_NAME
        if not pkl.is_file():
            raise FeatureCacheError(str(pkl), "no such file")
        loaded.append(load_superclass_file(pkl, allow_pickle=True))
    return [write_superclass(dst, data, name=data.name) for data in loaded]
