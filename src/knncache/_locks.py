"""Per-entry lock strategies: ``"hard"`` (fcntl/flock), ``"soft"`` (marker file), ``"none"``.

:class:`~knncache.KnnStore` picks one strategy at construction (template method: the store
calls :meth:`LockStrategy.hold`, :meth:`LockStrategy.held_by_other` and reads
:attr:`LockStrategy.exclusive`; it never branches on the concrete class).

Correctness never depends on the lock: entries are content-addressed, every file is written
atomically and ``meta.json`` is the commit marker, so writers racing without a lock produce
one valid entry. The lock only avoids duplicate searches. When a strategy cannot guarantee
mutual exclusion (``exclusive = False``: the soft lock can be broken by an operator or by a
mistaken stale break, and ``"none"`` has no lock at all) the store switches its cleanup to a
lock-free policy (see ``KnnStore._sweep``).

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
the content, never the inode number or mtime, so the inode-reuse break of filelock's soft
locks (GHSA-fq56-3cx3-fjxp: a live marker created on a reused inode number is removed as
stale) cannot happen here. The one remaining race (a live marker displaced and a third
contender taking the path before it is linked back) admits two holders, which costs a
duplicate search and nothing else.

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

Why not filelock's ``SoftFileLock``/``MarkerSoftFileLock`` (filelock 4.3): their marker
records pid, host and process start but no acquisition time, and their stale break
recognises the marker by inode number and mtime (pinned by an open descriptor since the
fix of GHSA-fq56-3cx3-fjxp, a guarantee of one kernel, not of an NFS server shared by many
clients); their ``break_lock`` removes by path without checking what it removes. Nor
filelock's ``FileLock`` for the hard lock: it opens the lock path following links with
``O_TRUNC``, so a link planted in a shared store would truncate a file outside it.

Ages compare the holder's clock (``acquired``) with the reader's: hosts sharing a store
should run NTP. Extra arrays (``ensure_array``) written without an exclusive lock must be
computed deterministically, like the graph, for racing writers to agree byte for byte.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from knncache._errors import (
    ForeignObjectError,
    KnnCacheWarning,
    LockTimeoutError,
    StoreWriteError,
)
from knncache._fingerprint import is_fingerprint, validate_fingerprint
from knncache._safefs import DIR_FLAGS, kind_of

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
    "break_soft_locks",
    "exclusive_pin",
    "flock_acquire",
    "flock_release",
    "held_exclusively_elsewhere",
    "make_lock_strategy",
    "pin_entry",
    "read_marker",
]

LOCK_MODES = ("hard", "soft", "none")
SOFT_LOCK_SUFFIX = ".softlock"
LOCK_SUFFIX = ".lock"
PIN_SUFFIX = ".pin"
_MARKER_FORMAT = "knncache-softlock/1"
_MAX_MARKER_BYTES = 4096
_POLL_MIN, _POLL_MAX = 0.02, 0.5


# ---------------------------------------------------------------------- host identity
def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def boot_id() -> str | None:
    return _read_text("/proc/sys/kernel/random/boot_id")


def _pidns() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), or ``None``."""
    text = _read_text(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name may hold spaces and parentheses: count fields after the last ')'.
    fields = text[text.rfind(")") + 1 :].split()
    try:
        return int(fields[19])  # field 22 of proc_pid_stat(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, owned by another user
        return True
    return True


# ---------------------------------------------------------------------- markers
@dataclass(frozen=True, slots=True)
class LockMarker:
    """A soft-lock marker as found on disk (see :meth:`PersistentStore.break_locks`).

    Attributes
    ----------
    path : str
        The marker file.
    fingerprint : str
        The entry it locks.
    host : str or None
        Holder's host name (``None``: the marker is unreadable or not ours).
    pid : int or None
        Holder's process id.
    acquired : float
        When the lock was taken (POSIX time; the file's mtime for an unreadable marker).
    age : float
        Seconds since ``acquired`` when the marker was read.
    token : str or None
        The marker's random identity.
    """

    path: str
    fingerprint: str
    host: str | None
    pid: int | None
    acquired: float
    age: float
    token: str | None
    boot_id: str | None = None
    pidns: int | None = None
    start: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (for ``knncache gc --json``)."""
        return {
            "path": self.path,
            "fingerprint": self.fingerprint,
            "host": self.host,
            "pid": self.pid,
            "acquired": self.acquired,
            "age": self.age,
        }

    def on_this_host(self) -> bool:
        """Whether the holder ran on this host and boot, in this PID namespace.

        Only such a holder can be probed. A different boot id under the same host name is
        treated as another host: it may be a reboot, but it may as well be a second machine
        with the same name, and breaking a live holder's lock must not be a guess.
        """
        boot = boot_id()
        return (
            self.host == socket.gethostname()
            and self.pid is not None
            and self.pidns == _pidns()
            and (self.boot_id is None or boot is None or self.boot_id == boot)
        )

    def holder_is_dead(self) -> bool:
        """``True`` only when this host can prove the holder gone (never for another host).

        Gone means: the holder is on this host (:meth:`on_this_host`) and its pid does not
        exist, or exists with another start time (the pid was reused).
        """
        if self.pid is None or not self.on_this_host():
            return False
        if not pid_alive(self.pid):
            return True
        if self.start is not None:
            now = start_time(self.pid)
            if now is not None and now != self.start:
                return True
        return False


def _parse_marker(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _MARKER_FORMAT:
        return None
    ok = (
        isinstance(data.get("host"), str)
        and isinstance(data.get("pid"), int)
        and isinstance(data.get("acquired"), (int, float))
        and isinstance(data.get("token"), str)
    )
    return data if ok else None


def read_marker(path: str | os.PathLike[str]) -> LockMarker | None:
    """Read a soft-lock marker; ``None`` if there is none. Never raises for bad content.

    An unreadable or foreign marker gives a ``LockMarker`` with ``host=pid=token=None`` and
    the file's mtime as ``acquired``.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError:
        fd = -1
    raw = b""
    mtime = time.time()
    try:
        if fd >= 0:
            st = os.fstat(fd)
            mtime = st.st_mtime
            if stat.S_ISREG(st.st_mode):  # never read a FIFO or a device
                raw = os.read(fd, _MAX_MARKER_BYTES)
    except OSError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)
    fp = p.name[: -len(SOFT_LOCK_SUFFIX)] if p.name.endswith(SOFT_LOCK_SUFFIX) else p.name
    data = _parse_marker(raw)
    now = time.time()
    if data is None:
        return LockMarker(str(p), fp, None, None, mtime, max(0.0, now - mtime), None)
    acquired = float(data["acquired"])
    return LockMarker(
        path=str(p),
        fingerprint=fp,
        host=data["host"],
        pid=data["pid"],
        acquired=acquired,
        age=max(0.0, now - acquired),
        token=data["token"],
        boot_id=data.get("boot_id") if isinstance(data.get("boot_id"), str) else None,
        pidns=data.get("pidns") if isinstance(data.get("pidns"), int) else None,
        start=data.get("start") if isinstance(data.get("start"), int) else None,
    )


