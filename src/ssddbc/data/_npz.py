"""Reading a ``.npz`` someone else may have written, without trusting its headers.

Each ``.npy`` member's header (shape and dtype) is read from the zip member before any data,
and must describe exactly the bytes the member holds: ``shape × itemsize`` plus the header
equals the member's uncompressed size (``ZipInfo.file_size``). That size is itself bounded by
what the compressed bytes can hold (equal for a stored member, at most :data:`MAX_DEFLATE_RATIO`
times for a deflated one, and never more than the file), so no header makes the reader
allocate more than :data:`MAX_DEFLATE_RATIO` times the file's size on disk. Object arrays are
refused (nothing is unpickled). Members whose names do not end in ``.npy`` are skipped.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO, NoReturn

import numpy as np
from numpy.lib import format as npy_format

from ssddbc._errors import FeatureCacheError

__all__ = ["MAX_DEFLATE_RATIO", "read_npz"]

#: The largest expansion deflate can achieve (about 1032:1, rounded up).
MAX_DEFLATE_RATIO = 1040


def _fail(path: Path, key: str, message: str) -> NoReturn:
    raise FeatureCacheError(str(path), f"key {key!r}: {message}")


def _check_sizes(path: Path, info: zipfile.ZipInfo, key: str, file_bytes: int) -> None:
    if info.compress_type == zipfile.ZIP_STORED:
        bound = info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        bound = info.compress_size * MAX_DEFLATE_RATIO
    else:
        _fail(
            path,
            key,
            f"compression method {info.compress_type!r} is not one numpy writes "
            "(stored or deflated)",
        )
    if info.compress_size > file_bytes or info.file_size > bound:
        _fail(
            path,
            key,
            f"the zip directory claims {info.file_size} bytes from {info.compress_size} "
            f"compressed bytes in a {file_bytes}-byte file",
        )


def _read_header(handle: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):
        # 3.0 differs from 2.0 only in the header's text encoding (utf-8 field names), which
        # does not change the shape or the item size read here.
        shape, _, dtype = npy_format.read_array_header_2_0(handle)
    else:
        raise ValueError(f".npy format version {version!r} is not 1.0, 2.0 or 3.0")
    return shape, dtype


def _check_member(
    path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, file_bytes: int
) -> None:
    _check_sizes(path, info, key, file_bytes)
    with zf.open(info) as handle:
        try:
            shape, dtype = _read_header(handle)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
            _fail(path, key, f"unreadable .npy header: {exc}")
        header_bytes = handle.tell()
    if dtype.hasobject:
        _fail(path, key, "holds object arrays (pickled data), which a .npz cache never loads")
    if any(dim < 0 for dim in shape):
        _fail(path, key, f"header claims a negative shape {shape}")
    claimed = math.prod(shape) * dtype.itemsize
    held = info.file_size - header_bytes
    if claimed != held:
        _fail(
            path,
            key,
            f"header claims shape {shape} of {dtype} ({claimed} bytes) but the member holds "
            f"{held} bytes of data",
        )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the ``.npz`` at ``path``, each checked before it is read.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    dict of str to numpy.ndarray
        Keyed by member name without ``.npy``.

    Raises
    ------
    FeatureCacheError
        Naming the file (and the key where one is at fault) when it is not a readable zip,
        a member's header is unreadable or describes other bytes than the member holds, the
        directory claims more bytes than the compressed data can hold, or a member holds
        object arrays.
    """
    try:
        with open(path, "rb") as handle:
            file_bytes = os.fstat(handle.fileno()).st_size
            with zipfile.ZipFile(handle) as zf:
                members = {
                    info.filename[: -len(".npy")]: info
                    for info in zf.infolist()
                    if info.filename.endswith(".npy")
                }
                for key, info in members.items():
                    _check_member(path, zf, info, key, file_bytes)
                out: dict[str, np.ndarray] = {}
                for key, info in members.items():
                    with zf.open(info) as member:
                        try:
                            out[key] = npy_format.read_array(member, allow_pickle=False)
                        except (ValueError, EOFError, OSError, zipfile.BadZipFile) as exc:
                            _fail(path, key, f"unreadable array: {exc}")
                return out
    except FeatureCacheError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise FeatureCacheError(str(path), f"unreadable .npz file: {exc}") from None
