"""Opening, reading and deleting things inside a store without trusting them.

Anything under a store root may have been put there by someone else (a shared ``/tmp``, a
lab's NFS share). Policy, in one place:

* every name inside the root is resolved relative to an open directory descriptor and opened
  with ``O_NOFOLLOW``: a symbolic link is reported, never followed;
* the kind is checked with ``lstat`` *before* opening (so a FIFO or a device is never
  opened) and again with ``fstat`` after (so a swap in between is caught);
* reads are non-blocking opens with a size cap;
* deletion unlinks the object itself (a link, never its target), descends only into real
  directories on the root's device, and never leaves the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from knncache._errors import ForeignObjectError

__all__ = [
    "DIR_FLAGS",
    "kind_of",
    "open_dir",
    "open_dir_at",
    "open_regular",
    "read_capped",
    "remove_at",
    "scan",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC


def kind_of(mode: int) -> str:
    """A person's name for the file type in ``mode`` (``"symbolic link"``, ``"FIFO"``...)."""
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "file of unknown type"


def _where(dir_path: str, name: str) -> str:
    return os.path.join(dir_path, name) if dir_path else name


def open_dir(path: str | os.PathLike[str]) -> int:
    """Descriptor of the directory ``path`` (the caller's own path: links in it are followed)."""
    return os.open(path, DIR_FLAGS)


def open_dir_at(dir_fd: int, name: str, *, where: str = "") -> int:
    """Descriptor of the real directory ``name`` inside ``dir_fd`` (never through a link).

    Raises
    ------
    FileNotFoundError
        Nothing of that name.
    ForeignObjectError
        A link, a file or anything else than a directory.
    """
    try:
        return os.open(name, DIR_FLAGS | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    raise ForeignObjectError(_where(where, name), kind_of(st.st_mode), "directory")


def open_regular(dir_fd: int, name: str, *, where: str = "") -> tuple[int, os.stat_result]:
    """Open the regular file ``name`` inside ``dir_fd`` for reading; ``(fd, fstat)``.

    ``lstat`` first, so that a FIFO, a device or a socket is never opened; then a
    non-blocking ``O_NOFOLLOW`` open, and ``fstat`` must show the same regular file.

    Raises
    ------
    FileNotFoundError
        Nothing of that name.
    ForeignObjectError
        Anything but a regular file (or a swap between the checks).
    """
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise ForeignObjectError(_where(where, name), kind_of(st.st_mode), "regular file")
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ForeignObjectError(_where(where, name), "symbolic link", "regular file") from None
        raise
    fst = os.fstat(fd)
    if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ForeignObjectError(
            _where(where, name), f"{kind_of(fst.st_mode)} (swapped while opened)", "regular file"
        )
    return fd, fst


def read_capped(dir_fd: int, name: str, max_bytes: int, *, where: str = "") -> bytes:
    """Whole content of the regular file ``name`` in ``dir_fd``, at most ``max_bytes``.

    Raises
    ------
    FileNotFoundError, ForeignObjectError
        As for :func:`open_regular`; ``ForeignObjectError`` also for a larger file.
    """
    fd, st = open_regular(dir_fd, name, where=where)
    try:
        if st.st_size > max_bytes:
            raise ForeignObjectError(
                _where(where, name), f"file of {st.st_size} bytes", f"file of at most {max_bytes}"
            )
        chunks = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise ForeignObjectError(
                _where(where, name), "growing file", f"file of at most {max_bytes} bytes"
            )
        return b"".join(chunks)
    finally:
        os.close(fd)


def scan(dir_fd: int) -> Iterator[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of every child of ``dir_fd`` (vanishing children are skipped)."""
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in sorted(names):
        try:
            yield name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue


def remove_at(dir_fd: int, name: str, *, device: int | None = None) -> bool:
    """Remove ``name`` inside ``dir_fd`` without following links; ``True`` if it is gone.

    A link, FIFO, device or file is unlinked (the object itself). A directory is emptied
    the same way and removed, but only when it lies on ``device`` (default: the device of
    ``dir_fd``): a mount point inside a store is left alone. Errors are swallowed; the
    return value says whether the name is gone.
    """
    if device is None:
        device = os.fstat(dir_fd).st_dev
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                return False
        return True
    if st.st_dev != device:
        return False
    try:
        sub = open_dir_at(dir_fd, name)
    except FileNotFoundError:
        return True
    except (OSError, ForeignObjectError):
        return False
    try:
        for child, _ in scan(sub):
            remove_at(sub, child, device=device)
    finally:
        os.close(sub)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
