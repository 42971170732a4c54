"""``KnnStore``: the abstract store of k-NN graphs, its public API and template methods.

Backends (:class:`~knncache.PersistentStore`, :class:`~knncache.EphemeralStore`) override
only :meth:`KnnStore._prepare_root`, :meth:`KnnStore._after_write` and
:meth:`KnnStore._on_close`, and declare the capability ``is_persistent``. The store works on
a :class:`~knncache._storedir.StoreDir`; writing is :mod:`knncache._write`, removing (and
the policy of what may be removed without an exclusive lock) :mod:`knncache._housekeeping`,
the per-entry lock a strategy from :mod:`knncache._locks` chosen by ``lock=``.
"""

from __future__ import annotations

import abc
import contextlib
import os
import stat
import threading
import types
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from knncache._engines import make_engine, private_features
from knncache._entry import META_FILE, Meta, graph_tag, validate_array_name
from knncache._errors import (
    CorruptEntryError,
    EntryNotFoundError,
    KnnCacheWarning,
    StoreClosedError,
)
from knncache._fingerprint import fingerprint, validate_fingerprint
from knncache._graph import validate_features, validate_k, validate_metric
from knncache._housekeeping import (
    CorruptEntry,
    EntryInfo,
    clear_entries,
    discard_corrupt,
    entry_info,
    in_flight,
    list_entries,
    problems,
    warn_pinned,
)
from knncache._locks import pin_entry
from knncache._ref import KnnRef
from knncache._safefs import kind_of
from knncache._storedir import StoreDir
from knncache._write import usable, write_array, write_entry, write_json

__all__ = ["KnnStore"]


def store_dir(store: KnnStore) -> StoreDir:
    """The directory state ``store`` works on (for the command line's housekeeping)."""
    return store._dir


