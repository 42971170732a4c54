"""The soft-lock backend (``lock="soft"``): a marker file per entry, for NFS and Lustre.

Policy (marker content, stale breaking, its one remaining race): :mod:`knncache._locks`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knncache._errors import LockTimeoutError, StoreWriteError
from knncache._fingerprint import is_fingerprint, validate_fingerprint

__all__ = [
    "SOFT_LOCK_SUFFIX",
    "LockMarker",
    "SoftLock",
    "boot_id",
    "break_soft_locks",
    "marker_age",
    "pid_alive",
    "read_marker",
    "remove_if_token",
    "start_time",
]

SOFT_LOCK_SUFFIX = ".softlock"
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
    """This boot's id (Linux ``/proc/sys/kernel/random/boot_id``), or ``None``."""
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
    """Whether a process ``pid`` exists on this host (one owned by another user counts)."""
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
        Seconds the marker has existed when it was read, by this host's clock (see
        :func:`marker_age`; the policy is in :mod:`knncache._locks`).
    token : str or None
        The marker's random identity.
    skew : float
        Seconds by which ``acquired`` lies ahead of this host's clock (0 when it does not):
        the holder's clock is skewed, and its record was not used for the age.
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
    skew: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (for ``knncache gc --json``)."""
        return {
            "path": self.path,
            "fingerprint": self.fingerprint,
            "host": self.host,
            "pid": self.pid,
            "acquired": self.acquired,
            "age": self.age,
            "skew": self.skew,
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
        and not isinstance(data.get("pid"), bool)
        and _finite_time(data.get("acquired"))
        and isinstance(data.get("token"), str)
    )
    return data if ok else None


def _finite_time(t: object) -> bool:
    """A number, not a bool, that is a finite float (``NaN`` and ``10**400`` are not)."""
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return False
    try:
        return math.isfinite(float(t))
    except OverflowError:
        return False


def marker_age(now: float, acquired: float | None, st: os.stat_result | None) -> float:
    """A marker's age by this host's clock: ``now`` minus the oldest of its times that is
    not in the future (policy: :mod:`knncache._locks`).

    The witnesses are the holder's recorded ``acquired`` and the file's mtime and ctime
    (the file system's clock; no content and no ``utime`` can set the ctime). A time ahead
    of ``now`` is skew, not age, and is left out; when every witness is ahead, the age is
    0 until this host's clock passes the earliest of them.
    """
    times = [] if acquired is None else [acquired]
    if st is not None:
        times += [st.st_mtime, st.st_ctime]
    past = [t for t in times if t <= now]
    return now - min(past) if past else 0.0


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
    st: os.stat_result | None = None
    try:
        if fd >= 0:
            st = os.fstat(fd)
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
        mtime = st.st_mtime if st is not None else now
        return LockMarker(str(p), fp, None, None, mtime, marker_age(now, None, st), None)
    acquired = float(data["acquired"])
    return LockMarker(
        path=str(p),
        fingerprint=fp,
        host=data["host"],
        pid=data["pid"],
        acquired=acquired,
        age=marker_age(now, acquired, st),
        token=data["token"],
        skew=max(0.0, acquired - now),
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


def remove_if_token(path: Path, token: str | None) -> bool:
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


class SoftLock:
    """Marker-file lock for NFS/Lustre; stale policy in :mod:`knncache._locks`."""

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
                remove_if_token(path, token)

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
                remove_if_token(path, held.token)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(str(path), timeout, held.host, held.pid, held.age)
            time.sleep(min(poll, remaining))
            poll = min(poll * 1.5, _POLL_MAX)

    def held_by_other(self, root: Path, fp: str) -> bool:
        held = read_marker(root / f"{fp}{SOFT_LOCK_SUFFIX}")
        return held is not None and not held.holder_is_dead()


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
        if dry_run or remove_if_token(child, marker.token):
            removed.append(marker)
    return removed, kept
