"""A store's housekeeping: what may be removed, when, and by whom (the sweep of leftovers,
clear, eviction, removal of entries unused for a while, verify, and the entry listing
they and the command line read).

Correctness never depends on the lock: every file is written atomically, files of the same
name always hold the same bytes (exact graphs and features by determinism, approximate
graphs by their build's random tag, see :mod:`knncache._write`), ``meta.json`` is
committed last and every extra array has its own commit marker, so writers racing without
a lock produce one valid entry. What the lock buys is the right to delete. Under an
exclusive lock (``"hard"``) every write happens under that lock, so a regular file that
nothing committed refers to can only be a leftover of a writer that died (temporary files,
k-files written before a crash, k-files superseded by a larger k or another build): it
goes at once. Without one (``"soft"``, ``"none"``) such a file is removed only when it is
also older than the grace period (``max(lock_timeout, 60 s)``), since a younger one may be
a racing writer's, about to be committed; an entry without ``meta.json`` but with younger
files is in flight, neither reported nor removed. Readers that mapped a
removed file keep their mapping. Clear and eviction remove an entry only under its lock,
taken without waiting, and only if no process pins it; eviction and the removal of unused
entries also spare what this process uses (:data:`knncache._usage.IN_USE`). An entry's last
use is :func:`last_used` (``meta.json``'s mtime, refreshed on every hit, or the time recorded
in it): eviction removes the least recently used first, ``gc --unused-for`` those unused
longer than its duration. Deletion unlinks the objects themselves
(links are never followed) and stays in the root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from knncache._engines import SHIP_RE, SHIP_TEMP_RE
from knncache._entry import (
    FEATURES_FILE,
    META_FILE,
    Meta,
    StaleEntryError,
    array_file,
    array_marker,
    check_entry,
    is_valid_time,
    read_arrays,
    read_meta,
)
from knncache._errors import (
    CorruptEntryError,
    ForeignObjectError,
    KnnCacheError,
    KnnCacheWarning,
    LockTimeoutError,
    StoreWriteError,
)
from knncache._fingerprint import is_fingerprint
from knncache._locks import (
    LOCK_SUFFIX,
    PIN_SUFFIX,
    exclusive_pin,
    flock_acquire,
    flock_release,
    held_exclusively_elsewhere,
    names_fd,
)
from knncache._safefs import kind_of, open_dir_at, open_regular, remove_at, scan
from knncache._storedir import StoreDir

__all__ = ["CorruptEntry", "EntryInfo", "last_used"]


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
    build : dict or None
        How an approximate graph was built (``{"threads", "deterministic", "faiss",
        "tag"}``); None for an exact graph or one written before builds were recorded.
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
    build: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CorruptEntry:
    """One entry (or object of an entry) :meth:`KnnStore.verify` found bad, and why."""

    fingerprint: str
    path: str
    reason: str


@dataclass
class HousekeepingReport:
    """What one clear/evict pass did (the CLI prints it; the API warns about ``pinned``)."""

    removed: list[str] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    foreign_removed: list[str] = field(default_factory=list)
    lock_files_removed: int = 0
    temp_removed: list[str] = field(default_factory=list)


def _now() -> float:
    return time.time()


# ---------------------------------------------------------------------- listing
def entry_bytes(dfd: int) -> int:
    """Total size of the regular files in the entry directory ``dfd``."""
    return sum(st.st_size for _, st in scan(dfd) if stat.S_ISREG(st.st_mode))


def last_used(meta: Meta, mtime: float) -> float:
    """An entry's last-used time: ``meta.json``'s mtime (refreshed on each hit) or the time
    recorded in it, whichever is later; an mtime outside :func:`is_valid_time` (anyone can
    set it) is not believed."""
    recorded = float(meta["last_used"])
    return max(recorded, mtime) if is_valid_time(mtime) else recorded


def entry_info(d: StoreDir, fp: str) -> EntryInfo:
    """The summary of entry ``fp`` (FileNotFoundError, CorruptEntryError, OSError)."""
    with d.entry_fd(fp) as dfd:
        meta = read_meta(dfd, fp)
        arrays, _ = read_arrays(dfd, fp)
        mtime = os.stat(META_FILE, dir_fd=dfd, follow_symlinks=False).st_mtime
        size = entry_bytes(dfd)
    return EntryInfo(
        fingerprint=fp,
        n=meta["n"],
        d=meta["d"],
        k=meta["k"],
        metric=meta["metric"],
        bytes=size,
        created=float(meta["created"]),
        last_used=last_used(meta, mtime),
        has_features=FEATURES_FILE in meta["files"],
        arrays=tuple(sorted(arrays)),
        method=str(meta.get("method", "exact")),
        params=dict(meta.get("params", {})),
        recall=dict(meta["recall"]) if "recall" in meta else None,
        build=dict(meta["build"]) if "build" in meta else None,
    )


def list_entries(d: StoreDir) -> list[EntryInfo]:
    """Committed entries, most recently used first (unreadable and stale ones left out)."""
    out = []
    for entry in d.entry_dirs():
        try:
            out.append(entry_info(d, entry.name))
        except (OSError, CorruptEntryError):
            continue
    out.sort(key=lambda e: (-e.last_used, e.fingerprint))
    return out


# ---------------------------------------------------------------------- the sweep
def _referenced(d: StoreDir, dfd: int, fp: str, keep: Meta | None) -> set[str]:
    names = {META_FILE}
    metas = [keep]
    if not d.exclusive:
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


def sweep(d: StoreDir, dfd: int, fp: str, keep: Meta | None) -> None:
    """Under the entry lock: unlink regular files nothing committed refers to (at once
    under an exclusive lock, else past the grace period). Foreign objects are left to
    :func:`discard_corrupt`."""
    wanted = _referenced(d, dfd, fp, keep)
    cutoff = None if d.exclusive else _now() - d.sweep_grace
    for name, st in scan(dfd):
        if name in wanted or not stat.S_ISREG(st.st_mode):
            continue
        if cutoff is not None and st.st_mtime > cutoff:
            continue
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dfd)


def unlink_unreferenced(d: StoreDir, dfd: int, fp: str, names: list[str]) -> None:
    """Failure cleanup: remove files we renamed into place that nothing commits.

    Without an exclusive lock a racing writer may have committed the same files (same
    names, same bytes); those stay.
    """
    wanted = set() if d.exclusive else _referenced(d, dfd, fp, None)
    for name in names:
        if name not in wanted:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dfd)


def in_flight(d: StoreDir, fp: str) -> bool:
    """Without an exclusive lock: no meta yet, but files younger than the grace period.

    Those may belong to a writer racing us (it will commit them), so they are neither
    reported nor removed.
    """
    if d.exclusive:
        return False
    cutoff = _now() - d.sweep_grace
    try:
        with d.entry_fd(fp) as dfd:
            children = dict(scan(dfd))
    except OSError:
        return False
    if META_FILE in children:
        return False
    return any(stat.S_ISREG(st.st_mode) and st.st_mtime > cutoff for st in children.values())


def _being_written(d: StoreDir, fp: str) -> bool:
    # Called when the meta was missing: held lock, a meta committed meanwhile, or (no
    # exclusive lock) young files all mean a writer is at work.
    if d.locking.held_by_other(d.root, fp):
        return True
    if os.path.lexists(d.entry(fp) / META_FILE):
        return True
    return in_flight(d, fp)


# ---------------------------------------------------------------------- removal
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


def discard_corrupt(d: StoreDir, fp: str) -> None:
    """Under the entry lock: make way for a rebuild; foreign objects are unlinked, never
    followed."""
    try:
        root_fd = d.open_root()
    except OSError as exc:
        raise StoreWriteError(str(d.root), exc.strerror or str(exc), exc.errno) from None
    try:
        try:
            st = os.stat(fp, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode) or d.exclusive:
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
            raise StoreWriteError(str(d.entry(fp)), "cannot remove the foreign object")
    except OSError as exc:
        if isinstance(exc, KnnCacheError):
            raise
        raise StoreWriteError(str(d.entry(fp)), exc.strerror or str(exc), exc.errno) from None
    finally:
        os.close(root_fd)


def _stale_entries(d: StoreDir) -> list[str]:
    """Entries of an older format version (never served: nobody asks for their key)."""
    out = []
    for entry in d.entry_dirs():
        try:
            with d.entry_fd(entry.name) as dfd:
                read_meta(dfd, entry.name)
        except StaleEntryError:
            out.append(entry.name)
        except (OSError, CorruptEntryError):
            continue
    return out


def _remove_one(d: StoreDir, fp: str, report: HousekeepingReport) -> bool:
    """Remove entry ``fp`` unless written (its lock is held) or pinned; record which."""
    try:
        with d.lock(fp, timeout=0, remove=True):
            root_fd = d.open_root()
            try:
                with exclusive_pin(root_fd, fp, str(d.root)) as free:
                    if not free:
                        report.pinned.append(fp)
                        return False
                    _remove_entry(root_fd, fp)
            finally:
                os.close(root_fd)
    except (LockTimeoutError, StoreWriteError):
        report.busy.append(fp)
        return False
    d.release(fp)
    report.removed.append(fp)
    return True


def _housekeep_files(d: StoreDir, report: HousekeepingReport) -> None:
    """Remove lock and pin files of absent entries (never one that is held), and foreign
    objects (links, FIFOs...) at lock, pin or entry names. Nothing is followed."""
    try:
        root_fd = d.open_root()
    except OSError:
        return
    try:
        children = dict(scan(root_fd))
        for name, st in children.items():
            if SHIP_RE.fullmatch(name) or SHIP_TEMP_RE.fullmatch(name):
                _housekeep_ship(d, root_fd, name, st, report)
                continue
            fp, suffix = name[:32], name[32:]
            if not is_fingerprint(fp) or suffix not in ("", LOCK_SUFFIX, PIN_SUFFIX):
                continue
            if suffix == "" and stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode) or suffix == "":
                if remove_at(root_fd, name):
                    report.foreign_removed.append(str(d.root / name))
                continue
            if fp in children:
                continue  # the entry exists: its lock and pin files stay
            if suffix == PIN_SUFFIX:
                with exclusive_pin(root_fd, fp, str(d.root)) as free:
                    removed = free
            else:
                try:
                    fd = flock_acquire(root_fd, name, fcntl.LOCK_EX, 0, where=str(d.root))
                except (LockTimeoutError, StoreWriteError):
                    continue
                removed = not os.path.lexists(d.entry(fp))
                flock_release(fd, root_fd, name if removed else None)
            report.lock_files_removed += int(removed)
    finally:
        os.close(root_fd)


def _housekeep_ship(
    d: StoreDir, root_fd: int, name: str, st: os.stat_result, report: HousekeepingReport
) -> None:
    """Remove features shipped to executor workers (or a partial write of them) left by a
    process that died: only past the grace period, and a shipped file only while this
    process holds it exclusively (its owner holds it shared until it removes it)."""
    path = str(d.root / name)
    if not stat.S_ISREG(st.st_mode):
        if remove_at(root_fd, name):
            report.foreign_removed.append(path)
        return
    if st.st_mtime > _now() - d.sweep_grace:
        return  # being written, or just written and about to be held
    if SHIP_TEMP_RE.fullmatch(name):
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=root_fd)
            report.temp_removed.append(path)
        return
    try:
        fd, _ = open_regular(root_fd, name, where=str(d.root))
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


def warn_pinned(d: StoreDir, report: HousekeepingReport, what: str) -> None:
    """Warn the caller of the public ``clear``/``evict`` about the pinned entries skipped."""
    if report.pinned:
        warnings.warn(
            f"knncache: {what} skipped {len(report.pinned)} pinned entries in "
            f"{str(d.root)!r}: {report.pinned}",
            KnnCacheWarning,
            stacklevel=3,
        )


def clear_entries(d: StoreDir) -> HousekeepingReport:
    """Remove every entry that is neither written nor pinned, and the files of absent ones
    (see :meth:`knncache.KnnStore.clear`)."""
    report = HousekeepingReport()
    if not d.children():
        return report
    d.require_writable("clear cannot remove anything")
    _housekeep_files(d, report)
    for entry in d.entry_dirs():
        _remove_one(d, entry.name, report)
    _housekeep_files(d, report)
    return report


def evict_entries(d: StoreDir, budget: int | None) -> HousekeepingReport:
    """Evict least-recently-used entries until the store fits in ``budget`` bytes (see
    :meth:`knncache.PersistentStore.evict`); ``None``: nothing happens."""
    report = HousekeepingReport()
    if budget is None:
        return report
    if d.why_read_only() is None:
        for fp in _stale_entries(d):  # older format: unreachable, always evictable
            if _remove_one(d, fp, report):
                d.stats["evictions"] += 1
    infos = list_entries(d)
    total = sum(e.bytes for e in infos)
    if total <= budget:
        if d.why_read_only() is None:
            _housekeep_files(d, report)
        return report
    d.require_writable("eviction cannot remove anything")
    for info in sorted(infos, key=lambda e: (e.last_used, e.fingerprint)):
        if total <= budget:
            break
        if held_exclusively_elsewhere(d.root, f"{info.fingerprint}{PIN_SUFFIX}"):
            report.pinned.append(info.fingerprint)  # pinned by some process (maybe this)
            continue
        if d.in_use(info.fingerprint):
            continue
        if _remove_one(d, info.fingerprint, report):
            total -= info.bytes
            d.stats["evictions"] += 1
    _housekeep_files(d, report)
    return report


def unused_entries(d: StoreDir, age: float, now: float | None = None) -> list[EntryInfo]:
    """Committed entries whose last use (:func:`last_used`) is more than ``age`` seconds
    before ``now`` (default: the current time), least recently used first."""
    cutoff = (_now() if now is None else now) - age
    old = [e for e in list_entries(d) if e.last_used < cutoff]
    return sorted(old, key=lambda e: (e.last_used, e.fingerprint))


def remove_unused(d: StoreDir, age: float) -> HousekeepingReport:
    """Remove the entries unused for more than ``age`` seconds (see
    :meth:`knncache.PersistentStore.drop_unused`); the same rules as eviction: never an
    entry pinned by any process, written by another one or used by this one."""
    report = HousekeepingReport()
    old = unused_entries(d, age)
    if not old:
        return report
    d.require_writable("gc cannot remove anything")
    for info in old:
        if held_exclusively_elsewhere(d.root, f"{info.fingerprint}{PIN_SUFFIX}"):
            report.pinned.append(info.fingerprint)  # pinned by some process (maybe this)
            continue
        if d.in_use(info.fingerprint):
            continue
        _remove_one(d, info.fingerprint, report)
    _housekeep_files(d, report)
    return report


# ---------------------------------------------------------------------- verify
def problems(d: StoreDir, *, checksum: bool) -> list[CorruptEntry]:
    """Every bad entry and foreign object at an entry, lock or pin name (see
    :meth:`knncache.KnnStore.verify`; ``checksum=False`` skips the checksums)."""
    bad = []
    for name, st in d.children():
        fp, suffix = name[:32], name[32:]
        if not is_fingerprint(fp):
            continue
        path = str(d.root / name)
        if suffix in (LOCK_SUFFIX, PIN_SUFFIX, ".softlock"):
            if not stat.S_ISREG(st.st_mode):
                what = {LOCK_SUFFIX: "lock", PIN_SUFFIX: "pin", ".softlock": "soft-lock"}
                bad.append(
                    CorruptEntry(
                        fp, path, f"{what[suffix]} file is a {kind_of(st.st_mode)} (not followed)"
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
            with d.entry_fd(fp) as dfd:
                check_entry(dfd, fp, arrays=True, checksum=checksum)
        except FileNotFoundError:
            if _being_written(d, fp):
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