class KnnStore(abc.ABC):
    """Abstract store of k-nearest-neighbour graphs keyed by the content of the features.

    The base class owns fingerprinting, validation, locking, pinning, writing, loading, meta
    handling and corruption detection. Entries are directories ``<root>/<fingerprint>/``
    (layout in :mod:`knncache._entry`); ``meta.json`` is written last and is the commit
    marker, each extra array has its own marker. A per-entry lock (``<root>/<fingerprint>.lock`` for
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
        timeout = float(lock_timeout)
        if not timeout >= 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout!r}")
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {read_only!r}")
        self._dir = StoreDir(self._root, lock=lock, lock_timeout=timeout, read_only=read_only)
        self._closed = False
        self._close_callbacks: list[Callable[[KnnStore], None]] = []
        self._callbacks_lock = threading.Lock()

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
        return self._dir.locking.name

    @property
    def lock_timeout(self) -> float:
        """Seconds ``ensure`` waits for an entry lock held by another process."""
        return self._dir.lock_timeout

    @property
    def read_only(self) -> bool:
        """Whether the store is read-only right now.

        ``True`` when it was opened with ``read_only=True``, or when its root exists on a
        read-only filesystem (``ST_RDONLY``) or is not writable by this process (checked at
        each use, so a remount is noticed). A read-only store serves hits of graphs and
        arrays without taking a lock or creating a file; a miss raises
        :class:`~knncache.StoreWriteError`.
        """
        return self._dir.why_read_only() is not None

    @property
    def stats(self) -> Mapping[str, int]:
        """Read-only live counters of what this store object did in this process.

        Keys: ``"hits"`` (``ensure`` answered from an existing entry), ``"misses"``
        (``ensure`` had to write), ``"searches"`` (``compute_knn`` runs),
        ``"corrupt_rebuilds"``, ``"evictions"``, ``"array_computes"``, ``"array_hits"``.
        """
        return types.MappingProxyType(self._dir.stats)

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
        name = self._dir.locking.name
        lock = "" if name == "hard" else f", lock={name!r}"
        ro = ", read_only=True" if self._dir.opened_read_only else ""
        state = " closed" if self._closed else ""
        return f"{type(self).__name__}({str(self._root)!r}{lock}{ro}{state})"

    # ------------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(str(self._root))

    def _lock(
        self, fp: str, *, timeout: float | None = None, remove: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        return self._dir.lock(fp, timeout=timeout, remove=remove)

    def _key_of(self, ref: KnnRef | str) -> str:
        """The fingerprint of ``ref``: a ref into this store (EntryNotFoundError if not), or
        a key (InvalidNameError if malformed)."""
        fp = validate_fingerprint(ref if isinstance(ref, str) else ref.fingerprint)
        if isinstance(ref, KnnRef) and Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(
                str(self._dir.entry(fp)), fp, "the ref points into another store"
            )
        return fp

    def _ref(self, meta: Meta) -> KnnRef:
        return KnnRef(
            root=str(self._root),
            fingerprint=meta["fingerprint"],
            n=meta["n"],
            d=meta["d"],
            k=meta["k"],
            metric=meta["metric"],
            persistent=self.is_persistent,
            tag=graph_tag(meta),
        )

    def _hit(self, meta: Meta) -> KnnRef:
        fp = meta["fingerprint"]
        self._dir.touch(fp)
        self._dir.stats["hits"] += 1
        self._dir.use(fp)
        return self._ref(meta)

    def _write_meta(self, dfd: int, meta: Meta) -> None:
        """Commit an entry: the one write of ``meta.json``."""
        write_json(dfd, META_FILE, meta)

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
        engine = make_engine(method, params, arr.shape[0], executor, dim=arr.shape[1])
        fp = engine.key(fingerprint(arr, metric))

        meta, problem = self._dir.inspect(fp)
        if problem is None and meta is not None and usable(meta, k, store_features):
            return self._hit(meta)
        what = f"entry {fp} is corrupt ({problem})" if problem else f"entry {fp} is not stored"
        if meta is not None:
            what = f"entry {fp} holds k={meta['k']} (< {k}) or no features"
        self._dir.require_writable(what)
        arr, base = private_features(arr, metric)  # what is searched and written is keyed
        fp = engine.key(base)

        self._prepare_root()
        with self._lock(fp):
            meta, problem = self._dir.inspect(fp)
            if problem is not None and in_flight(self._dir, fp):
                problem = None  # a racing writer's uncommitted files (no exclusive lock)
            if problem is not None:
                warnings.warn(
                    f"knncache: corrupt entry {fp} in {str(self._root)!r} ({problem}); "
                    "rebuilding it",
                    KnnCacheWarning,
                    stacklevel=2,
                )
                self._dir.stats["corrupt_rebuilds"] += 1
                discard_corrupt(self._dir, fp)
                meta = None
            if usable(meta, k, store_features):
                assert meta is not None
                return self._hit(meta)
            self._dir.stats["misses"] += 1
            meta = write_entry(
                self._dir, fp, arr, k, metric, store_features, meta, engine, self._write_meta
            )
            self._dir.use(fp)
        self._after_write(fp)
        return self._ref(meta)

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
        entry = self._dir.entry(fp)
        if Path(ref.root).absolute() != self._root:
            raise EntryNotFoundError(str(entry), fp, "the ref points into another store")
        if self._dir.array_committed(fp, name):
            self._dir.stats["array_hits"] += 1
            self._dir.use(fp)
            return
        try:
            st = os.lstat(entry)
        except FileNotFoundError:
            raise EntryNotFoundError(str(entry), fp) from None
        if not stat.S_ISDIR(st.st_mode):
            raise CorruptEntryError(fp, f"the entry is a {kind_of(st.st_mode)} (not followed)")
        self._dir.require_writable(f"array {name!r} of entry {fp} is not stored (or is corrupt)")
        with self._lock(fp):
            write_array(self._dir, fp, name, compute)
        self._after_write(fp)

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
        through this mount). Pins rely on ``flock``: see :mod:`knncache._locks` for NFS and
        Lustre. A child forked while a pin is held shares its descriptor, so the pin lasts
        until that child exits too (the safe side).

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
        fp = self._key_of(ref)
        shared = self._dir.why_read_only() is None
        if shared:
            self._prepare_root()
        return pin_entry(self._root, fp, self._dir.lock_timeout, shared_file=shared)

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
        meta, problem = self._dir.inspect(fp)
        if problem is not None:
            # Maybe a concurrent replacement (new meta, old k-files unlinked): look again.
            meta, problem = self._dir.inspect(fp)
        if problem is not None and in_flight(self._dir, fp):
            return None  # a racing writer's uncommitted files (no exclusive lock)
        if problem is not None:
            warnings.warn(
                f"knncache: corrupt entry {fp} ignored ({problem})", KnnCacheWarning, stacklevel=2
            )
            return None
        if meta is None:
            return None
        self._dir.use(fp)
        return self._ref(meta)

    def release(self, ref: KnnRef | str) -> None:
        """Let this process evict an entry it used (it is protected from eviction until then).

        Long-running processes (training loops reclustering every few epochs) call this once
        they no longer need an entry, so that ``max_bytes`` can be honoured. (Pins are
        separate: they end with their ``with`` block.)
        """
        self._dir.release(ref if isinstance(ref, str) else ref.fingerprint)

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
        return list_entries(self._dir)

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
        fp = self._key_of(ref)
        try:
            return entry_info(self._dir, fp)
        except FileNotFoundError:
            raise EntryNotFoundError(str(self._dir.entry(fp)), fp) from None

    # ------------------------------------------------------------------ housekeeping
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
        self._check_open()
        report = clear_entries(self._dir)
        warn_pinned(self._dir, report, "clear")
        return report.removed

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
        return problems(self._dir, checksum=True)
