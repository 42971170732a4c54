"""``KnnRef``: the small picklable handle a worker process turns into memory-mapped arrays."""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knncache._entry import (
    FEATURES_FILE,
    MAX_MARKER_BYTES,
    META_FILE,
    array_file,
    array_marker,
    graph_tag,
    k_files,
    parse_marker,
    read_meta,
    read_npy_header_fd,
)
from knncache._errors import (
    ArrayNotFoundError,
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    ForeignObjectError,
    InvalidKError,
    StoreClosedError,
)
from knncache._fingerprint import validate_fingerprint
from knncache._graph import KnnGraph
from knncache._safefs import DIR_FLAGS, open_dir_at, open_regular, read_capped
from knncache._usage import IN_USE

__all__ = ["KnnRef"]


_TAG_RE = re.compile(r"[0-9a-f]{16}")

# The exact header np.save writes for a plain (non-structured) dtype.
_HEADER_RE = re.compile(
    rb"\{'descr': '([<>|=]?[biufc]\d{1,2})', 'fortran_order': (False|True), "
    rb"'shape': \(((?:\d+, )*\d*)(?:,)?\), \}[ ]*\n"
)


def _map_fd(fd: int, where: str) -> np.ndarray[Any, Any]:
    """Read-only memory map of the ``.npy`` file open as ``fd`` (a checked regular file).

    ``np.load(path, mmap_mode="r")`` costs ~0.25 ms (it opens the file twice, resolves the
    real path and parses the header with ``ast``); workers call this once per task, so the
    header that ``np.save`` writes is parsed here with one strict regex and the file mapped
    once. Anything unusual is parsed by ``numpy.lib.format`` from the same descriptor.

    Raises
    ------
    ValueError
        The file is truncated or not a plain ``.npy`` file.
    """
    head = os.pread(fd, 256, 0)
    m = None
    if head[:6] == b"\x93NUMPY" and head[6:8] == b"\x01\x00":
        hlen = int.from_bytes(head[8:10], "little")
        offset = 10 + hlen
        m = _HEADER_RE.fullmatch(head[10:offset]) if offset <= len(head) else None
    if m is not None:
        dtype = np.dtype(m.group(1).decode())
        fortran = m.group(2) == b"True"
        shape = tuple(int(x) for x in m.group(3).split(b",") if x.strip())
    else:
        shape, dtype_str, fortran, offset = read_npy_header_fd(fd)
        dtype = np.dtype(dtype_str)
    count = 1
    for s in shape:
        count *= s
    size = os.fstat(fd).st_size
    if size < offset + count * dtype.itemsize:
        raise ValueError(
            f"{where} is truncated: {size} bytes, need {offset + count * dtype.itemsize}"
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    flat = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def open_at(dfd: int, name: str, where: str) -> np.ndarray[Any, Any]:
    """Map ``name`` in the entry directory ``dfd`` (a regular file; links never followed).

    Raises
    ------
    FileNotFoundError
        No such file.
    ForeignObjectError
        Not a regular file.
    ValueError
        Truncated or not a ``.npy`` file.
    """
    fd, _ = open_regular(dfd, name, where=where)
    try:
        return _map_fd(fd, os.path.join(where, name))
    finally:
        os.close(fd)


def _entry_dir_fd(entry: str) -> int:
    """Descriptor of a ref's entry directory, opened without following a link.

    Raises
    ------
    FileNotFoundError
        Absent. ForeignObjectError: a link or anything else than a directory.
    """
    root, fp = os.path.split(entry)
    root_fd = os.open(root, DIR_FLAGS)
    try:
        return open_dir_at(root_fd, fp, where=root)
    finally:
        os.close(root_fd)


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
    tag : str or None
        The build tag the entry's graph files are named with (an approximate graph's meta
        ``build.tag``); None for untagged names (exact graphs, older approximate ones).
    """

    root: str
    fingerprint: str
    n: int
    d: int
    k: int
    metric: str
    persistent: bool
    tag: str | None = None

    def __post_init__(self) -> None:
        validate_fingerprint(self.fingerprint)
        if self.tag is not None and _TAG_RE.fullmatch(self.tag) is None:
            raise CorruptEntryError(self.fingerprint, f"invalid graph tag {self.tag!r}")

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
        if not self.persistent and IN_USE.is_closed(self.root):
            raise StoreClosedError(self.root)

    def _missing(self) -> Exception:
        if not self.persistent and (IN_USE.is_closed(self.root) or not os.path.isdir(self.root)):
            return StoreClosedError(self.root)
        return EntryNotFoundError(str(Path(self.root) / self.fingerprint), self.fingerprint)

    def _entry_fd(self) -> int:
        """The entry directory's descriptor (``_missing()`` if absent, corrupt if foreign)."""
        entry = str(self.path)
        try:
            return _entry_dir_fd(entry)
        except FileNotFoundError:
            raise self._missing() from None
        except ForeignObjectError as exc:
            raise CorruptEntryError(self.fingerprint, str(exc)) from None
        except NotADirectoryError:
            raise self._missing() from None

    def _map(self, dfd: int, name: str) -> np.ndarray[Any, Any]:
        try:
            return open_at(dfd, name, str(self.path))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            # A foreign object, a truncated file (fails the mmap), a garbled header.
            raise CorruptEntryError(self.fingerprint, f"cannot map {name}: {exc}") from None

    def _open_pair(
        self, dfd: int, k_stored: int, tag: str | None
    ) -> tuple[np.ndarray[Any, Any], ...]:
        # A tag in a name is only ever joined to "k{k}-": validated (or the meta's, which
        # parse_meta validated), so a tampered pickle cannot name a path outside the entry.
        if tag is not None and _TAG_RE.fullmatch(tag) is None:
            raise CorruptEntryError(self.fingerprint, f"invalid graph tag {tag!r}")
        nb_name, ds_name = k_files(k_stored, tag)
        nb = self._map(dfd, nb_name)
        ds = self._map(dfd, ds_name)
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

        The files mapped are those the ref names (``k`` and ``tag``: the ones whose
        checksums the store verified when it handed out the ref). If the entry was replaced
        in the meantime (a larger ``k``, or another build of an approximate graph; its old
        files unlinked), the meta is re-read once and the pair of files it names is used.
        Files are opened without following links and must be regular files.

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
            If a file is truncated, a foreign object, or its header disagrees with the ref.
        """
        if k is None:
            k = self.k
        elif isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= self.k:
            raise InvalidKError(
                k, self.k, f"k must be an integer with 1 <= k <= {self.k} (the stored k), got {k!r}"
            )
        k = int(k)
        self._check_open()
        dfd = self._entry_fd()
        try:
            try:
                nb, ds = self._open_pair(dfd, self.k, self.tag)
            except FileNotFoundError:
                # Replaced (old files unlinked after the new meta), or gone.
                try:
                    meta = read_meta(dfd, self.fingerprint)
                    k_now = int(meta["k"])
                    if k_now < k:
                        raise FileNotFoundError(str(self.path))
                    nb, ds = self._open_pair(dfd, k_now, graph_tag(meta))
                except (FileNotFoundError, CorruptEntryError):
                    raise self._missing() from None
        finally:
            os.close(dfd)
        IN_USE.add(self.root, self.fingerprint)
        return KnnGraph(nb[:, :k], ds[:, :k])

    @staticmethod
    def _has_meta(dfd: int) -> bool:
        try:
            os.stat(META_FILE, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return False
        return True

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
        dfd = self._entry_fd()
        try:
            try:
                arr = self._map(dfd, FEATURES_FILE)
            except FileNotFoundError:
                if self._has_meta(dfd):
                    raise FeaturesNotStoredError(self.fingerprint) from None
                raise self._missing() from None
        finally:
            os.close(dfd)
        if arr.shape != (self.n, self.d):
            raise CorruptEntryError(
                self.fingerprint, f"features hold shape {arr.shape}, expected ({self.n}, {self.d})"
            )
        IN_USE.add(self.root, self.fingerprint)
        return arr

    def array(self, name: str) -> np.ndarray[Any, Any]:
        """Read-only memmap of the extra array ``name`` (see ``KnnStore.ensure_array``).

        Only a committed array is served (its marker ``array_{name}.json`` exists and its
        header matches the marker); the checksum is the store's job, as for :meth:`load`.

        Raises
        ------
        InvalidNameError
            If ``name`` does not match ``[a-z0-9_]{1,64}``.
        ArrayNotFoundError
            If the entry holds no such (committed) array (a ``KeyError``).
        StoreClosedError, EntryNotFoundError, CorruptEntryError
            As for :meth:`load`.
        """
        fname = array_file(name)
        self._check_open()
        dfd = self._entry_fd()
        try:
            try:
                raw = read_capped(dfd, array_marker(name), MAX_MARKER_BYTES)
                rec = parse_marker(raw, self.fingerprint, name)
                arr = self._map(dfd, fname)
            except FileNotFoundError:
                if self._has_meta(dfd):
                    raise ArrayNotFoundError(self.fingerprint, name) from None
                raise self._missing() from None
            except ForeignObjectError as exc:
                raise CorruptEntryError(self.fingerprint, str(exc)) from None
        finally:
            os.close(dfd)
        if list(arr.shape) != rec["shape"] or arr.dtype.str != rec["dtype"]:
            raise CorruptEntryError(
                self.fingerprint,
                f"{fname} holds shape {list(arr.shape)} dtype {arr.dtype.str}, its marker says "
                f"{rec['shape']} {rec['dtype']}",
            )
        IN_USE.add(self.root, self.fingerprint)
        return arr


def _ref_getstate(self: KnnRef) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in KnnRef.__slots__)


def _ref_setstate(self: KnnRef, state: tuple[Any, ...]) -> None:
    # A ref pickled before ``tag`` existed carries one value less: untagged files.
    values = dict(zip(KnnRef.__slots__, state, strict=False))
    values.setdefault("tag", None)
    for name in KnnRef.__slots__:
        object.__setattr__(self, name, values[name])


# Set after the decorator: before Python 3.11.4, dataclass(slots=True) replaces a class's own
# __getstate__/__setstate__ with ones that cannot read the shorter state of an older pickle.
KnnRef.__getstate__ = _ref_getstate  # type: ignore[attr-defined]
KnnRef.__setstate__ = _ref_setstate  # type: ignore[attr-defined]
