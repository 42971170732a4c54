"""``KnnStore``: the abstract store; all shared logic lives here (template method).

Backends (:class:`~knncache.PersistentStore`, :class:`~knncache.EphemeralStore`) override
only small primitives: :meth:`KnnStore._prepare_root`, :meth:`KnnStore._after_write` and
:meth:`KnnStore._on_close`, and declare the capability attribute ``is_persistent``. The
per-entry lock is a strategy from :mod:`knncache._locks` chosen by ``lock=``.

Correctness does not depend on the lock. Every file is written atomically, files of the
same name always hold the same bytes (the graph is deterministic, the features are the
fingerprinted content), ``meta.json`` is committed last and every extra array has its own
commit marker (no read-modify-write of a shared file), so writers racing without a lock
produce one valid entry and lose no array. What the lock buys is the right to delete: under
an exclusive lock (``"hard"``) leftovers and superseded k-files are removed at once;
otherwise (``"soft"``, ``"none"``) a file is only removed when nothing committed refers to
it and it is older than a grace period, so no racing writer can lose a file it is about to
commit.

Nothing under the root is trusted: names are resolved relative to directory descriptors
without following links, kinds are checked, reads are capped (:mod:`knncache._safefs`).
Deletion (clear, gc, eviction, rebuilds) unlinks objects themselves and stays in the root.
Housekeeping skips entries that another process pins (:meth:`KnnStore.pin`) or writes.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import stat
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from knncache._atomic import atomic_write_at
from knncache._engines import SHIP_RE, SHIP_TEMP_RE, Engine, engine_meta, make_engine
from knncache._entry import (
    FEATURES_FILE,
    MAX_MARKER_BYTES,
    META_FILE,
    Meta,
    StaleEntryError,
    array_file,
    array_marker,
    check_entry,
    check_file,
    k_files,
    parse_marker,
    read_arrays,
    read_meta,
    validate_array_name,
)
from knncache._errors import (
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    ForeignObjectError,
    InvalidFeaturesError,
    KnnCacheError,
    KnnCacheWarning,
    LockTimeoutError,
    StoreClosedError,
    StoreWriteError,
)
from knncache._fingerprint import FORMAT_VERSION, fingerprint, is_fingerprint, validate_fingerprint
from knncache._knn import check_graph, validate_features, validate_k, validate_metric
from knncache._locks import (
    LOCK_SUFFIX,
    PIN_SUFFIX,
    names_fd,
    exclusive_pin,
    flock_acquire,
    flock_release,
    make_lock_strategy,
    pin_entry,
)
from knncache._ref import _IN_USE, KnnRef, open_at
from knncache._safefs import (
    DIR_FLAGS,
    kind_of,
    open_dir_at,
    open_regular,
    read_capped,
    remove_at,
    scan,
)

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
        Total size of the entry's regular files.
    created, last_used : float
        POSIX timestamps; ``last_used`` is refreshed on every ``ensure`` hit.
    has_features : bool
    arrays : tuple of str
        Names of the extra arrays (``ensure_array``).
    method : str
        The search engine that built the graph (``"exact"``, ``"hnsw"``, ``"ivf"``).
    params : dict
        The approximate engine's keyed parameters (empty for exact).
    recall : dict or None
        The recall measured when the graph was built (``{"k", "value", "sample", "seed"}``,
        see :func:`knncache.recall_at_k`); None for an exact graph.
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
    method: str = "exact"
    params: dict[str, Any] = field(default_factory=dict)
    recall: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CorruptEntry:
    """One entry (or object of an entry) :meth:`KnnStore.verify` found bad, and why."""

    fingerprint: str
    path: str
    reason: str


@dataclass
class _Housekeeping:
    """What one clear/evict pass did (the CLI prints it; the API warns about ``pinned``)."""

    removed: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    foreign_removed: list[str] = field(default_factory=list)
    lock_files_removed: int = 0
    temp_removed: list[str] = field(default_factory=list)


def _now() -> float:
    return time.time()


def _remove_entry(root_fd: int, fp: str) -> None:
    """Remove the entry ``fp`` (meta.json first: from then on it does not exist)."""
    try:
        dfd = open_dir_at(root_fd, fp)
    except FileNotFoundError:
        return
    except OSError:
        remove_at(root_fd, fp)  # a foreign object: the object itself goes, nothing it points to
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            remove_at(dfd, META_FILE)
    finally:
        os.close(dfd)
    remove_at(root_fd, fp)


def _entry_bytes(dfd: int) -> int:
    return sum(st.st_size for _, st in scan(dfd) if stat.S_ISREG(st.st_mode))


class KnnStore(abc.ABC):
    """Abstract store of k-nearest-neighbour graphs keyed by the content of the features.

    The base class owns fingerprinting, validation, locking, pinning, writing, loading, meta
    handling and corruption detection. Entries are directories ``<root>/<fingerprint>/``
    (layout in the README); ``meta.json`` is written last and is the commit marker, each
    extra array has its own marker. A per-entry lock (``<root>/<fingerprint>.lock`` for
    ``lock="hard"``, a ``<fingerprint>.softlock`` marker for ``lock="soft"``) makes
    concurrent processes compute an entry once.

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
        read_only: bool = False,
    ) -> None:
        self._root = Path(root).absolute()
        self._lock_timeout = float(lock_timeout)
        if not self._lock_timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {read_only!r}")
        self._locking = make_lock_strategy(lock)
        self._read_only = read_only
        # Without an exclusive lock, an unreferenced file younger than this may belong to a
        # writer about to commit: a writer's files reach the disk within I/O time of its
        # commit (the search runs before the first write), far less than a lock timeout.
        self._sweep_grace = max(self._lock_timeout, 60.0)
        self._closed = False
        self._close_callbacks: list[Callable[[KnnStore], None]] = []
        self._callbacks_lock = threading.Lock()
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
    def read_only(self) -> bool:
        """Whether the store is read-only right now.

        ``True`` when it was opened with ``read_only=True``, or when its root exists on a
        read-only filesystem (``ST_RDONLY``) or is not writable by this process (checked at
        each use, so a remount is noticed). A read-only store serves hits of graphs and
        arrays without taking a lock or creating a file; a miss raises
        :class:`~knncache.StoreWriteError`.
        """
        return self._why_read_only() is not None

    def _why_read_only(self) -> str | None:
        if self._read_only:
            return "opened with read_only=True"
        try:
            st = os.statvfs(self._root)
        except OSError:
            return None  # no root yet: the first write creates it (or reports why not)
        if st.f_flag & os.ST_RDONLY:
            return "read-only filesystem"
        if not os.access(self._root, os.W_OK | os.X_OK):
            return "no write permission"
        return None

    def _require_writable(self, what: str) -> None:
        why = self._why_read_only()
        if why is not None:
            raise StoreWriteError(
                str(self._root),
                f"the store is read-only ({why}) and {what}; use a writable store, or "
                "compute in memory with knncache.compute_knn",
            )

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

    def add_close_callback(self, callback: Callable[[KnnStore], None]) -> None:
        """Call ``callback(store)`` when this store is closed (at once if it already is).

        For per-process caches of memory maps into the store (a worker-resource cache, ...):
        dropping them in the callback guarantees that no map of a closed
        :class:`~knncache.EphemeralStore` outlives it. Callbacks run in registration order,
        in the closing thread, before the backend releases its resources (an ephemeral
        store's directory is removed after them). They run on :meth:`close` (and so at the
        end of a ``with`` block), not when an unclosed store is garbage collected. An
        exception in one does not stop the others nor the close; the first is re-raised.

        Knncache itself keeps no map of any store: arrays returned by ``KnnRef.load``,
        ``features`` and ``array`` hold the only references to their maps.
        """
        with self._callbacks_lock:
            if not self._closed:
                self._close_callbacks.append(callback)
                return
        callback(self)

    def close(self) -> None:
        """Close the store (idempotent): close callbacks, then the backend's cleanup.

        An ``EphemeralStore`` removes its directory.
        """
        with self._callbacks_lock:
            if self._closed:
                return
            self._closed = True
            callbacks, self._close_callbacks = self._close_callbacks, []
        first: BaseException | None = None
        for callback in callbacks:
            try:
                callback(self)
            except BaseException as exc:  # run all, re-raise the first
                first = first or exc
        self._on_close()
        if first is not None:
            raise first

    def __enter__(self) -> KnnStore:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        lock = "" if self._locking.name == "hard" else f", lock={self._locking.name!r}"
        ro = ", read_only=True" if self._read_only else ""
        state = " closed" if self._closed else ""
        return f"{type(self).__name__}({str(self._root)!r}{lock}{ro}{state})"

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(str(self._root))

    def _entry(self, fp: str) -> Path:
        return self._root / validate_fingerprint(fp)

    def _lock(
        self, fp: str, *, timeout: float | None = None, remove: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        wait = self._lock_timeout if timeout is None else timeout
        return self._locking.hold(self._root, fp, wait, remove=remove)

    def _open_root(self) -> int:
        return os.open(self._root, DIR_FLAGS)

    @contextlib.contextmanager
    def _entry_fd(self, fp: str) -> Iterator[int]:
        """Descriptor of the real entry directory (FileNotFoundError, ForeignObjectError)."""
        root_fd = self._open_root()
        try:
            dfd = open_dir_at(root_fd, validate_fingerprint(fp), where=str(self._root))
        finally:
            os.close(root_fd)
        try:
            yield dfd
        finally:
            os.close(dfd)

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

    def _use(self, fp: str) -> None:
        _IN_USE.add((str(self._root), fp))

    def _inspect(self, fp: str) -> tuple[Meta | None, str | None]:
        """``(meta, None)`` for a valid entry, ``(None, None)`` if absent, else the problem."""
        try:
            with self._entry_fd(fp) as dfd:
                try:
                    return check_entry(dfd, fp, arrays=False), None
                except FileNotFoundError:
                    # No meta: absent, or left behind (crash, hand deletion) with files in it.
                    leftovers = [name for name, _ in scan(dfd)]
                    if leftovers:
                        return None, f"meta.json missing (uncommitted files: {leftovers})"
                    return None, None
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except ForeignObjectError as exc:
            return None, f"the entry is a {exc.kind}, not a directory (not followed)"
        except StaleEntryError:
            return None, None  # an older format: a miss; a rewrite replaces it
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
        if self._why_read_only() is not None:
            return
        with contextlib.suppress(OSError), self._entry_fd(fp) as dfd:
            os.utime(META_FILE, dir_fd=dfd, follow_symlinks=False)

    @staticmethod
    def _clear_name(dfd: int, name: str) -> None:
        """Before writing ``name``: a foreign object there (a directory, a FIFO...) is nobody's
        file, so it goes (itself, not followed); a regular file is replaced atomically."""
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            remove_at(dfd, name)

    @classmethod
    def _write_json(cls, dfd: int, name: str, record: Mapping[str, Any]) -> None:
        data = json.dumps(record, indent=1, sort_keys=True).encode()

        def write(w: BinaryIO) -> None:
            w.write(data)

        cls._clear_name(dfd, name)
        atomic_write_at(dfd, name, write)

    def _write_meta(self, dfd: int, meta: Meta) -> None:
        """Commit an entry: the one write of ``meta.json``."""
        self._write_json(dfd, META_FILE, meta)

    @classmethod
    def _save(cls, dfd: int, name: str, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
        def write(w: BinaryIO) -> None:
            np.save(w, np.ascontiguousarray(arr), allow_pickle=False)

        cls._clear_name(dfd, name)
        digest, nbytes = atomic_write_at(dfd, name, write)
        return {
            "shape": [int(s) for s in arr.shape],
            "dtype": arr.dtype.str,
            "xxh3_128": digest,
            "bytes": nbytes,
        }

    def _referenced(self, dfd: int, fp: str, keep: Meta | None) -> set[str]:
        names = {META_FILE}
        metas = [keep]
        if not self._locking.exclusive:
            # Another writer may have committed since ``keep`` was read.
            with contextlib.suppress(OSError, CorruptEntryError):
                metas.append(read_meta(dfd, fp))
        for meta in metas:
            if meta is not None:
                names |= set(meta["files"])
        arrays, _ = read_arrays(dfd, fp)
        for name in arrays:
            names |= {array_file(name), array_marker(name)}
        return names

    def _sweep(self, dfd: int, fp: str, keep: Meta | None) -> None:
        """Under the entry lock: unlink regular files nothing committed refers to.

        Under an exclusive lock every write happens under that lock, so such files can only
        be leftovers of a writer that died (temporary files, k-files written before a crash,
        k-files superseded by a larger k) and go at once. Without one, a file is removed
        only when nothing committed refers to it and it is older than the grace period: a
        younger one may be a racing writer's, about to be committed. Readers that mapped a
        removed file keep their mapping. Foreign objects are left to ``_discard_corrupt``.
        """
        wanted = self._referenced(dfd, fp, keep)
        cutoff = None if self._locking.exclusive else _now() - self._sweep_grace
        for name, st in scan(dfd):
            if name in wanted or not stat.S_ISREG(st.st_mode):
                continue
            if cutoff is not None and st.st_mtime > cutoff:
                continue
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dfd)

    def _unlink_unreferenced(self, dfd: int, fp: str, names: list[str]) -> None:
        """Failure cleanup: remove files we renamed into place that nothing commits.

        Without an exclusive lock a racing writer may have committed the same files (same
        names, same bytes); those stay.
        """
        wanted = set() if self._locking.exclusive else self._referenced(dfd, fp, None)
        for name in names:
            if name not in wanted:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)

    def _current_meta(self, dfd: int, fp: str) -> Meta | None:
        """The committed meta of ``fp`` if the entry is intact (checksums verified), else None."""
        try:
            return check_entry(dfd, fp, arrays=False)
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
        that serves this request, it is returned instead (no downgrade from k=30 to k=20).
        """
        exclusive = self._locking.exclusive
        n = arr.shape[0]
        reuse_k = old is not None and old["k"] >= k
        graph = None
        if not reuse_k:
            graph = engine.in_entry(self._entry(fp), old).compute(arr, k, metric, True)
            self._stats["searches"] += 1
            check_graph(graph, n)  # never write what could not be served
        # Measured (approximate engines: a recall search) before the first file is written.
        engine_fields = engine_meta(engine, graph, arr, metric, old)
        path = str(self._entry(fp))
        try:
            root_fd = self._open_root()
        except OSError as exc:
            raise StoreWriteError(str(self._root), exc.strerror or str(exc), exc.errno) from None
        try:
            created_dir = False
            try:
                os.mkdir(fp, 0o777, dir_fd=root_fd)
                created_dir = True
                os.fsync(root_fd)  # the new entry directory itself must survive a crash
            except FileExistsError:
                pass
            try:
                dfd = open_dir_at(root_fd, fp, where=str(self._root))
            except OSError as exc:
                raise StoreWriteError(path, str(exc), exc.errno) from None
            try:
                return self._fill_entry(
                    dfd, fp, arr, graph, k, metric, store_features, old, engine_fields
                )
            except BaseException as exc:
                if created_dir and exclusive:
                    remove_at(root_fd, fp)
                elif created_dir:
                    with contextlib.suppress(OSError):  # only if empty: nobody else's files
                        os.rmdir(fp, dir_fd=root_fd)
                if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
                    raise StoreWriteError(
                        path, exc.strerror or str(exc) or type(exc).__name__, exc.errno
                    ) from exc
                raise
            finally:
                os.close(dfd)
        finally:
            os.close(root_fd)

    def _fill_entry(
        self,
        dfd: int,
        fp: str,
        arr: np.ndarray[Any, Any],
        graph: Any,
        k: int,
        metric: str,
        store_features: bool,
        old: Meta | None,
        engine_fields: Mapping[str, Any],
    ) -> Meta:
        exclusive = self._locking.exclusive
        n, d = arr.shape
        written: list[str] = []
        now = _now()
        try:
            self._sweep(dfd, fp, old)
            files: dict[str, Any] = {}
            reused: list[str] = []
            if old is not None and FEATURES_FILE in old["files"]:
                files[FEATURES_FILE] = old["files"][FEATURES_FILE]
                reused.append(FEATURES_FILE)
            elif store_features:
                written.append(FEATURES_FILE)
                files[FEATURES_FILE] = self._save(dfd, FEATURES_FILE, arr)
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
                    written.append(name)
                    files[name] = self._save(dfd, name, data)
            meta: Meta = {
                "format_version": FORMAT_VERSION,
                "fingerprint": fp,
                "metric": metric,
                "n": int(n),
                "d": int(d),
                "k": int(k_new),
                "features_dtype": arr.dtype.str,
                "files": files,
                "created": old["created"] if old is not None else now,
                "last_used": now,
                "library": "knncache",
                **engine_fields,
            }
            if not exclusive:
                # Files we did not rewrite must look fresh to a racing writer's sweep.
                for name in reused:
                    os.utime(name, dir_fd=dfd, follow_symlinks=False)
                current = self._current_meta(dfd, fp)
                if current is not None:
                    if self._usable(current, k, store_features):
                        return current  # our files are the same bytes or unreferenced
                    meta["created"] = min(meta["created"], current["created"])
            self._write_meta(dfd, meta)
        except BaseException:
            self._unlink_unreferenced(dfd, fp, written)
            raise
        meta["arrays"] = read_arrays(dfd, fp)[0]
        # Committed. Readers holding old memmaps keep them; new readers follow the meta.
        # Without an exclusive lock a racing writer may be about to commit a meta naming the
        # old k-files: they are left to the grace-period sweep.
        if exclusive and old is not None and old["k"] < k_new:
            for name in k_files(old["k"]):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)
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

        Fast path (no lock, nothing written but ``meta.json``'s mtime): an entry for
        ``fingerprint(X, metric)`` with ``k`` or more neighbours whose checksums and values
        verify is a hit. Otherwise the entry lock is taken, the entry checked again (another
        process may have written it meanwhile), and one exact search runs; files are written
        atomically, ``meta.json`` last. Asking for a larger ``k`` than stored recomputes at
        that ``k`` and replaces the entry: the old k-files are unlinked after the new meta
        is in place, so readers that already mapped them are not disturbed. A corrupt entry
        (or a foreign object in its place) is never served: it is reported with a
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
            (as they must to use the refs). A read-only store refuses a miss before
            anything is shipped.

        Returns
        -------
        KnnRef
            With ``ref.k >= k`` (the stored ``k``; load it with ``ref.load(k)``).

        Raises
        ------
        InvalidFeaturesError, InvalidKError, UnknownMetricError, InvalidParameterError
            Invalid input, or distances beyond the float32 range (nothing written).
        StoreClosedError
            If the store was closed.
        LockTimeoutError
            If another process held the entry lock longer than ``lock_timeout`` (with a soft
            lock: ``holder_host``, ``holder_pid`` and ``lock_age`` say who and how long).
        StoreWriteError
            If the entry cannot be written (read-only store, disk full, root is a file, a
            foreign lock file); no partial file is left. Callers that must not fail fall
            back to an ``EphemeralStore`` or to :func:`knncache.compute_knn`.
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
            self._use(fp)
            return self._ref(meta)
        what = f"entry {fp} is corrupt ({problem})" if problem else f"entry {fp} is not stored"
        if meta is not None:
            what = f"entry {fp} holds k={meta['k']} (< {k}) or no features"
        self._require_writable(what)

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
                self._use(fp)
                return self._ref(meta)
            self._stats["misses"] += 1
            meta = self._write_entry(fp, arr, k, metric, store_features, meta, engine)
            self._use(fp)
        self._after_write(fp)
        return self._ref(meta)

    def _in_flight(self, fp: str) -> bool:
        """Without an exclusive lock: no meta yet, but files younger than the grace period.

        Those may belong to a writer racing us (it will commit them), so they are neither
        reported nor removed.
        """
        if self._locking.exclusive:
            return False
        cutoff = _now() - self._sweep_grace
        try:
            with self._entry_fd(fp) as dfd:
                children = dict(scan(dfd))
        except OSError:
            return False
        if META_FILE in children:
            return False
        return any(stat.S_ISREG(st.st_mode) and st.st_mtime > cutoff for st in children.values())

    def _discard_corrupt(self, fp: str) -> None:
        """Under the entry lock: make way for a rebuild; foreign objects are unlinked, never
        followed."""
        try:
            root_fd = self._open_root()
        except OSError as exc:
            raise StoreWriteError(str(self._root), exc.strerror or str(exc), exc.errno) from None
        try:
            try:
                st = os.stat(fp, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode) or self._locking.exclusive:
                _remove_entry(root_fd, fp)
            else:
                # Uncommit only: a racing writer may be using the directory; the rewrite
                # replaces every file it names and the sweep takes the rest in time. Foreign
                # objects (links, FIFOs, directories in place of files) are nobody's.
                dfd = open_dir_at(root_fd, fp)
                try:
                    remove_at(dfd, META_FILE)
                    for name, cst in scan(dfd):
                        if not stat.S_ISREG(cst.st_mode):
                            remove_at(dfd, name)
                finally:
                    os.close(dfd)
            try:
                after = os.stat(fp, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(after.st_mode):
                raise StoreWriteError(str(self._entry(fp)), "cannot remove the foreign object")
        except OSError as exc:
            if isinstance(exc, KnnCacheError):
                raise
            raise StoreWriteError(
                str(self._entry(fp)), exc.strerror or str(exc), exc.errno
            ) from None
        finally:
            os.close(root_fd)

    def _array_hit(self, fp: str, name: str) -> bool:
        """Lock-free: whether array ``name`` is committed and intact (raises FeaturesNotStored)."""
        try:
            with self._entry_fd(fp) as dfd:
                meta = read_meta(dfd, fp)
                if FEATURES_FILE not in meta["files"]:
                    raise FeaturesNotStoredError(fp)
                raw = read_capped(dfd, array_marker(name), MAX_MARKER_BYTES)
                rec = parse_marker(raw, fp, name)
                check_file(dfd, fp, array_file(name), rec, checksum=True)
                return True
        except (OSError, CorruptEntryError):
            return False

    def ensure_array(
        self,
        ref: KnnRef,
        name: str,
        compute: Callable[[np.memmap[Any, Any]], Any],
    ) -> None:
        """Compute an extra per-features array once and store it in the entry.

        For artefacts that, like the graph, depend only on the features (an ``N x N``
        pairwise distance matrix, ...). Fast path, with no lock and nothing written: if
        ``array_{name}.npy`` is committed and passes its checksum, nothing is computed
        (``stats["array_hits"]``). Otherwise, under the entry lock, ``compute(features)``
        is called, its result written atomically and committed by its own marker
        ``array_{name}.json`` (``stats["array_computes"]``); no shared file is rewritten,
        so writers of different arrays never lose each other's, with or without a lock.
        Workers read it with ``ref.array(name)``. Extra arrays survive a replacement of the
        entry at a larger ``k``, count toward ``max_bytes`` and are checked by
        :meth:`verify`. Without an exclusive lock (``lock="soft"`` or ``"none"``) racing
        writers of the *same* array may both compute: ``compute`` must then be
        deterministic (same bytes).

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
            The entry is not (or no longer) in this store. Pin it (:meth:`pin`) to keep
            other processes' clear, gc and eviction away between ``ensure`` and this call.
        CorruptEntryError
            The entry is corrupt (call ``ensure`` to rebuild it).
        FeaturesNotStoredError
            The entry holds no features.
        InvalidFeaturesError
            ``compute`` returned an object (non-numeric) array.
        LockTimeoutError, StoreWriteError
            As for :meth:`ensure` (a read-only store raises ``StoreWriteError`` on a miss).
        """
        self._check_open()
        validate_array_name(name)
        fp = validate_fingerprint(ref.fingerprint)
        entry = self._entry(fp)
        if Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(str(entry), fp, "the ref points into another store")
        if self._array_hit(fp, name):
            self._stats["array_hits"] += 1
            self._use(fp)
            return
        try:
            st = os.lstat(entry)
        except FileNotFoundError:
            raise EntryNotFoundError(str(entry), fp) from None
        if not stat.S_ISDIR(st.st_mode):
            raise CorruptEntryError(fp, f"the entry is a {kind_of(st.st_mode)} (not followed)")
        self._require_writable(f"array {name!r} of entry {fp} is not stored (or is corrupt)")
        with self._lock(fp):
            try:
                with self._entry_fd(fp) as dfd:
                    self._ensure_array_locked(dfd, fp, name, compute)
            except ForeignObjectError as exc:
                raise CorruptEntryError(fp, str(exc)) from None
            except FileNotFoundError as exc:
                if isinstance(exc, KnnCacheError):
                    raise
                raise EntryNotFoundError(str(entry), fp) from None
        self._after_write(fp)

    def _ensure_array_locked(
        self, dfd: int, fp: str, name: str, compute: Callable[[np.memmap[Any, Any]], Any]
    ) -> None:
        entry = self._entry(fp)
        try:
            meta = check_entry(dfd, fp, arrays=False)
        except FileNotFoundError:
            raise EntryNotFoundError(str(entry), fp) from None
        if FEATURES_FILE not in meta["files"]:
            raise FeaturesNotStoredError(fp)
        fname, mname = array_file(name), array_marker(name)
        rec = meta["arrays"].get(name)
        if rec is not None:
            try:
                check_file(dfd, fp, fname, rec, checksum=True)
            except CorruptEntryError as exc:
                warnings.warn(
                    f"knncache: {exc}; recomputing array {name!r}", KnnCacheWarning, stacklevel=3
                )
                self._stats["corrupt_rebuilds"] += 1
            else:
                self._stats["array_hits"] += 1
                self._use(fp)
                return
        self._sweep(dfd, fp, meta)
        feats = open_at(dfd, FEATURES_FILE, str(entry))
        result = np.asarray(compute(feats))  # type: ignore[arg-type]  # a read-only map
        del feats
        if result.dtype.kind not in "biuf":
            raise InvalidFeaturesError(
                "dtype",
                f"ensure_array({name!r}): compute returned dtype {result.dtype}; "
                "expected a numeric or bool array",
            )
        try:
            with contextlib.suppress(FileNotFoundError):
                # A corrupt marker must not commit the new file before it is complete.
                os.unlink(mname, dir_fd=dfd)
            record = self._save(dfd, fname, result)
            record.update(format_version=FORMAT_VERSION, fingerprint=fp, name=name)
            self._write_json(dfd, mname, record)
        except BaseException as exc:
            # Nothing commits a half-done array; drop whatever was written (unless a racing
            # writer committed it: no exclusive lock).
            self._unlink_unreferenced(dfd, fp, [fname])
            if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
                raise StoreWriteError(
                    str(entry / fname), exc.strerror or str(exc), exc.errno
                ) from exc
            raise
        with contextlib.suppress(OSError):
            os.utime(META_FILE, dir_fd=dfd, follow_symlinks=False)
        self._stats["array_computes"] += 1
        self._use(fp)

    def pin(self, ref: KnnRef | str) -> contextlib.AbstractContextManager[None]:
        """Pin an entry while a block runs: housekeeping of any process leaves it alone.

        ``with store.pin(ref):`` (a :class:`KnnRef` or a fingerprint) keeps ``clear``,
        ``gc``/``evict`` and LRU eviction in every process (this one included) away from
        the entry: they skip it and say so (a :class:`KnnCacheWarning` from the API, a
        ``pinned`` field and line from the CLI). Pins nest and are re-entrant (one shared
        ``flock`` per process and entry on ``<root>/<fingerprint>.pin``, counted); they end
        with the block, or with the process however it dies. A pin may be taken before the
        entry exists: ``with store.pin(fingerprint(X)): ref = store.ensure(X, k);
        store.ensure_array(ref, ...)`` cannot be broken by a concurrent clear. A pin does
        not bring back an entry removed before it was taken.

        On a read-only store the pin holds in this process only (nobody can clear the store
        through this mount). Pins rely on ``flock``: see the README for NFS and Lustre. A
        child forked while a pin is held shares its descriptor, so the pin lasts until that
        child exits too (the safe side).

        Parameters
        ----------
        ref : KnnRef or str
            The entry (a ref into this store, or its fingerprint).

        Returns
        -------
        contextlib.AbstractContextManager
            Holding the pin between ``__enter__`` and ``__exit__``.

        Raises
        ------
        InvalidNameError
            A malformed fingerprint.
        EntryNotFoundError
            A ref into another store.
        StoreClosedError
            The store is closed.
        LockTimeoutError, StoreWriteError
            On entering: a clear held the pin file longer than ``lock_timeout``; the pin
            file cannot be created or is a foreign object.
        """
        self._check_open()
        fp = validate_fingerprint(ref if isinstance(ref, str) else ref.fingerprint)
        if isinstance(ref, KnnRef) and Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(str(self._entry(fp)), fp, "the ref points into another store")
        shared = self._why_read_only() is None
        if shared:
            self._prepare_root()
        return pin_entry(self._root, fp, self._lock_timeout, shared_file=shared)

    def get(self, fingerprint: str) -> KnnRef | None:
        """Ref to the committed, intact entry ``fingerprint``, or ``None``.

        A corrupt entry gives ``None`` and a :class:`KnnCacheWarning` (``ensure`` rebuilds
        it, ``verify`` reports it). No lock is taken and nothing is written.

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
        self._use(fp)
        return self._ref(meta)

    def release(self, ref: KnnRef | str) -> None:
        """Let this process evict an entry it used (it is protected from eviction until then).

        Long-running processes (training loops reclustering every few epochs) call this once
        they no longer need an entry, so that ``max_bytes`` can be honoured. (Pins are
        separate: they end with their ``with`` block.)
        """
        fp = ref if isinstance(ref, str) else ref.fingerprint
        _IN_USE.discard((str(self._root), fp))

    def _children(self) -> list[tuple[str, os.stat_result]]:
        try:
            root_fd = self._open_root()
        except OSError:
            return []
        try:
            return list(scan(root_fd))
        finally:
            os.close(root_fd)

    def _entry_dirs(self) -> list[Path]:
        """Entry directories (real directories named by a fingerprint; links are not)."""
        return [
            self._root / name
            for name, st in self._children()
            if is_fingerprint(name) and stat.S_ISDIR(st.st_mode)
        ]

    def entries(self) -> list[EntryInfo]:
        """Committed entries, most recently used first (metas are read, checksums are not).

        Entries whose meta is missing or unreadable, entries of an older format and foreign
        objects are left out; :meth:`verify` lists the bad ones.

        Raises
        ------
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        out = []
        for entry in self._entry_dirs():
            try:
                out.append(self._entry_info(entry.name))
            except (OSError, CorruptEntryError):
                continue
        out.sort(key=lambda e: (-e.last_used, e.fingerprint))
        return out

    def _entry_info(self, fp: str) -> EntryInfo:
        with self._entry_fd(fp) as dfd:
            meta = read_meta(dfd, fp)
            arrays, _ = read_arrays(dfd, fp)
            mtime = os.stat(META_FILE, dir_fd=dfd, follow_symlinks=False).st_mtime
            size = _entry_bytes(dfd)
        return EntryInfo(
            fingerprint=fp,
            n=meta["n"],
            d=meta["d"],
            k=meta["k"],
            metric=meta["metric"],
            bytes=size,
            created=float(meta["created"]),
            last_used=max(float(meta["last_used"]), mtime),
            has_features=FEATURES_FILE in meta["files"],
            arrays=tuple(sorted(arrays)),
            method=str(meta.get("method", "exact")),
            params=dict(meta.get("params", {})),
            recall=dict(meta["recall"]) if "recall" in meta else None,
        )

    def info(self, ref: KnnRef | str) -> EntryInfo:
        """The summary of one committed entry (a ref into this store, or its key).

        Reads its ``meta.json`` (checksums are not verified): the engine that built the
        graph, its parameters and the recall measured at build time among the rest.

        Raises
        ------
        InvalidNameError
            A malformed key.
        EntryNotFoundError
            No committed entry of that key, or a ref into another store.
        CorruptEntryError
            Its ``meta.json`` is unreadable or inconsistent.
        StoreClosedError
            The store is closed.
        """
        self._check_open()
        fp = validate_fingerprint(ref if isinstance(ref, str) else ref.fingerprint)
        if isinstance(ref, KnnRef) and Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(str(self._entry(fp)), fp, "the ref points into another store")
        try:
            return self._entry_info(fp)
        except FileNotFoundError:
            raise EntryNotFoundError(str(self._entry(fp)), fp) from None

    # ------------------------------------------------------------------ housekeeping
    def _stale_entries(self) -> list[str]:
        """Entries of an older format version (never served: nobody asks for their key)."""
        out = []
        for entry in self._entry_dirs():
            try:
                with self._entry_fd(entry.name) as dfd:
                    read_meta(dfd, entry.name)
            except StaleEntryError:
                out.append(entry.name)
            except (OSError, CorruptEntryError):
                continue
        return out

    def _remove_one(self, fp: str, report: _Housekeeping) -> bool:
        """Remove entry ``fp`` unless written (its lock is held) or pinned; record which."""
        try:
            with self._lock(fp, timeout=0, remove=True):
                root_fd = self._open_root()
                try:
                    with exclusive_pin(root_fd, fp, str(self._root)) as free:
                        if not free:
                            report.pinned.append(fp)
                            return False
                        _remove_entry(root_fd, fp)
                finally:
                    os.close(root_fd)
        except (LockTimeoutError, StoreWriteError):
            report.busy.append(fp)
            return False
        _IN_USE.discard((str(self._root), fp))
        report.removed.append(fp)
        return True

    def _housekeep_files(self, report: _Housekeeping) -> None:
        """Remove lock and pin files of absent entries (never one that is held), and foreign
        objects (links, FIFOs...) at lock, pin or entry names. Nothing is followed."""
        try:
            root_fd = self._open_root()
        except OSError:
            return
        try:
            children = dict(scan(root_fd))
            for name, st in children.items():
                if SHIP_RE.fullmatch(name) or SHIP_TEMP_RE.fullmatch(name):
                    self._housekeep_ship(root_fd, name, st, report)
                    continue
                fp, suffix = name[:32], name[32:]
                if not is_fingerprint(fp) or suffix not in ("", LOCK_SUFFIX, PIN_SUFFIX):
                    continue
                if suffix == "" and stat.S_ISDIR(st.st_mode):
                    continue
                if not stat.S_ISREG(st.st_mode) or suffix == "":
                    if remove_at(root_fd, name):
                        report.foreign_removed.append(str(self._root / name))
                    continue
                if fp in children:
                    continue  # the entry exists: its lock and pin files stay
                if suffix == PIN_SUFFIX:
                    with exclusive_pin(root_fd, fp, str(self._root)) as free:
                        removed = free
                else:
                    try:
                        fd = flock_acquire(root_fd, name, fcntl.LOCK_EX, 0, where=str(self._root))
                    except (LockTimeoutError, StoreWriteError):
                        continue
                    removed = not os.path.lexists(self._entry(fp))
                    flock_release(fd, root_fd, name if removed else None)
                report.lock_files_removed += int(removed)
        finally:
            os.close(root_fd)

    def _housekeep_ship(
        self, root_fd: int, name: str, st: os.stat_result, report: _Housekeeping
    ) -> None:
        """Remove features shipped to executor workers (or a partial write of them) left by a
        process that died: only past the grace period, and a shipped file only while this
        process holds it exclusively (its owner holds it shared until it removes it)."""
        path = str(self._root / name)
        if not stat.S_ISREG(st.st_mode):
            if remove_at(root_fd, name):
                report.foreign_removed.append(path)
            return
        if st.st_mtime > _now() - self._sweep_grace:
            return  # being written, or just written and about to be held
        if SHIP_TEMP_RE.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=root_fd)
                report.temp_removed.append(path)
            return
        try:
            fd, _ = open_regular(root_fd, name, where=str(self._root))
        except (OSError, ForeignObjectError):
            return  # gone meanwhile, or swapped (the next pass sees what it is now)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # in use (or flock refused: then nobody can tell, so it stays)
            if names_fd(root_fd, name, fd):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=root_fd)
                    report.temp_removed.append(path)
        finally:
            os.close(fd)

    def _warn_pinned(self, report: _Housekeeping, what: str) -> None:
        if report.pinned:
            warnings.warn(
                f"knncache: {what} skipped {len(report.pinned)} pinned entries in "
                f"{str(self._root)!r}: {report.pinned}",
                KnnCacheWarning,
                stacklevel=3,
            )

    def _clear(self) -> _Housekeeping:
        self._check_open()
        report = _Housekeeping()
        if not self._children():
            return report
        self._require_writable("clear cannot remove anything")
        self._housekeep_files(report)
        for entry in self._entry_dirs():
            self._remove_one(entry.name, report)
        self._housekeep_files(report)
        return report

    def clear(self) -> list[str]:
        """Remove every entry; return the fingerprints removed.

        Each entry is removed under its lock, taken without waiting, and only if no process
        pins it: an entry another process is writing is skipped silently (it is transient);
        a pinned one is skipped with a :class:`KnnCacheWarning`. Lock and pin files of
        absent entries go too (never one that is held), and so do foreign objects at entry,
        lock or pin names (the objects themselves: links are never followed). Memmaps
        already opened by readers stay valid (files are unlinked, not truncated).

        Raises
        ------
        StoreClosedError
            If the store was closed.
        StoreWriteError
            If the store is read-only.
        """
        report = self._clear()
        self._warn_pinned(report, "clear")
        return report.removed

    def _problems(self, *, checksum: bool) -> list[CorruptEntry]:
        bad = []
        for name, st in self._children():
            fp, suffix = name[:32], name[32:]
            if not is_fingerprint(fp):
                continue
            path = str(self._root / name)
            if suffix in (LOCK_SUFFIX, PIN_SUFFIX, ".softlock"):
                if not stat.S_ISREG(st.st_mode):
                    what = {LOCK_SUFFIX: "lock", PIN_SUFFIX: "pin", ".softlock": "soft-lock"}
                    bad.append(
                        CorruptEntry(
                            fp,
                            path,
                            f"{what[suffix]} file is a {kind_of(st.st_mode)} (not followed)",
                        )
                    )
                continue
            if suffix:
                continue
            if not stat.S_ISDIR(st.st_mode):
                bad.append(
                    CorruptEntry(fp, path, f"the entry is a {kind_of(st.st_mode)} (not followed)")
                )
                continue
            try:
                with self._entry_fd(fp) as dfd:
                    check_entry(dfd, fp, arrays=True, checksum=checksum)
            except FileNotFoundError:
                if self._being_written(fp):
                    continue
                bad.append(CorruptEntry(fp, path, "meta.json missing"))
            except StaleEntryError:
                continue  # an older format: a miss, removed by clear/gc, not corruption
            except ForeignObjectError as exc:
                bad.append(CorruptEntry(fp, path, f"the entry is a {exc.kind} (not followed)"))
            except CorruptEntryError as exc:
                bad.append(CorruptEntry(fp, path, exc.reason))
            except OSError as exc:
                bad.append(CorruptEntry(fp, path, f"unreadable ({exc})"))
        return bad

    def verify(self) -> list[CorruptEntry]:
        """Check every entry completely (kinds, sizes, headers, checksums, graph values,
        extra arrays) and report foreign objects at entry, lock and pin names.

        A graph holding a neighbour index outside ``[0, n)`` or a non-finite distance is
        corrupt. An entry without ``meta.json`` is reported unless another process holds its
        lock (it is being written). Entries of an older format version are not corrupt (they
        are misses) and not reported. Nothing is repaired, locked or written: ``ensure``
        rebuilds, ``clear`` removes.

        Returns
        -------
        list of CorruptEntry
            ``(fingerprint, path, reason)`` for each problem; empty when all is well.

        Raises
        ------
        StoreClosedError
            If the store was closed.
        """
        self._check_open()
        return self._problems(checksum=True)

    def _being_written(self, fp: str) -> bool:
        # Called when the meta was missing: held lock, a meta committed meanwhile, or (no
        # exclusive lock) young files all mean a writer is at work.
        if self._locking.held_by_other(self._root, fp):
            return True
        if os.path.lexists(self._entry(fp) / META_FILE):
            return True
        return self._in_flight(fp)
