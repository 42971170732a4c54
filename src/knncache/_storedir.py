"""``StoreDir``: one store's directory and the state its parts share (the lock strategy, the
cleanup grace period, the read-only state, the counters), with descriptor helpers that never
follow a link. The store's interface, its write path and its housekeeping all work on one."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

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
    parse_marker,
    read_meta,
)
from knncache._errors import (
    CorruptEntryError,
    FeaturesNotStoredError,
    ForeignObjectError,
    StoreWriteError,
)
from knncache._fingerprint import is_fingerprint, validate_fingerprint
from knncache._locks import make_lock_strategy
from knncache._safefs import DIR_FLAGS, open_dir_at, read_capped, scan
from knncache._usage import IN_USE

__all__: list[str] = []

STAT_KEYS = (
    "hits",
    "misses",
    "searches",
    "corrupt_rebuilds",
    "evictions",
    "array_computes",
    "array_hits",
)


class StoreDir:
    """The directory ``root`` of one store object, and what its parts share.

    Parameters
    ----------
    root : Path
        Absolute path of the store's root directory (it may not exist yet).
    lock : str
        The lock mode (:func:`knncache._locks.make_lock_strategy`).
    lock_timeout : float
        Seconds to wait for an entry lock held by another process.
    read_only : bool
        Whether the store was opened read-only.
    """

    def __init__(self, root: Path, *, lock: str, lock_timeout: float, read_only: bool) -> None:
        self.root = root
        self.locking = make_lock_strategy(lock)
        self.lock_timeout = lock_timeout
        self.opened_read_only = read_only
        # Without an exclusive lock, an unreferenced file younger than this may belong to a
        # writer about to commit: a writer's files reach the disk within I/O time of its
        # commit (the search runs before the first write), far less than a lock timeout.
        self.sweep_grace = max(lock_timeout, 60.0)
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    @property
    def exclusive(self) -> bool:
        """Whether the entry lock excludes every other writer (``lock="hard"``)."""
        return self.locking.exclusive

    # ------------------------------------------------------------------ read-only state
    def why_read_only(self) -> str | None:
        """Why the store cannot be written right now, or ``None`` (checked at each call)."""
        if self.opened_read_only:
            return "opened with read_only=True"
        try:
            st = os.statvfs(self.root)
        except OSError:
            return None  # no root yet: the first write creates it (or reports why not)
        if st.f_flag & os.ST_RDONLY:
            return "read-only filesystem"
        if not os.access(self.root, os.W_OK | os.X_OK):
            return "no write permission"
        return None

    def require_writable(self, what: str) -> None:
        """Raise :class:`~knncache.StoreWriteError` (saying ``what`` failed) if read-only."""
        why = self.why_read_only()
        if why is not None:
            raise StoreWriteError(
                str(self.root),
                f"the store is read-only ({why}) and {what}; use a writable store, or "
                "compute in memory with knncache.compute_knn",
            )

    # ------------------------------------------------------------------ names and locks
    def entry(self, fp: str) -> Path:
        """The path of entry ``fp`` (validated)."""
        return self.root / validate_fingerprint(fp)

    def lock(
        self, fp: str, *, timeout: float | None = None, remove: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the entry lock of ``fp`` (waiting up to ``timeout``, default the store's)."""
        wait = self.lock_timeout if timeout is None else timeout
        return self.locking.hold(self.root, fp, wait, remove=remove)

    # ------------------------------------------------------------------ descriptors
    def open_root(self) -> int:
        """A descriptor of the root directory (``OSError`` if it is absent)."""
        return os.open(self.root, DIR_FLAGS)

    @contextlib.contextmanager
    def entry_fd(self, fp: str) -> Iterator[int]:
        """Descriptor of the real entry directory (FileNotFoundError, ForeignObjectError)."""
        root_fd = self.open_root()
        try:
            dfd = open_dir_at(root_fd, validate_fingerprint(fp), where=str(self.root))
        finally:
            os.close(root_fd)
        try:
            yield dfd
        finally:
            os.close(dfd)

    def children(self) -> list[tuple[str, os.stat_result]]:
        """``(name, lstat)`` of everything in the root (empty if there is no root)."""
        try:
            root_fd = self.open_root()
        except OSError:
            return []
        try:
            return list(scan(root_fd))
        finally:
            os.close(root_fd)

    def entry_dirs(self) -> list[Path]:
        """Entry directories (real directories named by a fingerprint; links are not)."""
        return [
            self.root / name
            for name, st in self.children()
            if is_fingerprint(name) and stat.S_ISDIR(st.st_mode)
        ]

    # ------------------------------------------------------------------ lock-free reads
    def inspect(self, fp: str) -> tuple[Meta | None, str | None]:
        """``(meta, None)`` for a valid entry, ``(None, None)`` if absent, else the problem."""
        try:
            with self.entry_fd(fp) as dfd:
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

    def touch(self, fp: str) -> None:
        """Refresh the last-used time of entry ``fp`` (unless read-only)."""
        # The last-used time is meta.json's mtime: refreshing it costs no rewrite.
        if self.why_read_only() is not None:
            return
        with contextlib.suppress(OSError), self.entry_fd(fp) as dfd:
            os.utime(META_FILE, dir_fd=dfd, follow_symlinks=False)

    def array_committed(self, fp: str, name: str) -> bool:
        """Lock-free: whether array ``name`` is committed and intact (raises FeaturesNotStored)."""
        try:
            with self.entry_fd(fp) as dfd:
                meta = read_meta(dfd, fp)
                if FEATURES_FILE not in meta["files"]:
                    raise FeaturesNotStoredError(fp)
                raw = read_capped(dfd, array_marker(name), MAX_MARKER_BYTES)
                rec = parse_marker(raw, fp, name)
                check_file(dfd, fp, array_file(name), rec, checksum=True)
                return True
        except (OSError, CorruptEntryError):
            return False

    # ------------------------------------------------------------------ in use
    def use(self, fp: str) -> None:
        """This process uses entry ``fp``: its own eviction leaves it alone."""
        IN_USE.add(str(self.root), fp)

    def release(self, fp: str) -> None:
        """This process no longer uses entry ``fp``."""
        IN_USE.discard(str(self.root), fp)

    def in_use(self, fp: str) -> bool:
        """Whether this process uses entry ``fp``."""
        return IN_USE.contains(str(self.root), fp)
