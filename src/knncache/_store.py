"""``KnnStore``: the abstract store; all shared logic lives here (template method).

Backends (:class:`~knncache.PersistentStore`, :class:`~knncache.EphemeralStore`) override
only small primitives: :meth:`KnnStore._prepare_root`, :meth:`KnnStore._after_write` and
:meth:`KnnStore._on_close`, and declare the capability attribute ``is_persistent``. The
per-entry lock is a strategy from :mod:`knncache._locks` chosen by ``lock=``.

Correctness does not depend on the lock. Every file is written atomically, files of the
same name always hold the same bytes (the graph is deterministic, the features are the
fingerprinted content) and ``meta.json`` is committed last, so writers racing without a lock
produce one valid entry. What the lock buys is the right to delete: under an exclusive lock
(``"hard"``) leftovers and superseded k-files are removed at once; otherwise (``"soft"``,
``"none"``) a file is only removed when no meta refers to it and it is older than a grace
period, so no racing writer can lose a file its meta is about to name.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shutil
import time
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from knncache._atomic import HashingWriter, atomic_write, fsync_dir
from knncache._engines import Engine, engine_meta, make_engine
from knncache._entry import (
    FEATURES_FILE,
    META_FILE,
    Meta,
    array_file,
    check_entry,
    check_file,
    k_files,
    read_meta,
    validate_array_name,
)
from knncache._errors import (
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    InvalidFeaturesError,
    KnnCacheError,
    KnnCacheWarning,
    LockTimeoutError,
    StoreClosedError,
    StoreWriteError,
)
from knncache._fingerprint import FORMAT_VERSION, fingerprint, is_fingerprint, validate_fingerprint
from knncache._knn import validate_features, validate_k, validate_metric
from knncache._locks import make_lock_strategy
from knncache._ref import _IN_USE, KnnRef

__all__ = ["CorruptEntry", "EntryInfo", "KnnStore"]

_STAT_KEYS = (
    "hits",
    "misses",
    "searches",
    "corrupt_rebuilds",
    "evictions",
    "array_computes",
    "array_hits",
)


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """Summary of one committed entry (from its ``meta.json``; checksums not verified).

    Attributes
    ----------
    fingerprint : str
    n, d, k : int
    metric : str
    bytes : int
        Total size of the entry's files.
    created, last_used : float
        POSIX timestamps; ``last_used`` is refreshed on every ``ensure`` hit.
    has_features : bool
    arrays : tuple of str
        Names of the extra arrays (``ensure_array``).
    """

    fingerprint: str
    n: int
    d: int
    k: int
    metric: str
    bytes: int
    created: float
    last_used: float
    has_features: bool
    arrays: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CorruptEntry:
    """One entry :meth:`KnnStore.verify` found corrupt, and why."""

    fingerprint: str
    path: str
    reason: str


def _dir_bytes(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for child in path.iterdir():
            with contextlib.suppress(OSError):
                total += child.stat().st_size
    return total


def _remove_entry_dir(entry: Path) -> None:
    # meta.json first: from that moment on the entry does not exist for any reader.
    with contextlib.suppress(FileNotFoundError):
        (entry / META_FILE).unlink()
    shutil.rmtree(entry, ignore_errors=True)


def _now() -> float:
    return time.time()


class KnnStore(abc.ABC):
    """Abstract store of k-nearest-neighbour graphs keyed by the content of the features.

    The base class owns fingerprinting, validation, locking, writing, loading, meta handling
    and corruption detection. Entries are directories ``<root>/<fingerprint>/`` (layout in
    the README); ``meta.json`` is written last and is the commit marker. A per-entry file lock
    (``<root>/<fingerprint>.lock`` for ``lock="hard"``, a ``<fingerprint>.softlock`` marker
    for ``lock="soft"``) makes concurrent processes compute an entry once.

    Attributes
    ----------
    is_persistent : bool
        Capability: whether entries survive the process. Branch on this, not on the class.
    """

    is_persistent: ClassVar[bool]

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lock_timeout: float = 600.0,
        lock: str = "hard",
    ) -> None:
        self._root = Path(root).absolute()
        self._lock_timeout = float(lock_timeout)
        if not self._lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        self._locking = make_lock_strategy(lock)
        # Without an exclusive lock, an unreferenced file younger than this may belong to a
        # writer about to commit: a writer's files reach the disk within I/O time of its
        # meta (the search runs before the first write), far less than a lock timeout.
        self._sweep_grace = max(self._lock_timeout, 60.0)
        self._closed = False
        self._stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)

    # ------------------------------------------------------------------ primitives
    @abc.abstractmethod
    def _prepare_root(self) -> None:
        """Make sure the root directory exists before a write (raise StoreWriteError)."""

    def _after_write(self, fp: str) -> None:  # noqa: B027  # optional hook, no-op by default
        """Called after an entry was written (outside its lock)."""

    def _on_close(self) -> None:  # noqa: B027  # optional hook, no-op by default
        """Release the backend's resources (remove the temporary directory...)."""

    # ------------------------------------------------------------------ properties
    @property
    def root(self) -> Path:
        """The store's root directory."""
        return self._root

    @property
    def lock(self) -> str:
        """The lock mode: ``"hard"``, ``"soft"`` or ``"none"``."""
        return self._locking.name

    @property
    def lock_timeout(self) -> float:
        """Seconds ``ensure`` waits for an entry lock held by another process."""
        return self._lock_timeout

    @property
    def stats(self) -> Mapping[str, int]:
        """Read-only live counters of what this store object did in this process.

        Keys: ``"hits"`` (``ensure`` answered from an existing entry), ``"misses"``
        (``ensure`` had to write), ``"searches"`` (``compute_knn`` runs),
        ``"corrupt_rebuilds"``, ``"evictions"``, ``"array_computes"``, ``"array_hits"``.
        """
        return types.MappingProxyType(self._stats)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the store (idempotent). An ``EphemeralStore`` removes its directory."""
        if not self._closed:
            self._closed = True
            self._on_close()

    def __enter__(self) -> KnnStore:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        lock = "" if self._locking.name == "hard" else f", lock={self._locking.name!r}"
        state = " closed" if self._closed else ""
        return f"{type(self).__name__}({str(self._root)!r}{lock}{state})"

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(str(self._root))

    def _entry(self, fp: str) -> Path:
        return self._root / validate_fingerprint(fp)

    def _lock(
        self, fp: str, *, timeout: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        wait = self._lock_timeout if timeout is None else timeout
        return self._locking.hold(self._root, fp, wait)

    def _ref(self, meta: Meta) -> KnnRef:
        return KnnRef(
            root=str(self._root),
            fingerprint=meta["fingerprint"],
            n=meta["n"],
            d=meta["d"],
            k=meta["k"],
            metric=meta["metric"],
            persistent=self.is_persistent,
        )

    def _pin(self, fp: str) -> None:
        _IN_USE.add((str(self._root), fp))

    def _inspect(self, fp: str) -> tuple[Meta | None, str | None]:
        """``(meta, None)`` for a valid entry, ``(None, None)`` if absent, else the problem."""
        entry = self._entry(fp)
        try:
            return check_entry(entry, fp, arrays=False), None
        except FileNotFoundError:
            # No meta: absent, or left behind (crash, hand deletion) with files in it.
            try:
                leftovers = [p.name for p in entry.iterdir()]
            except OSError:
                leftovers = []
            if leftovers:
                return None, f"meta.json missing (uncommitted files: {sorted(leftovers)})"
            return None, None
        except CorruptEntryError as exc:
            return None, exc.reason
        except OSError as exc:
            return None, f"unreadable ({exc})"

    @staticmethod
    def _usable(meta: Meta | None, k: int, need_features: bool) -> bool:
        return (
            meta is not None
            and meta["k"] >= k
            and (not need_features or FEATURES_FILE in meta["files"])
        )

    def _touch(self, fp: str) -> None:
        # The last-used time is meta.json's mtime: refreshing it costs no rewrite.
        with contextlib.suppress(OSError):
            os.utime(self._entry(fp) / META_FILE)

    def _write_meta(self, entry: Path, meta: Meta) -> None:
        data = json.dumps(meta, indent=1, sort_keys=True).encode()

        def write(w: HashingWriter) -> None:
            w.write(data)

        atomic_write(entry / META_FILE, write)

    def _save(self, entry: Path, name: str, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
        def write(w: HashingWriter) -> None:
            np.save(w, np.ascontiguousarray(arr), allow_pickle=False)

        digest, nbytes = atomic_write(entry / name, write)
        return {
            "shape": [int(s) for s in arr.shape],
            "dtype": arr.dtype.str,
            "xxh3_128": digest,
            "bytes": nbytes,
        }

    def _referenced(self, entry: Path, keep: Meta | None) -> set[str]:
        names = {META_FILE}
        metas = [keep]
        if not self._locking.exclusive:
            # Another writer may have committed since ``keep`` was read.
            with contextlib.suppress(OSError, CorruptEntryError):
                metas.append(read_meta(entry, entry.name))
        for meta in metas:
            if meta is not None:
                names |= set(meta["files"]) | {array_file(a) for a in meta["arrays"]}
        return names

    def _sweep(self, entry: Path, keep: Meta | None) -> None:
        """Under the entry lock: unlink files no committed meta refers to.

        Under an exclusive lock every write happens under that lock, so such files can only
        be leftovers of a writer that died (temporary files, k-files written before a crash,
        k-files superseded by a larger k) and go at once. Without one, a file is removed
        only when neither ``keep`` nor the meta on disk refers to it and it is older than
        the grace period: a younger one may be a racing writer's, about to be committed.
        Readers that mapped a removed file keep their mapping.
        """
        wanted = self._referenced(entry, keep)
        cutoff = None if self._locking.exclusive else _now() - self._sweep_grace
        with contextlib.suppress(OSError):
            for child in entry.iterdir():
                if child.name in wanted or not child.is_file():
                    continue
                with contextlib.suppress(OSError):
                    if cutoff is not None and child.stat().st_mtime > cutoff:
                        continue
                    child.unlink()

    def _unlink_unreferenced(self, entry: Path, paths: list[Path]) -> None:
        """Failure cleanup: remove files we renamed into place that no meta refers to.

        Without an exclusive lock a racing writer may have committed a meta naming the same
        files (same names, same bytes); those stay.
        """
        wanted = set() if self._locking.exclusive else self._referenced(entry, None)
        for path in paths:
            if path.name not in wanted:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _current_meta(self, fp: str) -> Meta | None:
        """The committed meta of ``fp`` if the entry is intact (checksums verified), else None."""
        try:
            return check_entry(self._entry(fp), fp, arrays=False)
        except (OSError, CorruptEntryError):
            return None

    def _write_entry(
        self,
        fp: str,
        arr: np.ndarray[Any, Any],
        k: int,
        metric: str,
        store_features: bool,
        old: Meta | None,
        engine: Engine,
    ) -> Meta:
        """Write (or complete) an entry under its lock; ``meta.json`` last.

        The search runs before the first file is written, so a writer's files reach the
        disk within I/O time of its commit. Without an exclusive lock the meta on disk is
        read again just before committing: if a racing writer already committed an entry
        that serves this request, it is returned instead (no downgrade from k=30 to k=20),
        and extra arrays it recorded are kept.
        """
        entry = self._entry(fp)
        exclusive = self._locking.exclusive
        n, d = arr.shape
        reuse_k = old is not None and old["k"] >= k
        graph = None
        if not reuse_k:
            graph = engine.in_entry(entry, old).compute(arr, k, metric, True)
            self._stats["searches"] += 1
        created_dir = not entry.is_dir()
        written: list[Path] = []
        now = _now()
        try:
            entry.mkdir(exist_ok=True)
            if created_dir:
                fsync_dir(self._root)  # the new entry directory itself must survive a crash
            self._sweep(entry, old)
            files: dict[str, Any] = {}
            reused: list[str] = []
            if old is not None and FEATURES_FILE in old["files"]:
                files[FEATURES_FILE] = old["files"][FEATURES_FILE]
                reused.append(FEATURES_FILE)
            elif store_features:
                written.append(entry / FEATURES_FILE)
                files[FEATURES_FILE] = self._save(entry, FEATURES_FILE, arr)
            if graph is None:
                assert old is not None
                k_new = old["k"]
                for name in k_files(k_new):
                    files[name] = old["files"][name]
                    reused.append(name)
            else:
                k_new = k
                arrays: tuple[np.ndarray[Any, Any], ...] = (graph.neighbors, graph.distances)
                for name, data in zip(k_files(k_new), arrays, strict=True):
                    written.append(entry / name)
                    files[name] = self._save(entry, name, data)
            meta: Meta = {
                "format_version": FORMAT_VERSION,
                "fingerprint": fp,
                "metric": metric,
                "n": int(n),
                "d": int(d),
                "k": int(k_new),
                "features_dtype": arr.dtype.str,
                "files": files,
                "arrays": dict(old["arrays"]) if old is not None else {},
                "created": old["created"] if old is not None else now,
                "last_used": now,
                "library": "knncache",
            }
            meta.update(engine_meta(engine, graph, arr, metric, old))
            if not exclusive:
                # Files we did not rewrite must look fresh to a racing writer's sweep.
                for name in reused:
                    os.utime(entry / name)
                current = self._current_meta(fp)
                if current is not None:
                    if self._usable(current, k, store_features):
                        return current  # our files are the same bytes or unreferenced
                    meta["arrays"] = {**current["arrays"], **meta["arrays"]}
                    meta["created"] = min(meta["created"], current["created"])
            self._write_meta(entry, meta)
        except BaseException as exc:
            self._unlink_unreferenced(entry, written)
            if created_dir and exclusive:
                shutil.rmtree(entry, ignore_errors=True)
            elif created_dir:
                with contextlib.suppress(OSError):  # only if empty: nobody else's files
                    entry.rmdir()
            if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
                raise StoreWriteError(
                    str(entry), exc.strerror or str(exc) or type(exc).__name__, exc.errno
                ) from exc
            raise
        # Committed. Readers holding old memmaps keep them; new readers follow the meta.
        # Without an exclusive lock a racing writer may be about to commit a meta naming the
        # old k-files: they are left to the grace-period sweep.
        if exclusive and old is not None and old["k"] < k_new:
            for name in k_files(old["k"]):
                with contextlib.suppress(OSError):
                    (entry / name).unlink()
        return meta

    # ------------------------------------------------------------------ public API
    def ensure(
        self,
        X: Any,
        k: int,
        metric: str = "euclidean",
        *,
        store_features: bool = True,
        method: str = "exact",
        params: Mapping[str, Any] | None = None,
        executor: Any = None,
    ) -> KnnRef:
        """Return a ref to the graph of ``X`` with at least ``k`` neighbours, computing it once.

        Fast path: an entry for ``fingerprint(X, metric)`` with ``k`` or more neighbours whose
        checksums verify is a hit (its last-used time is refreshed). Otherwise the entry lock
        is taken, the entry checked again (another process may have written it meanwhile),
        and one exact search runs; files are written atomically, ``meta.json`` last. Asking
        for a larger ``k`` than stored recomputes at that ``k`` and replaces the entry: the
        old k-files are unlinked after the new meta is in place, so readers that already
        mapped them are not disturbed. A corrupt entry is never served: it is reported with a
        :class:`KnnCacheWarning` and rebuilt. Everything is validated before any file is
        written.

        Parameters
        ----------
        X : array_like
            Features ``(N, d)``; see :func:`knncache.compute_knn`.
        k : int
            Neighbours needed, ``1 <= k <= N - 1``.
        metric : {"euclidean", "cosine"}
        store_features : bool, keyword-only
            Also store ``features.npy`` (needed by ``ref.features()`` and ``ensure_array``).
            An entry that already holds features keeps them either way.
        method : {"exact", "hnsw", "ivf"}, keyword-only
            The search engine (see :func:`knncache.compute_knn`). An approximate method and
            its resolved parameters are part of the entry's key (each is its own entry, never
            mistaken for the exact one) and of its ``meta.json``, with the recall measured
            on 1,000 seeded queries against exact search (``knncache info`` shows both).
        params : mapping, keyword-only, optional
            The method's parameters (:data:`knncache.ENGINE_DEFAULTS`).
        executor : concurrent.futures.Executor or distributed.Client, keyword-only, optional
            Exact method: split the search across the executor's workers (bit-identical
            result, same key). They map the matrix from the entry's ``features.npy`` when it
            has one, else from a temporary ``.npy`` in the store root, which they must see
            (as they must to use the refs).

        Returns
        -------
        KnnRef
            With ``ref.k >= k`` (the stored ``k``; load it with ``ref.load(k)``).

        Raises
        ------
        InvalidFeaturesError, InvalidKError, UnknownMetricError, InvalidParameterError
            Invalid input (nothing written).
        StoreClosedError
            If the store was closed.
        LockTimeoutError
            If another process held the entry lock longer than ``lock_timeout`` (with a soft
            lock: ``holder_host``, ``holder_pid`` and ``lock_age`` say who and how long).
        StoreWriteError
            If the entry cannot be written (read-only directory, disk full, root is a file);
            no partial file is left. Callers that must not fail fall back to an
            ``EphemeralStore`` or to :func:`knncache.compute_knn`.
        """
        self._check_open()
        validate_metric(metric)
        arr = validate_features(X, metric)
        k = validate_k(k, arr.shape[0])
        if not isinstance(store_features, bool):
            raise TypeError(f"store_features must be a bool, got {store_features!r}")
        engine = make_engine(method, params, arr.shape[0], executor)
        fp = engine.key(fingerprint(arr, metric))

        meta, problem = self._inspect(fp)
        if problem is None and meta is not None and self._usable(meta, k, store_features):
            self._touch(fp)
            self._stats["hits"] += 1
            self._pin(fp)
            return self._ref(meta)

        self._prepare_root()
        with self._lock(fp):
            meta, problem = self._inspect(fp)
            if problem is not None and self._in_flight(fp):
                problem = None  # a racing writer's uncommitted files (no exclusive lock)
            if problem is not None:
                warnings.warn(
                    f"knncache: corrupt entry {fp} in {str(self._root)!r} ({problem}); "
                    "rebuilding it",
                    KnnCacheWarning,
                    stacklevel=2,
                )
                self._stats["corrupt_rebuilds"] += 1
                self._discard_corrupt(fp)
                meta = None
            if self._usable(meta, k, store_features):
                assert meta is not None
                self._touch(fp)
                self._stats["hits"] += 1
                self._pin(fp)
                return self._ref(meta)
            self._stats["misses"] += 1
            meta = self._write_entry(fp, arr, k, metric, store_features, meta, engine)
            self._pin(fp)
        self._after_write(fp)
        return self._ref(meta)

    def _in_flight(self, fp: str) -> bool:
        """Without an exclusive lock: no meta yet, but files younger than the grace period.

        Those may belong to a writer racing us (it will commit them), so they are neither
        reported nor removed.
        """
        if self._locking.exclusive:
            return False
        entry = self._entry(fp)
        if (entry / META_FILE).exists():
            return False
        cutoff = _now() - self._sweep_grace
        with contextlib.suppress(OSError):
            for child in entry.iterdir():
                with contextlib.suppress(OSError):
                    if child.stat().st_mtime > cutoff:
                        return True
        return False

    def _discard_corrupt(self, fp: str) -> None:
        entry = self._entry(fp)
        try:
            if self._locking.exclusive:
                _remove_entry_dir(entry)
            else:
                # Uncommit only: a racing writer may be using the directory; the rewrite
                # replaces every file it names and the sweep takes the rest in time.
                with contextlib.suppress(FileNotFoundError):
                    (entry / META_FILE).unlink()
        except OSError as exc:
            raise StoreWriteError(str(entry), exc.strerror or str(exc), exc.errno) from None

    def ensure_array(
        self,
        ref: KnnRef,
        name: str,
        compute: Callable[[np.memmap[Any, Any]], Any],
    ) -> None:
        """Compute an extra per-features array once and store it in the entry.

        For artefacts that, like the graph, depend only on the features (an ``N x N``
        pairwise distance matrix, ...). Under the entry lock: if ``array_{name}.npy`` is
        absent or fails its checksum, ``compute(features_memmap)`` is called, its result
        written atomically and recorded in ``meta.json`` under ``"arrays"``
        (``stats["array_computes"]``); otherwise nothing is computed
        (``stats["array_hits"]``). Workers read it with ``ref.array(name)``. Extra arrays
        survive a replacement of the entry at a larger ``k``, count toward ``max_bytes`` and
        are checked by :meth:`verify`. Without an exclusive lock (``lock="soft"`` or
        ``"none"``) racing writers may both compute: ``compute`` must then be deterministic
        (same bytes), or one writer's checksum may meet the other's file and the entry be
        rebuilt.

        Parameters
        ----------
        ref : KnnRef
            A ref into this store whose entry holds features (``store_features=True``).
        name : str
            Matches ``[a-z0-9_]{1,64}``.
        compute : callable
            ``compute(features) -> numpy.ndarray`` (numeric or bool dtype, no objects).

        Raises
        ------
        InvalidNameError
            Bad ``name``.
        StoreClosedError
            The store is closed.
        EntryNotFoundError
            The entry is not (or no longer) in this store.
        CorruptEntryError
            The entry is corrupt (call ``ensure`` to rebuild it).
        FeaturesNotStoredError
            The entry holds no features.
        InvalidFeaturesError
            ``compute`` returned an object (non-numeric) array.
        LockTimeoutError, StoreWriteError
            As for :meth:`ensure`.
        """
        self._check_open()
        validate_array_name(name)
        fp = validate_fingerprint(ref.fingerprint)
        entry = self._entry(fp)
        if Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(str(entry), fp)
        if not entry.is_dir():
            raise EntryNotFoundError(str(entry), fp)
        with self._lock(fp):
            try:
                meta = check_entry(entry, fp, arrays=False)
            except FileNotFoundError:
                raise EntryNotFoundError(str(entry), fp) from None
            if FEATURES_FILE not in meta["files"]:
                raise FeaturesNotStoredError(fp)
            fname = array_file(name)
            rec = meta["arrays"].get(name)
            if rec is not None:
                try:
                    check_file(entry, fp, fname, rec, checksum=True)
                except CorruptEntryError as exc:
                    warnings.warn(
                        f"knncache: {exc}; recomputing array {name!r}",
                        KnnCacheWarning,
                        stacklevel=2,
                    )
                    self._stats["corrupt_rebuilds"] += 1
                else:
                    self._stats["array_hits"] += 1
                    self._pin(fp)
                    return
            self._sweep(entry, meta)
            feats = np.load(entry / FEATURES_FILE, mmap_mode="r", allow_pickle=False)
            result = np.asarray(compute(feats))
            if result.dtype.kind not in "biuf":
                raise InvalidFeaturesError(
                    "dtype",
                    f"ensure_array({name!r}): compute returned dtype {result.dtype}; "
                    "expected a numeric or bool array",
                )
            try:
                meta["arrays"][name] = self._save(entry, fname, result)
                meta["last_used"] = _now()
                self._write_meta(entry, meta)
            except BaseException as exc:
                # The committed meta never lists a half-done array; drop whatever was written
                # (unless a racing writer's meta names it: no exclusive lock).
                self._unlink_unreferenced(entry, [entry / fname])
                if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
                    raise StoreWriteError(
                        str(entry / fname), exc.strerror or str(exc), exc.errno
                    ) from exc
                raise
            self._stats["array_computes"] += 1
            self._pin(fp)
        self._after_write(fp)

    def get(self, fingerprint: str) -> KnnRef | None:
        """Ref to the committed, intact entry ``fingerprint``, or ``None``.

        A corrupt entry gives ``None`` and a :class:`KnnCacheWarning` (``ensure`` rebuilds
        it, ``verify`` reports it).

        Raises
        ------
        InvalidNameError
            If ``fingerprint`` is not 32 lowercase hex characters.
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        fp = validate_fingerprint(fingerprint)
        meta, problem = self._inspect(fp)
        if problem is not None:
            # Maybe a concurrent replacement (new meta, old k-files unlinked): look again.
            meta, problem = self._inspect(fp)
        if problem is not None and self._in_flight(fp):
            return None  # a racing writer's uncommitted files (no exclusive lock)
        if problem is not None:
            warnings.warn(
                f"knncache: corrupt entry {fp} ignored ({problem})", KnnCacheWarning, stacklevel=2
            )
            return None
        if meta is None:
            return None
        self._pin(fp)
        return self._ref(meta)

    def release(self, ref: KnnRef | str) -> None:
        """Let this process evict an entry it used (it is protected from eviction until then).

        Long-running processes (training loops reclustering every few epochs) call this once
        they no longer need an entry, so that ``max_bytes`` can be honoured.
        """
        fp = ref if isinstance(ref, str) else ref.fingerprint
        _IN_USE.discard((str(self._root), fp))

    def _entry_dirs(self) -> list[Path]:
        try:
            children = list(self._root.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(
            p for p in children if is_fingerprint(p.name) and p.is_dir() and not p.is_symlink()
        )

    def entries(self) -> list[EntryInfo]:
        """Committed entries, most recently used first (metas are read, checksums are not).

        Entries whose meta is missing or unreadable are left out; :meth:`verify` lists them.

        Raises
        ------
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        out = []
        for entry in self._entry_dirs():
            fp = entry.name
            try:
                meta = read_meta(entry, fp)
                mtime = (entry / META_FILE).stat().st_mtime
            except (OSError, CorruptEntryError):
                continue
            out.append(
                EntryInfo(
                    fingerprint=fp,
                    n=meta["n"],
                    d=meta["d"],
                    k=meta["k"],
                    metric=meta["metric"],
                    bytes=_dir_bytes(entry),
                    created=float(meta["created"]),
                    last_used=max(float(meta["last_used"]), mtime),
                    has_features=FEATURES_FILE in meta["files"],
                    arrays=tuple(sorted(meta["arrays"])),
                )
            )
        out.sort(key=lambda e: (-e.last_used, e.fingerprint))
        return out

    def _remove_if_unlocked(self, fp: str) -> bool:
        try:
            with self._lock(fp, timeout=0):
                _remove_entry_dir(self._entry(fp))
        except LockTimeoutError:
            return False
        _IN_USE.discard((str(self._root), fp))
        return True

    def clear(self) -> list[str]:
        """Remove every entry; return the fingerprints removed.

        Each entry is removed under its lock, taken without waiting: an entry that another
        process is writing at that moment is skipped (left as is) rather than waited for.
        Memmaps already opened by readers stay valid (files are unlinked, not truncated).

        Raises
        ------
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        removed = []
        for entry in self._entry_dirs():
            if self._remove_if_unlocked(entry.name):
                removed.append(entry.name)
        return removed

    def verify(self) -> list[CorruptEntry]:
        """Check every entry completely (sizes, headers, checksums, extra arrays).

        An entry without ``meta.json`` is reported unless another process holds its lock
        (it is being written). Nothing is repaired: ``ensure`` rebuilds, ``clear`` removes.

        Returns
        -------
        list of CorruptEntry
            ``(fingerprint, path, reason)`` for each corrupt entry; empty when all is well.

        Raises
        ------
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        bad = []
        for entry in self._entry_dirs():
            fp = entry.name
            try:
                check_entry(entry, fp, arrays=True)
            except FileNotFoundError:
                if self._being_written(fp):
                    continue
                bad.append(CorruptEntry(fp, str(entry), "meta.json missing"))
            except CorruptEntryError as exc:
                bad.append(CorruptEntry(fp, str(entry), exc.reason))
            except OSError as exc:
                bad.append(CorruptEntry(fp, str(entry), f"unreadable ({exc})"))
        return bad

    def _being_written(self, fp: str) -> bool:
        # Called when the meta was missing: held lock, a meta committed meanwhile, or (no
        # exclusive lock) young files all mean a writer is at work.
        if self._locking.held_by_other(self._root, fp):
            return True
        return (self._entry(fp) / META_FILE).exists() or self._in_flight(fp)
