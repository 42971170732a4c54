"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` atomically.

    The bytes go to a temporary file in the same directory (so the final rename stays on one
    file system), are flushed and fsynced, then ``os.replace`` moves the file into place and
    the directory is fsynced so the rename itself survives a crash. On any exception the
    temporary file is removed and the previous ``path``, if any, is untouched.

    Parameters
    ----------
    path : pathlib.Path
        Destination; its directory must exist.
    write : callable
        Receives the open binary handle and writes the whole content.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Best effort: some file systems (and Windows) cannot open a directory for fsync.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
