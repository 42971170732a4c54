"""On-disk layout of one entry, its ``meta.json`` and the checks that keep corrupt data out.

Layout (names readable by a person)::

    <root>/<fingerprint>/k{K}_neighbors.npy     int64   (n, K)
    <root>/<fingerprint>/k{K}_distances.npy     float32 (n, K)
    <root>/<fingerprint>/features.npy           (n, d), the caller's dtype (when stored)
    <root>/<fingerprint>/array_{name}.npy       extra arrays (KnnStore.ensure_array)
    <root>/<fingerprint>/meta.json              written last: the commit marker
    <root>/<fingerprint>.lock                   the entry's lock file, lock="hard" (not an entry)
    <root>/<fingerprint>.softlock               the entry's lock marker, lock="soft": one JSON
                                                line (host, pid, acquired, token, ...)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from knncache._errors import CorruptEntryError, InvalidNameError
from knncache._fingerprint import FORMAT_VERSION, checksum_file
from knncache._knn import METRICS

__all__ = [
    "ARRAY_NAME_PATTERN",
    "FEATURES_FILE",
    "META_FILE",
    "array_file",
    "check_entry",
    "check_file",
    "k_files",
    "parse_meta",
    "read_meta",
    "read_npy_header",
    "validate_array_name",
]

META_FILE = "meta.json"
FEATURES_FILE = "features.npy"
ARRAY_NAME_PATTERN = r"[a-z0-9_]{1,64}"
_ARRAY_NAME_RE = re.compile(ARRAY_NAME_PATTERN)
_HEX32 = re.compile(r"[0-9a-f]{32}")
NEIGHBORS_DTYPE = np.dtype(np.int64).str
DISTANCES_DTYPE = np.dtype(np.float32).str

Meta = dict[str, Any]


def k_files(k: int) -> tuple[str, str]:
    """File names of the neighbours and distances arrays of an entry stored at ``k``."""
    return f"k{k}_neighbors.npy", f"k{k}_distances.npy"


def validate_array_name(name: object) -> str:
    """Return ``name`` if it matches ``[a-z0-9_]{1,64}``, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or _ARRAY_NAME_RE.fullmatch(name) is None:
        raise InvalidNameError("array name", name, ARRAY_NAME_PATTERN)
    return name


def array_file(name: str) -> str:
    """File name of the extra array ``name``."""
    return f"array_{validate_array_name(name)}.npy"


