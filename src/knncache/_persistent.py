"""``PersistentStore``: a directory of entries that survives runs, with LRU eviction."""

from __future__ import annotations

import errno
import os

from knncache._errors import InvalidParameterError, StoreWriteError
from knncache._housekeeping import evict_entries, remove_unused, warn_pinned
from knncache._locks import LockMarker, break_soft_locks
from knncache._store import KnnStore

__all__ = ["PersistentStore"]


class PersistentStore(KnnStore):
    """A store in a directory that survives the process (``is_persistent = True``).

    Parameters
    ----------
    root : path-like
        The store directory; created (with parents) on the first write. Several processes
        and machines sharing a POSIX filesystem may use it at once.
    max_bytes : int, optional
        Size budget. After each write, least-recently-used entries are evicted until the total
        size of all entries is within it. Never evicted: the entry just written, every
        entry this process ensured, got or loaded (until :meth:`KnnStore.release`), and
        every entry pinned by any process (:meth:`KnnStore.pin`). Entries locked by another
        process are skipped. ``None`` (default) means no limit.
    lock_timeout : float
        Seconds to wait for an entry lock held by another process before
        :class:`~knncache.LockTimeoutError` (default 600: a search at large N takes a while).
    lock : {"hard", "soft", "none"}
        How concurrent writers of one entry are serialised (every process sharing the store
        should use the same mode; mixing modes is safe but may duplicate searches):

        * ``"hard"`` (default): ``flock`` on ``<fingerprint>.lock`` (opened without
          following links; see :mod:`knncache._locks`). For local disks and filesystems
          with reliable POSIX locks.
        * ``"soft"``: a marker file ``<fingerprint>.softlock`` recording holder host, pid
          and acquisition time, for NFS/Lustre where fcntl/flock are unreliable. A marker
          whose holder is on this host and dead is broken automatically; one held on
          another host is never broken automatically: the wait ends in
          :class:`~knncache.LockTimeoutError` naming host, pid and age, and
          :meth:`break_locks` (``knncache gc ROOT --break-locks``) removes it.
        * ``"none"``: no lock. Still correct (racing writers produce one valid entry, every
          array reported written is committed), but each may run its own search.
    read_only : bool, keyword-only
        Never write, lock or create anything: hits of graphs and arrays are served, a miss
        raises :class:`~knncache.StoreWriteError`. A root on a read-only filesystem, or not
        writable by this process, is treated the same way without asking
        (:attr:`KnnStore.read_only`).

    Raises
    ------
    StoreWriteError
        If ``root`` exists and is not a directory.
    ValueError
        For a negative ``max_bytes`` or ``lock_timeout``, or an unknown ``lock``.
    """

    is_persistent = True

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        lock_timeout: float = 600.0,
        lock: str = "hard",
        read_only: bool = False,
    ) -> None:
        if max_bytes is not None and (isinstance(max_bytes, bool) or int(max_bytes) < 0):
            raise ValueError(f"max_bytes must be a non-negative int or None, got {max_bytes!r}")
        super().__init__(root, lock_timeout=lock_timeout, lock=lock, read_only=read_only)
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        if self._root.exists() and not self._root.is_dir():
            raise StoreWriteError(
                str(self._root), "the store root exists and is not a directory", errno.ENOTDIR
            )

    def _prepare_root(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreWriteError(str(self._root), exc.strerror or str(exc), exc.errno) from None
        if not self._root.is_dir():
            raise StoreWriteError(
                str(self._root), "the store root is not a directory", errno.ENOTDIR
            )

    def _after_write(self, fp: str) -> None:
        if self.max_bytes is not None:
            self.evict(self.max_bytes)

    def evict(self, max_bytes: int | None = None) -> list[str]:
        """Evict least-recently-used entries until the store fits in ``max_bytes``.

        Entries this process uses (see the class docstring), entries pinned by any process
        (skipped with a :class:`~knncache.KnnCacheWarning`) and entries locked by another
        process are never evicted, so the result may stay above the budget. Entries of an
        older format version (never served) are evicted first, and lock and pin files of
        absent entries are removed (never one that is held).

        Parameters
        ----------
        max_bytes : int, optional
            Budget; default ``self.max_bytes`` (nothing happens when both are ``None``).

        Returns
        -------
        list of str
            The evicted fingerprints, oldest first.

        Raises
        ------
        StoreWriteError
            If the store is read-only and over budget.
        """
        self._check_open()
        budget = self.max_bytes if max_bytes is None else int(max_bytes)
        report = evict_entries(self._dir, budget)
        warn_pinned(self._dir, report, "evict")
        return report.removed

    def drop_unused(self, older_than: float) -> list[str]:
        """Remove the entries not used for more than ``older_than`` seconds.

        An entry's last use is refreshed by every hit of :meth:`~knncache.KnnStore.ensure`
        (``knncache ls`` shows it). Spared as by :meth:`evict`: entries this process uses,
        entries pinned by any process (skipped with a :class:`~knncache.KnnCacheWarning`)
        and entries another process is writing. ``knncache gc ROOT --unused-for DURATION``
        runs it.

        Parameters
        ----------
        older_than : float
            Seconds, ``>= 0``.

        Returns
        -------
        list of str
            The removed fingerprints, least recently used first.

        Raises
        ------
        InvalidParameterError
            If ``older_than`` is not a finite number ``>= 0`` (nothing removed).
        StoreWriteError
            If the store is read-only and holds such an entry.
        """
        self._check_open()
        if (
            isinstance(older_than, bool)
            or not isinstance(older_than, (int, float))
            or not 0 <= older_than < float("inf")
        ):
            raise InvalidParameterError(
                "older_than", older_than, "expected a finite number of seconds >= 0"
            )
        report = remove_unused(self._dir, float(older_than))
        warn_pinned(self._dir, report, "drop_unused")
        return report.removed

    def break_locks(
        self, older_than: float | None = None, *, dry_run: bool = False
    ) -> list[LockMarker]:
        """Remove soft-lock markers left by dead holders (``knncache gc ROOT --break-locks``).

        For clusters whose hosts may die mid-write (``lock="soft"``). Removed: markers whose
        holder is on this host and provably dead (any age), and markers of other hosts (or
        unreadable ones) older than ``older_than``. Kept: markers whose holder is alive on
        this host, and younger foreign ones. A marker is removed only if it is still the one
        that was read (its random token is checked after it is renamed aside), never by
        inode number. Breaking the lock of a holder that is in fact alive is safe: it costs a
        duplicate search, never a wrong entry.

        Parameters
        ----------
        older_than : float, optional
            Age threshold in seconds (default: this store's ``lock_timeout``).
        dry_run : bool, keyword-only
            Only report what would be removed.

        Returns
        -------
        list of LockMarker
            The markers removed (holder host, pid, age...).
        """
        self._check_open()
        threshold = self._dir.lock_timeout if older_than is None else float(older_than)
        if not threshold >= 0:
            raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
        removed, _ = break_soft_locks(self._root, threshold, dry_run=dry_run)
        return removed

    def total_bytes(self) -> int:
        """Total size of the committed entries, in bytes."""
        return sum(e.bytes for e in self.entries())
