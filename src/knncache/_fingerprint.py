"""Content keys of feature matrices and checksums of files."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import xxhash

from knncache._errors import InvalidNameError
from knncache._graph import validate_metric

__all__ = [
    "FINGERPRINT_PATTERN",
    "FORMAT_VERSION",
    "checksum_fd",
    "fingerprint",
    "validate_fingerprint",
]

#: Version of the on-disk entry format and of the fingerprint header. Bumping it makes every
#: existing key miss (old entries are then neither served nor mistaken for new ones).
#: Version 2: one commit marker ``array_{name}.json`` per extra array (``meta.json`` does
#: not list them), so that lock-free writers of different arrays never lose each other's.
FORMAT_VERSION = 2

FINGERPRINT_PATTERN = r"[0-9a-f]{32}"
_FINGERPRINT_RE = re.compile(FINGERPRINT_PATTERN)
_CHUNK_BYTES = 8 * 1024 * 1024


def validate_fingerprint(value: object) -> str:
    """Return ``value`` if it is exactly 32 lowercase hex characters, else raise.

    Raises
    ------
    InvalidNameError
        For anything else (this is what keeps crafted refs out of other directories).
    """
    if not isinstance(value, str) or _FINGERPRINT_RE.fullmatch(value) is None:
        raise InvalidNameError("fingerprint", value, FINGERPRINT_PATTERN)
    return value


def is_fingerprint(value: str) -> bool:
    """Whether ``value`` is a well-formed fingerprint (used to skip foreign directory names)."""
    return _FINGERPRINT_RE.fullmatch(value) is not None


def _header(arr: np.ndarray[Any, Any], metric: str) -> bytes:
    header = {
        "format_version": FORMAT_VERSION,
        "dtype": arr.dtype.str,
        "shape": [int(s) for s in arr.shape],
        "metric": metric,
    }
    return b"knncache-fingerprint\0" + json.dumps(header, sort_keys=True).encode() + b"\0"


def fingerprint(X: Any, metric: str = "euclidean") -> str:
    """Content key of a feature matrix for a given metric.

    Exactly what is hashed, with xxHash ``XXH3-128`` (seed 0), in this order:

    1. the bytes ``b"knncache-fingerprint\\0"``;
    2. the UTF-8 JSON (sorted keys) of ``{"dtype": X.dtype.str, "format_version":
       FORMAT_VERSION, "metric": metric, "shape": list(X.shape)}``, then ``b"\\0"``;
    3. the array's elements in C (row-major) order, as raw bytes of ``X.dtype``.

    Memory layout does not matter (a Fortran-ordered or strided view, a memmap and an
    in-memory copy of the same values give the same key); dtype and byte order do
    (``float32`` and ``float64`` copies of the same values give different keys). The data is
    hashed in chunks of about 8 MB, so a memmap is streamed, never copied whole.

    Parameters
    ----------
    X : array_like
        The feature matrix (any shape is hashed as is; validation is the caller's job).
    metric : {"euclidean", "cosine"}
        Part of the key: the same features under another metric are another entry.

    Returns
    -------
    str
        32 lowercase hex characters.

    Raises
    ------
    UnknownMetricError
        If ``metric`` is unknown.
    """
    validate_metric(metric)
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    h = xxhash.xxh3_128()
    h.update(_header(arr, metric))
    if arr.size:
        if arr.ndim == 0:
            h.update(np.ascontiguousarray(arr).tobytes())
        elif arr.flags.c_contiguous:
            flat = arr.reshape(-1).view(np.uint8)
            for start in range(0, flat.size, _CHUNK_BYTES):
                h.update(flat[start : start + _CHUNK_BYTES].data)
        else:
            row_bytes = max(1, arr[0].nbytes)
            rows = max(1, _CHUNK_BYTES // row_bytes)
            for start in range(0, arr.shape[0], rows):
                h.update(np.ascontiguousarray(arr[start : start + rows]).tobytes())
    return h.hexdigest()


def checksum_fd(fd: int) -> str:
    """``XXH3-128`` hex digest of the bytes of the open file ``fd`` from its start, in chunks."""
    h = xxhash.xxh3_128()
    offset = 0
    while True:
        chunk = os.pread(fd, _CHUNK_BYTES, offset)
        if not chunk:
            break
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()
