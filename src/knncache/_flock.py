"""The flock backend: the hard lock (``lock="hard"``) and pins, on files in the store root.

Policy (what it guarantees, how its files are removed, NFS and Lustre): :mod:`knncache._locks`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knncache._errors import ForeignObjectError, KnnCacheWarning, LockTimeoutError, StoreWriteError
from knncache._fingerprint import validate_fingerprint
from knncache._safefs import DIR_FLAGS, kind_of

__all__ = [
    "LOCK_SUFFIX",
    "PIN_SUFFIX",
    "HardLock",
    "exclusive_pin",
    "flock_acquire",
    "flock_release",
    "held_exclusively_elsewhere",
    "names_fd",
    "pin_entry",
    "pinned_here",
]

LOCK_SUFFIX = ".lock"
PIN_SUFFIX = ".pin"
_POLL_MIN, _POLL_MAX = 0.02, 0.5


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
    removed or replaced while we waited (see :mod:`knncache._locks`).

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


class HardLock:
    """``flock(LOCK_EX)`` on ``<root>/<fingerprint>.lock`` (its removal: :mod:`knncache._locks`)."""

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