def _marker_bytes(token: str) -> bytes:
    pid = os.getpid()
    record = {
        "format": _MARKER_FORMAT,
        "host": socket.gethostname(),
        "pid": pid,
        "acquired": time.time(),
        "token": token,
        "boot_id": boot_id(),
        "pidns": _pidns(),
        "start": start_time(pid),
    }
    return (json.dumps(record, sort_keys=True) + "\n").encode()


def _publish(path: Path, token: str) -> bool:
    """Create the marker with complete content; ``False`` if it already exists."""
    data = _marker_bytes(token)
    tmp = path.with_name(f".{path.name}.{token}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # NFS may report a failed link that succeeded (lost reply): the link count says.
            with contextlib.suppress(OSError):
                if os.stat(tmp).st_nlink == 2:
                    return True
            # No hard links on this filesystem: exclusive create, content written after.
            return _publish_exclusive(path, data)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _publish_exclusive(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _remove_if_token(path: Path, token: str | None) -> bool:
    """Remove the marker at ``path`` only if it is still the one with ``token``.

    Rename-aside, re-read, then unlink (ours) or link back (someone else's). No inode
    numbers or mtimes are compared, so a recycled inode cannot fool it.
    """
    aside = path.with_name(f".{path.name}.break.{secrets.token_hex(16)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        got = read_marker(aside)
        if got is not None and got.token == token:
            return True
        # A live marker replaced the one judged stale: put it back unless the path was
        # taken meanwhile (then two holders at worst: a duplicate search, never bad data).
        with contextlib.suppress(OSError):
            os.link(aside, path)
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(aside)


# ---------------------------------------------------------------------- flock files
_RW_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_RO_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _open_lock_file(dir_fd: int, name: str, where: str, *, create: bool = True) -> int:
    """Open (creating it, mode ``0o666 & ~umask``) the regular file ``name``; no link followed.

    An existing non-regular object is refused before it is opened (a device may act on open).
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise ForeignObjectError(os.path.join(where, name), kind_of(st.st_mode), "lock file")
    try:
        fd = os.open(name, _RW_FLAGS if create else _RO_FLAGS, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            path = os.path.join(where, name)
            raise ForeignObjectError(path, "symbolic link", "lock file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ForeignObjectError(os.path.join(where, name), kind_of(st.st_mode), "lock file")
    return fd


def names_fd(dir_fd: int, name: str, fd: int) -> bool:
    """Whether ``name`` in ``dir_fd`` still is the (linked) file open as ``fd``."""
    fst = os.fstat(fd)
    if fst.st_nlink == 0:
        return False
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def flock_acquire(dir_fd: int, name: str, mode: int, timeout: float, *, where: str) -> int:
    """Hold ``flock(mode)`` on the file ``name`` in ``dir_fd``; return its descriptor.

    Polls with ``LOCK_NB`` until ``timeout`` (0: one attempt). Retries when the file was
    removed or replaced while we waited (see the module docstring).

    Raises
    ------
    LockTimeoutError
        Not acquired in time.
    StoreWriteError
        The file cannot be created or locked (read-only store, flock unsupported), or is a
        foreign object (a link, FIFO, device or directory: not followed).
    """
    path = os.path.join(where, name)
    deadline = time.monotonic() + max(0.0, timeout)
    poll = _POLL_MIN
    while True:
        try:
            fd = _open_lock_file(dir_fd, name, where)
        except ForeignObjectError as exc:
            raise StoreWriteError(path, str(exc)) from None
        except OSError as exc:
            raise StoreWriteError(path, exc.strerror or str(exc), exc.errno) from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(path, timeout) from None
            time.sleep(min(poll, remaining))
            poll = min(poll * 1.5, _POLL_MAX)
            continue
        except OSError as exc:
            os.close(fd)
            raise StoreWriteError(path, exc.strerror or str(exc), exc.errno) from None
        if names_fd(dir_fd, name, fd):
            return fd
        os.close(fd)  # removed or replaced while we waited: lock the file now there


def flock_release(fd: int, dir_fd: int | None = None, remove: str | None = None) -> None:
    """Let go of a lock from :func:`flock_acquire`; unlink ``remove`` first if it is ours."""
    try:
        if remove is not None and dir_fd is not None and names_fd(dir_fd, remove, fd):
            with contextlib.suppress(OSError):
                os.unlink(remove, dir_fd=dir_fd)
    finally:
        os.close(fd)


def held_exclusively_elsewhere(root: Path, name: str) -> bool:
    """Whether some open file description holds a lock on ``root/name`` (no file created)."""
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError:
        return False
    try:
        try:
            fd = _open_lock_file(root_fd, name, str(root), create=False)
        except OSError:  # absent, foreign (nobody of ours can hold it) or unreadable
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False
    finally:
        os.close(root_fd)


# ---------------------------------------------------------------------- pins
_PIN_LOCK = threading.Lock()
#: (root, fingerprint) -> [descriptor of the shared-locked pin file (None: this process
#: only), nesting count]
_PINS: dict[tuple[str, str], list[Any]] = {}
_FLOCK_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


@contextlib.contextmanager
def pin_entry(root: Path, fp: str, timeout: float, *, shared_file: bool) -> Iterator[None]:
    """Hold a pin on entry ``fp``: re-entrant, shared by every thread of this process.

    The first pin of a (root, fingerprint) in this process takes ``flock(LOCK_SH)`` on
    ``<root>/<fingerprint>.pin`` (when ``shared_file``; a read-only store pins in this
    process only); nested pins count; the last one out closes the file.

    Raises
    ------
    LockTimeoutError
        A clear or gc held the pin file exclusively longer than ``timeout``.
    StoreWriteError
        The pin file cannot be created, or is a foreign object.
    """
    key = (str(root), validate_fingerprint(fp))
    with _PIN_LOCK:
        slot = _PINS.get(key)
        if slot is not None:
            slot[1] += 1
    if slot is None:
        fd = None
        if shared_file:
            fd = _acquire_pin_file(root, f"{fp}{PIN_SUFFIX}", timeout)
        with _PIN_LOCK:
            slot = _PINS.get(key)
            if slot is None:
                _PINS[key] = [fd, 1]
            else:  # another thread pinned meanwhile: keep one descriptor
                slot[1] += 1
                if fd is not None:
                    if slot[0] is None:
                        slot[0] = fd
                    else:
                        os.close(fd)
    try:
        yield
    finally:
        with _PIN_LOCK:
            slot = _PINS[key]
            slot[1] -= 1
            if slot[1] == 0:
                del _PINS[key]
                if slot[0] is not None:
                    os.close(slot[0])


def _acquire_pin_file(root: Path, name: str, timeout: float) -> int | None:
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError as exc:
        raise StoreWriteError(str(root), exc.strerror or str(exc), exc.errno) from None
    try:
        return flock_acquire(root_fd, name, fcntl.LOCK_SH, timeout, where=str(root))
    except StoreWriteError as exc:
        if exc.errno not in _FLOCK_UNSUPPORTED:
            raise
        warnings.warn(
            f"knncache: this filesystem refuses flock on {exc.path!r} ({exc.reason}); the "
            "entry is pinned against this process's own housekeeping only",
            KnnCacheWarning,
            stacklevel=4,
        )
        return None
    finally:
        os.close(root_fd)


def pinned_here(root: Path, fp: str) -> bool:
    """Whether this process holds a pin on ``fp`` (any thread)."""
    with _PIN_LOCK:
        return (str(root), fp) in _PINS


@contextlib.contextmanager
def exclusive_pin(root_fd: int, fp: str, where: str) -> Iterator[bool]:
    """For clear/gc/evict: ``True`` while no process can pin ``fp``; ``False`` if pinned.

    Takes ``<fingerprint>.pin`` exclusively without waiting (creating it, so a pinner
    arriving meanwhile waits for us), and removes it on exit. A read-only root, or a
    filesystem without flock, gives ``True`` only if this process holds no pin itself.
    """
    name = f"{validate_fingerprint(fp)}{PIN_SUFFIX}"
    try:
        fd = flock_acquire(root_fd, name, fcntl.LOCK_EX, 0, where=where)
    except LockTimeoutError:
        yield False
        return
    except StoreWriteError:
        yield not pinned_here(Path(where), fp)
        return
    try:
        yield True
    finally:
        flock_release(fd, root_fd, name)


# ---------------------------------------------------------------------- strategies
class LockStrategy(abc.ABC):
    """How a store serialises the writers of one entry."""

    #: The mode name (``"hard"``, ``"soft"`` or ``"none"``).
    name: ClassVar[str]
    #: Whether holding the lock excludes every other writer of the entry for sure. When
    #: ``False`` the store never deletes files another writer might be using.
    exclusive: ClassVar[bool]

    @abc.abstractmethod
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

    @abc.abstractmethod
    def held_by_other(self, root: Path, fp: str) -> bool:
        """Whether another process holds the lock of ``fp`` right now (best effort)."""


class HardLock(LockStrategy):
    """``flock(LOCK_EX)`` on ``<root>/<fingerprint>.lock`` (module docstring: how it is removed)."""

    name = "hard"
    exclusive = True

    @contextlib.contextmanager
    def hold(self, root: Path, fp: str, timeout: float, *, remove: bool = False) -> Iterator[None]:
        name = f"{validate_fingerprint(fp)}{LOCK_SUFFIX}"
        try:
            root_fd = os.open(root, DIR_FLAGS)
        except OSError as exc:
            raise StoreWriteError(str(root), exc.strerror or str(exc), exc.errno) from None
        try:
            fd = flock_acquire(root_fd, name, fcntl.LOCK_EX, timeout, where=str(root))
            try:
                yield
            finally:
                flock_release(fd, root_fd, name if remove else None)
        finally:
            os.close(root_fd)

    def held_by_other(self, root: Path, fp: str) -> bool:
        return held_exclusively_elsewhere(root, f"{fp}{LOCK_SUFFIX}")


class SoftLock(LockStrategy):
    """Marker-file lock for NFS/Lustre; stale policy in the module docstring."""

    name = "soft"
    exclusive = False

    @contextlib.contextmanager
    def hold(self, root: Path, fp: str, timeout: float, *, remove: bool = False) -> Iterator[None]:
        path = root / f"{validate_fingerprint(fp)}{SOFT_LOCK_SUFFIX}"
        token = self._acquire(path, timeout)
        try:
            yield
        finally:
            # Only our own marker: after a forced break another holder's must stay.
            got = read_marker(path)
            if got is not None and got.token == token:
                _remove_if_token(path, token)

    def _acquire(self, path: Path, timeout: float) -> str:
        deadline = time.monotonic() + max(0.0, timeout)
        poll = _POLL_MIN
        while True:
            token = secrets.token_hex(16)
            try:
                if _publish(path, token):
                    return token
            except OSError as exc:
                raise StoreWriteError(str(path), exc.strerror or str(exc), exc.errno) from None
            held = read_marker(path)
            if held is None:
                continue  # released between our attempt and the read: try again at once
            if held.holder_is_dead():
                _remove_if_token(path, held.token)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(str(path), timeout, held.host, held.pid, held.age)
            time.sleep(min(poll, remaining))
            poll = min(poll * 1.5, _POLL_MAX)

    def held_by_other(self, root: Path, fp: str) -> bool:
        held = read_marker(root / f"{fp}{SOFT_LOCK_SUFFIX}")
        return held is not None and not held.holder_is_dead()


class NoLock(LockStrategy):
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


def break_soft_locks(
    root: str | os.PathLike[str], older_than: float, *, dry_run: bool = False
) -> tuple[list[LockMarker], list[LockMarker]]:
    """Remove soft-lock markers older than ``older_than`` seconds (``knncache gc --break-locks``).

    A marker whose holder runs on this host and is provably dead is removed whatever its
    age; one whose holder runs on this host and is alive is kept whatever its age (it is
    working). Markers of other hosts (and unreadable ones) are removed once older than the
    threshold: this host cannot probe them, and a host that died mid-write would otherwise
    block that entry until someone looks. Leftover private files of interrupted lock
    attempts (``.<fingerprint>.softlock.*``) older than the threshold go too.

    Returns
    -------
    (removed, kept)
        Lists of :class:`LockMarker`.
    """
    base = Path(root)
    removed: list[LockMarker] = []
    kept: list[LockMarker] = []
    try:
        children = sorted(base.iterdir())
    except OSError:
        return removed, kept
    now = time.time()
    for child in children:
        name = child.name
        if name.startswith(".") and SOFT_LOCK_SUFFIX + "." in name:
            # A private temp or break file of a lock attempt that was interrupted.
            with contextlib.suppress(OSError):
                if child.is_file() and now - child.lstat().st_mtime > older_than and not dry_run:
                    child.unlink()
            continue
        fp = name[: -len(SOFT_LOCK_SUFFIX)]
        if not name.endswith(SOFT_LOCK_SUFFIX) or not is_fingerprint(fp):
            continue
        marker = read_marker(child)
        if marker is None:
            continue
        dead = marker.holder_is_dead()
        if not dead and (marker.on_this_host() or marker.age <= older_than):
            kept.append(marker)
            continue
        if dry_run or _remove_if_token(child, marker.token):
            removed.append(marker)
    return removed, kept
