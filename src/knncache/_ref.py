"""``KnnRef``: the small picklable handle a worker process turns into memory-mapped arrays."""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knncache._entry import FEATURES_FILE, array_file, k_files, read_meta
from knncache._errors import (
    ArrayNotFoundError,
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    InvalidKError,
    StoreClosedError,
)
from knncache._fingerprint import validate_fingerprint
from knncache._knn import KnnGraph

__all__ = ["KnnRef"]

# Roots of ephemeral stores closed in this process: their refs raise StoreClosedError.
_CLOSED_ROOTS: set[str] = set()
# (root, fingerprint) of entries this process ensured or loaded: never evicted by it.
_IN_USE: set[tuple[str, str]] = set()


# The exact header np.save writes for a plain (non-structured) dtype.
_HEADER_RE = re.compile(
    rb"\{'descr': '([<>|=]?[biufc]\d{1,2})', 'fortran_order': (False|True), "
    rb"'shape': \(((?:\d+, )*\d*)(?:,)?\), \}[ ]*\n"
)


def _open(path: str) -> np.ndarray[Any, Any]:
    """Read-only memory map of a ``.npy`` file.

    ``np.load(path, mmap_mode="r")`` costs ~0.25 ms (it opens the file twice, resolves the
    real path and parses the header with ``ast``); workers call this once per task, so the
    header that ``np.save`` writes is parsed here with one strict regex and the file mapped
    once. Anything unusual falls back to ``np.load(mmap_mode="r", allow_pickle=False)``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is truncated or not a ``.npy`` file.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, 256)
        m = None
        if head[:6] == b"\x93NUMPY" and head[6:8] == b"\x01\x00":
            hlen = int.from_bytes(head[8:10], "little")
            offset = 10 + hlen
            m = _HEADER_RE.fullmatch(head[10:offset]) if offset <= len(head) else None
        if m is None:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of a .npz
                raise ValueError(f"{path} is not a .npy file")
            return arr
        dtype = np.dtype(m.group(1).decode())
        fortran = m.group(2) == b"True"
        shape = tuple(int(x) for x in m.group(3).split(b",") if x.strip())
        count = 1
        for s in shape:
            count *= s
        size = os.fstat(fd).st_size
        if size < offset + count * dtype.itemsize:
            raise ValueError(
                f"{path} is truncated: {size} bytes, need {offset + count * dtype.itemsize}"
            )
        if count == 0:
            return np.empty(shape, dtype=dtype)
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    flat = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


@dataclass(frozen=True, slots=True)
class KnnRef:
    """Handle to one store entry; pickles to a few hundred bytes, loads as read-only memmaps.

    A ref carries no array. Send it to worker processes instead of the graph: ``load`` there
    costs one ``open`` + ``mmap`` per file (~0.1 ms), never a search, never an unpickle, and
    the pages are shared through the OS page cache. Loading checks that the files exist and
    that their ``.npy`` headers match the ref; it does not recompute checksums (the store did
    that when it handed out the ref, and ``KnnStore.verify`` does it on demand).

    Attributes
    ----------
    root : str
        The store's root directory.
    fingerprint : str
        The entry (32 lowercase hex characters, see :func:`knncache.fingerprint`).
    n, d : int
        Number of points and feature dimension.
    k : int
        Number of neighbours stored when the ref was made (the largest ``k`` ``load`` accepts).
    metric : str
        ``"euclidean"`` or ``"cosine"``.
    persistent : bool
        Whether the store survives the process (``False`` for an ``EphemeralStore``).
    """

    root: str
    fingerprint: str
    n: int
    d: int
    k: int
    metric: str
    persistent: bool

    def __post_init__(self) -> None:
        validate_fingerprint(self.fingerprint)

    @property
    def path(self) -> Path:
        """The entry directory ``<root>/<fingerprint>``.

        Raises
        ------
        InvalidNameError
            If the fingerprint was tampered with (it is validated again here, because
            unpickling does not run ``__post_init__``).
        """
        return Path(self.root) / validate_fingerprint(self.fingerprint)

    def _check_open(self) -> None:
        if not self.persistent and self.root in _CLOSED_ROOTS:
            raise StoreClosedError(self.root)

    def _missing(self) -> Exception:
        if not self.persistent and (self.root in _CLOSED_ROOTS or not os.path.isdir(self.root)):
            return StoreClosedError(self.root)
        return EntryNotFoundError(str(Path(self.root) / self.fingerprint), self.fingerprint)

    def _open_pair(self, entry: str, k_stored: int) -> tuple[np.ndarray[Any, Any], ...]:
        nb_name, ds_name = k_files(k_stored)
        try:
            nb = _open(os.path.join(entry, nb_name))
            ds = _open(os.path.join(entry, ds_name))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            # A truncated file fails the mmap; a garbled header fails the parse.
            raise CorruptEntryError(
                self.fingerprint, f"cannot map k{k_stored} files: {exc}"
            ) from None
        for name, arr, dtype in ((nb_name, nb, np.int64), (ds_name, ds, np.float32)):
            if arr.dtype != dtype or arr.ndim != 2 or arr.shape != (self.n, k_stored):
                raise CorruptEntryError(
                    self.fingerprint,
                    f"{name} holds shape {arr.shape} dtype {arr.dtype}, expected "
                    f"({self.n}, {k_stored}) {np.dtype(dtype)}",
                )
        return nb, ds

    def load(self, k: int | None = None) -> KnnGraph:
        """Read-only memory-mapped graph of this entry, sliced to ``k`` neighbours.

        If the entry was replaced in the meantime by one with a larger ``k`` (its old files
        unlinked), the meta is re-read once and the new files are used.

        Parameters
        ----------
        k : int, optional
            Number of neighbours, ``1 <= k <= self.k``; default ``self.k``.

        Returns
        -------
        KnnGraph
            ``(neighbors, distances)`` read-only memmaps of shape ``(n, k)``.

        Raises
        ------
        InvalidKError
            If ``k`` is out of range.
        StoreClosedError
            If the ref points into an ephemeral store that was closed.
        EntryNotFoundError
            If the entry is gone (evicted, cleared, deleted). A ``FileNotFoundError``.
        CorruptEntryError
            If a file is truncated or its header disagrees with the ref.
        """
        if k is None:
            k = self.k
        elif isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.k:
            raise InvalidKError(
                k, self.k, f"k must be an integer with 1 <= k <= {self.k} (the stored k), got {k!r}"
            )
        k = int(k)
        self._check_open()
        entry = os.path.join(self.root, validate_fingerprint(self.fingerprint))
        try:
            nb, ds = self._open_pair(entry, self.k)
        except FileNotFoundError:
            # Replaced by a larger k (old files unlinked after the new meta), or gone.
            try:
                k_now = int(read_meta(Path(entry), self.fingerprint)["k"])
                if k_now < k:
                    raise FileNotFoundError(entry)
                nb, ds = self._open_pair(entry, k_now)
            except (FileNotFoundError, CorruptEntryError):
                raise self._missing() from None
        _IN_USE.add((self.root, self.fingerprint))
        return KnnGraph(nb[:, :k], ds[:, :k])

    def features(self) -> np.ndarray[Any, Any]:
        """Read-only memmap of the features ``(n, d)`` stored with the entry.

        Raises
        ------
        FeaturesNotStoredError
            If the entry was written with ``store_features=False``.
        StoreClosedError, EntryNotFoundError, CorruptEntryError
            As for :meth:`load`.
        """
        self._check_open()
        entry = self.path
        try:
            arr = _open(str(entry / FEATURES_FILE))
        except FileNotFoundError:
            if (entry / "meta.json").is_file():
                raise FeaturesNotStoredError(self.fingerprint) from None
            raise self._missing() from None
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(self.fingerprint, f"cannot map features: {exc}") from None
        if arr.shape != (self.n, self.d):
            raise CorruptEntryError(
                self.fingerprint, f"features hold shape {arr.shape}, expected ({self.n}, {self.d})"
            )
        _IN_USE.add((self.root, self.fingerprint))
        return arr

    def array(self, name: str) -> np.ndarray[Any, Any]:
        """Read-only memmap of the extra array ``name`` (see ``KnnStore.ensure_array``).

        Raises
        ------
        InvalidNameError
            If ``name`` does not match ``[a-z0-9_]{1,64}``.
        ArrayNotFoundError
            If the entry holds no such array (a ``KeyError``).
        StoreClosedError, EntryNotFoundError, CorruptEntryError
            As for :meth:`load`.
        """
        fname = array_file(name)
        self._check_open()
        entry = self.path
        try:
            arr = _open(str(entry / fname))
        except FileNotFoundError:
            if (entry / "meta.json").is_file():
                raise ArrayNotFoundError(self.fingerprint, name) from None
            raise self._missing() from None
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(self.fingerprint, f"cannot map {fname}: {exc}") from None
        _IN_USE.add((self.root, self.fingerprint))
        return arr
