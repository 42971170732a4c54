"""The one atomic-write helper, used for every file ``knncache`` (and ``ssddbc``) writes.

Policy (the one home of it):

* the bytes go to a new temporary file ``.<name>.<random>.tmp`` in the destination's own
  directory, created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (never an existing file, never
  through a link) and mode ``0o666``, so the kernel applies the umask and any default ACL
  exactly as for ``open(path, "w")``: ``0o644`` under umask 022, ``0o600`` under 077;
* the file is flushed and fsynced, renamed over the destination with ``os.replace`` (which
  replaces a link or file *at* that name, never what a link points to), and the directory is
  fsynced so the rename survives a crash;
* on any exception, ``KeyboardInterrupt`` included, the temporary file is unlinked and the
  exception propagates; the previous file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import xxhash

__all__ = ["HashingWriter", "atomic_write", "atomic_write_at", "fsync_dir", "temp_pattern"]

_TMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


class HashingWriter:
    """Binary file-like wrapper that hashes (XXH3-128) and counts the bytes written through it.

    It is write-only and sequential (``write``, ``flush``, ``tell``; ``read`` and ``seek``
    raise ``io.UnsupportedOperation``), which ``np.save``, ``np.savez`` (``zipfile``
    streams without seeking) and ``savefig`` accept.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._hash = xxhash.xxh3_128()
        self.nbytes = 0

    def write(self, data: Any) -> int:
        """Write ``data`` (any bytes-like object) and feed it to the hash."""
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self._raw.write(view)
        self.nbytes += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        """Bytes written so far (the position: writes are sequential)."""
        return self.nbytes

    def seekable(self) -> bool:
        """Always ``False``."""
        return False

    def read(self, *args: object) -> bytes:
        """Not readable (present so that ``np.savez`` treats this as a file object)."""
        raise io.UnsupportedOperation("read")

    def flush(self) -> None:
        """Flush the underlying file (``zipfile`` calls it)."""
        self._raw.flush()

    def hexdigest(self) -> str:
        """XXH3-128 hex digest of everything written so far."""
        return self._hash.hexdigest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that a rename inside it is durable (best effort)."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def temp_pattern(name_pattern: str) -> str:
    """Regular expression of the temporary names of files whose names match ``name_pattern``.

    ``name_pattern`` is itself a regular expression (of a plain file name); housekeeping uses
    the result to recognise the leftovers of a writer killed before its rename.
    """
    return rf"\.(?:{name_pattern})\.[0-9a-f]{{16}}\.tmp"


def atomic_write_at(dir_fd: int, name: str, write: Callable[[BinaryIO], object]) -> tuple[str, int]:
    """:func:`atomic_write` of ``name`` inside the open directory ``dir_fd``.

    The store uses this with a descriptor of an entry directory opened without following
    links, so that nothing is ever written outside it whatever is planted meanwhile.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a plain file name, got {name!r}")
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"  # matched by temp_pattern
    fd = os.open(tmp, _TMP_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = HashingWriter(raw)
            # A write-only binary file object (write/tell/flush): typed as BinaryIO for callers.
            write(cast(BinaryIO, writer))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
    return writer.hexdigest(), writer.nbytes


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], object]
) -> tuple[str, int]:
    """Write a file atomically: readers see the old file or the complete new one, never a part.

    ``write`` is called once with a binary file-like object that has a ``write`` method
    (``np.save``, ``np.savez`` and encoded text all work). The bytes go to a temporary file
    in the same directory, created with mode ``0o666 & ~umask`` (the permissions
    ``open(path, "w")`` would give), flushed and fsynced, then renamed over ``path``; the
    directory is fsynced afterwards. On any exception, ``KeyboardInterrupt`` included, the
    temporary file is removed and the exception propagates; an existing ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        Destination; its directory must exist. A link *at* ``path`` is replaced, never
        written through.
    write : callable
        ``write(fileobj) -> None``, writes the whole content.

    Returns
    -------
    (str, int)
        XXH3-128 hex digest of the bytes written, and their number.

    Raises
    ------
    OSError
        Whatever the filesystem raised (the directory is missing or read-only, the disk is
        full, ``path`` is a directory...).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> digest, nbytes = atomic_write(os.path.join(d, "a.npy"), lambda f: np.save(f, np.arange(3)))
    >>> nbytes
    152
    """
    dest = os.fspath(path)
    parent, name = os.path.split(dest)
    dir_fd = os.open(parent or ".", _DIR_FLAGS)
    try:
        return atomic_write_at(dir_fd, name, write)
    finally:
        os.close(dir_fd)
