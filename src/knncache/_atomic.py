"""The one atomic-write helper used for every file ``knncache`` writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

__all__ = ["HashingWriter", "atomic_write", "fsync_dir"]


class HashingWriter:
    """File-like wrapper that hashes (XXH3-128) and counts the bytes written through it."""

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

    def hexdigest(self) -> str:
        """XXH3-128 hex digest of everything written so far."""
        return self._hash.hexdigest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that a rename inside it is durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[HashingWriter], None]
) -> tuple[str, int]:
    """Write a file atomically: readers see the old file or the complete new one, never a part.

    ``write`` receives a file-like object with a ``write`` method (``np.save`` and
    ``json``-encoded bytes both work). The bytes go to a temporary file in the same directory
    (``.<name>.<random>.tmp``), which is flushed, fsynced and renamed over ``path`` with
    ``os.replace``; the directory is fsynced afterwards. On any exception, ``KeyboardInterrupt``
    included, the temporary file is unlinked and the exception propagates.

    Parameters
    ----------
    path : path-like
        Destination.
    write : callable
        Called once with the writer.

    Returns
    -------
    (str, int)
        XXH3-128 hex digest of the bytes written, and their number.

    Raises
    ------
    OSError
        Whatever the filesystem raised (the caller translates it).
    """
    dest = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            # mkstemp creates 0600; entries are meant to be readable like ordinary files (an
            # ephemeral store's root is 0700 anyway).
            os.fchmod(raw.fileno(), 0o644)
            writer = HashingWriter(raw)
            write(writer)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)
    return writer.hexdigest(), writer.nbytes