def read_npy_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], str, bool]:
    """``(shape, dtype.str, fortran_order)`` of a ``.npy`` file, reading only its header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    return tuple(int(s) for s in shape), dtype.str, bool(fortran)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_file_record(fp: str, name: str, rec: object, shape: list[int], dtype: str) -> None:
    if not isinstance(rec, dict):
        raise CorruptEntryError(fp, f"meta.json: record of {name} is not an object")
    if rec.get("shape") != shape:
        raise CorruptEntryError(
            fp, f"meta.json: {name} shape {rec.get('shape')!r} disagrees with expected {shape!r}"
        )
    if rec.get("dtype") != dtype:
        raise CorruptEntryError(
            fp, f"meta.json: {name} dtype {rec.get('dtype')!r} disagrees with expected {dtype!r}"
        )
    if not isinstance(rec.get("xxh3_128"), str) or not _HEX32.fullmatch(rec["xxh3_128"]):
        raise CorruptEntryError(fp, f"meta.json: {name} has no valid checksum")
    if not _is_int(rec.get("bytes")) or rec["bytes"] < 0:
        raise CorruptEntryError(fp, f"meta.json: {name} has no valid byte count")


def parse_meta(raw: bytes, fp: str) -> Meta:
    """Parse and validate the text of a ``meta.json``.

    Raises
    ------
    CorruptEntryError
        Unparsable JSON, another format version, another fingerprint, or any field whose
        type or value disagrees with the layout (shapes inconsistent with ``n``/``k``/``d``).
    """
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptEntryError(fp, f"meta.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CorruptEntryError(fp, "meta.json is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CorruptEntryError(
            fp,
            f"meta.json format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}",
        )
    if meta.get("fingerprint") != fp:
        raise CorruptEntryError(fp, f"meta.json names fingerprint {meta.get('fingerprint')!r}")
    if meta.get("metric") not in METRICS:
        raise CorruptEntryError(fp, f"meta.json metric {meta.get('metric')!r} is unknown")
    n, d, k = meta.get("n"), meta.get("d"), meta.get("k")
    if not (isinstance(n, int) and isinstance(d, int) and isinstance(k, int)) or not (
        _is_int(n) and _is_int(d) and _is_int(k) and n >= 2 and d >= 1 and 1 <= k < n
    ):
        raise CorruptEntryError(fp, f"meta.json has invalid n={n!r}, d={d!r}, k={k!r}")
    for key in ("created", "last_used"):
        if not isinstance(meta.get(key), (int, float)):
            raise CorruptEntryError(fp, f"meta.json has no valid {key!r} time")
    files = meta.get("files")
    nb_name, ds_name = k_files(k)
    if not isinstance(files, dict) or not {nb_name, ds_name} <= set(files):
        raise CorruptEntryError(fp, f"meta.json does not list {nb_name} and {ds_name}")
    if set(files) - {nb_name, ds_name, FEATURES_FILE}:
        raise CorruptEntryError(fp, f"meta.json lists unexpected files {sorted(files)!r}")
    _check_file_record(fp, nb_name, files[nb_name], [n, k], NEIGHBORS_DTYPE)
    _check_file_record(fp, ds_name, files[ds_name], [n, k], DISTANCES_DTYPE)
    if FEATURES_FILE in files:
        fdtype = meta.get("features_dtype")
        if not isinstance(fdtype, str):
            raise CorruptEntryError(fp, "meta.json has no valid features_dtype")
        _check_file_record(fp, FEATURES_FILE, files[FEATURES_FILE], [n, d], fdtype)
    arrays = meta.get("arrays", {})
    if not isinstance(arrays, dict):
        raise CorruptEntryError(fp, "meta.json 'arrays' is not an object")
    for name, rec in arrays.items():
        if not isinstance(name, str) or _ARRAY_NAME_RE.fullmatch(name) is None:
            raise CorruptEntryError(fp, f"meta.json lists an invalid array name {name!r}")
        if not isinstance(rec, dict) or not isinstance(rec.get("dtype"), str):
            raise CorruptEntryError(fp, f"meta.json: array {name!r} has no valid dtype")
        shape = rec.get("shape")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise CorruptEntryError(fp, f"meta.json: array {name!r} has no valid shape")
        _check_file_record(fp, array_file(name), rec, shape, rec["dtype"])
    meta["arrays"] = arrays
    return meta


def read_meta(entry: Path, fp: str) -> Meta:
    """Read and validate ``<entry>/meta.json``.

    Raises
    ------
    FileNotFoundError
        If there is no ``meta.json`` (the entry does not exist or was never committed).
    CorruptEntryError
        See :func:`parse_meta`.
    """
    with open(entry / META_FILE, "rb") as f:
        raw = f.read()
    return parse_meta(raw, fp)


def check_file(entry: Path, fp: str, name: str, rec: dict[str, Any], *, checksum: bool) -> None:
    """Check one file against its meta record: present, size, ``.npy`` header, checksum.

    Raises
    ------
    CorruptEntryError
        With the file name and what disagrees.
    """
    path = entry / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptEntryError(fp, f"{name} is missing") from None
    if size != rec["bytes"]:
        raise CorruptEntryError(
            fp, f"{name} has {size} bytes, meta.json says {rec['bytes']} (truncated?)"
        )
    try:
        shape, dtype, _ = read_npy_header(path)
    except (OSError, ValueError) as exc:
        raise CorruptEntryError(fp, f"{name} has no valid .npy header ({exc})") from None
    if list(shape) != rec["shape"] or dtype != rec["dtype"]:
        raise CorruptEntryError(
            fp,
            f"{name} holds shape {list(shape)} dtype {dtype}, meta.json says "
            f"{rec['shape']} {rec['dtype']}",
        )
    if checksum and checksum_file(path) != rec["xxh3_128"]:
        raise CorruptEntryError(fp, f"{name}: checksum mismatch")


def check_entry(entry: Path, fp: str, *, arrays: bool, checksum: bool = True) -> Meta:
    """Read the meta and check every file it lists (the extra arrays when ``arrays``).

    Raises
    ------
    FileNotFoundError
        No ``meta.json``.
    CorruptEntryError
        The first problem found.
    """
    meta = read_meta(entry, fp)
    for name, rec in meta["files"].items():
        check_file(entry, fp, name, rec, checksum=checksum)
    if arrays:
        for name, rec in meta["arrays"].items():
            check_file(entry, fp, array_file(name), rec, checksum=checksum)
    return meta
