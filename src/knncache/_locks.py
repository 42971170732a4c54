"""Per-entry lock strategies: ``"hard"`` (flock), ``"soft"`` (marker file), ``"none"``.

This module is the interface (:class:`LockStrategy`, :func:`make_lock_strategy`) and the
home of the lock policy; the implementations are :mod:`knncache._flock` (hard lock, pins)
and :mod:`knncache._softlock` (soft lock, stale breaking). :class:`~knncache.KnnStore`
picks one strategy at construction and calls :meth:`LockStrategy.hold`,
:meth:`LockStrategy.held_by_other` and reads :attr:`LockStrategy.exclusive`; it never
branches on the concrete class.

Correctness never depends on the lock: entries are content-addressed, every file is written
atomically and ``meta.json`` is the commit marker, so writers racing without a lock produce
one valid entry. The lock only avoids duplicate searches. When a strategy cannot guarantee
mutual exclusion (``exclusive = False``: the soft lock can be broken by an operator or by a
mistaken stale break, and ``"none"`` has no lock at all) the store switches its cleanup to a
lock-free policy (see :mod:`knncache._housekeeping`).

Soft lock
---------
A marker file ``<root>/<fingerprint>.softlock`` holds one JSON line: ``host``, ``pid``,
``acquired`` (POSIX time), a random ``token`` (the marker's identity), and, on Linux,
``boot_id``, ``pidns`` (PID-namespace inode) and ``start`` (the process start time in clock
ticks). It is published with ``link(2)`` of a complete private file (the NFS-safe recipe of
``open(2)``), so nobody ever reads a partial marker.

Stale policy (a lock can never wedge a cluster):

* holder on **this host** (same host name, boot id and PID namespace) whose process is
  gone (pid dead, or reused by a process with another start time) → broken automatically
  as soon as a waiter sees it, and the waiter retries;
* holder on **another host** (or another boot, or another PID namespace) → cannot be
  probed, so never broken automatically: when the wait times out,
  :class:`~knncache.LockTimeoutError` names the holder's host, pid and the lock's age;
  ``knncache gc ROOT --break-locks`` removes markers older than a threshold.

A break renames the marker to a private name, re-reads it and deletes it only when its
token is the one judged stale; otherwise it links it back. Identity is the random token in
the content, never the inode number or mtime, so a live marker created on a reused inode
number is never removed as stale. The one remaining race (a live marker displaced and a
third contender taking the path before it is linked back) admits two holders, which costs
a duplicate search and nothing else.

Hard lock and pins (flock)
--------------------------
The hard lock is ``flock(LOCK_EX)`` on ``<root>/<fingerprint>.lock``; a pin is
``flock(LOCK_SH)`` on ``<root>/<fingerprint>.pin`` (see :meth:`KnnStore.pin`). Both files
are opened relative to the root's descriptor with ``O_NOFOLLOW`` and must be regular files
(a planted link is reported, never followed or truncated). Both die with their process. They
can be deleted without racing a holder: a remover unlinks the file only while it holds it
exclusively, and every acquirer, once it holds the lock, checks that the path still names
the inode it locked (else it retries on the new file). Clear, gc and eviction take a pin file
exclusively and without waiting: an entry pinned by any process is skipped.

On NFS, Linux emulates flock with POSIX byte-range locks through the server's lock manager
(cross-client only where NFS locking works; ``local_lock=flock`` makes it per client); on
Lustre it needs the ``flock`` mount option (``localflock`` makes it per client). Where flock
is refused (``ENOLCK``, ``EOPNOTSUPP``), a pin degrades to this process only, with a warning.

Why not filelock: its locks are exclusive only (no shared lock, which a pin is); its soft
lock's stale break needs a rename that NFS refuses; its marker records no acquisition time
(so no age to report or to break by); and its ``break_lock`` removes by path without
checking what it removes.

Age (what ``--break-locks`` and :class:`~knncache.LockTimeoutError` use) is measured by
the reader's clock and no recorded time can freeze it: ``now`` minus the oldest of the
marker's times that is not in the future, among the holder's ``acquired``, the file's mtime
and its ctime (:func:`~knncache._softlock.marker_age`). A time ahead of the reader's clock
is skew, never age: it is left out and reported (``skew``, and ``gc --break-locks`` says
so). The ctime is set by the file system's clock at the marker's creation and no content or
``utime`` can set it, so a marker dated a year ahead, file times included, still ages from
when it was made; only a real offset between the reader's and the file system's clocks
delays a break, by that offset. A holder whose clock runs behind makes its marker look
older than it is: hosts sharing a store should still run NTP.

Extra arrays (``ensure_array``) written without an exclusive lock must be computed
deterministically, like the graph, for racing writers to agree byte for byte.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from knncache._fingerprint import validate_fingerprint
from knncache._flock import (
    LOCK_SUFFIX,
    PIN_SUFFIX,
    HardLock,
    exclusive_pin,
    flock_acquire,
    flock_release,
    held_exclusively_elsewhere,
    names_fd,
    pin_entry,
    pinned_here,
)
from knncache._softlock import (
    SOFT_LOCK_SUFFIX,
    LockMarker,
    SoftLock,
    boot_id,
    break_soft_locks,
    pid_alive,
    read_marker,
    remove_if_token,
    start_time,
)

__all__ = [
    "LOCK_MODES",
    "LOCK_SUFFIX",
    "PIN_SUFFIX",
    "SOFT_LOCK_SUFFIX",
    "HardLock",
    "LockMarker",
    "LockStrategy",
    "NoLock",
    "SoftLock",
    "boot_id",
    "break_soft_locks",
    "exclusive_pin",
    "flock_acquire",
    "flock_release",
    "held_exclusively_elsewhere",
    "make_lock_strategy",
    "names_fd",
    "pid_alive",
    "pin_entry",
    "pinned_here",
    "read_marker",
    "remove_if_token",
    "start_time",
]

LOCK_MODES = ("hard", "soft", "none")


class LockStrategy(Protocol):
    """How a store serialises the writers of one entry."""

    #: The mode name (``"hard"``, ``"soft"`` or ``"none"``).
    name: str
    #: Whether holding the lock excludes every other writer of the entry for sure. When
    #: ``False`` the store never deletes files another writer might be using.
    exclusive: bool

    def hold(
        self, root: Path, fp: str, timeout: float, *, remove: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Context manager holding the lock of entry ``fp``.

        With ``remove``, a lock file is deleted before the lock is let go (housekeeping of
        absent entries; acquirers detect it and retry).

        Raises
        ------
        LockTimeoutError
            Not acquired within ``timeout`` seconds (0: one attempt).
        StoreWriteError
            The lock file cannot be created.
        """
        ...

    def held_by_other(self, root: Path, fp: str) -> bool:
        """Whether another process holds the lock of ``fp`` right now (best effort)."""
        ...


class NoLock:
    """No lock at all: racing writers may search twice; the result is still one valid entry."""

    name = "none"
    exclusive = False

    @contextlib.contextmanager
    def hold(self, root: Path, fp: str, timeout: float, *, remove: bool = False) -> Iterator[None]:
        validate_fingerprint(fp)
        yield

    def held_by_other(self, root: Path, fp: str) -> bool:
        return False


_STRATEGIES: dict[str, type[LockStrategy]] = {"hard": HardLock, "soft": SoftLock, "none": NoLock}


def make_lock_strategy(mode: object) -> LockStrategy:
    """The strategy for ``mode``; ``ValueError`` unless it is "hard", "soft" or "none"."""
    if not isinstance(mode, str) or mode not in _STRATEGIES:
        raise ValueError(f"lock must be one of {LOCK_MODES!r}, got {mode!r}")
    return _STRATEGIES[mode]()
