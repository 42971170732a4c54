"""On-disk layout of one entry, its ``meta.json`` and the checks that keep corrupt data out.

Layout (names readable by a person)::

    <root>/<fingerprint>/k{K}_neighbors.npy     int64   (n, K)  (exact graph)
    <root>/<fingerprint>/k{K}_distances.npy     float32 (n, K)
    <root>/<fingerprint>/k{K}-{tag}_neighbors.npy   approximate graph: ``tag`` is its
    <root>/<fingerprint>/k{K}-{tag}_distances.npy   build's (16 random hex, meta "build")
    <root>/<fingerprint>/features.npy           (n, d), the caller's dtype (when stored)
    <root>/<fingerprint>/array_{name}.npy       extra arrays (KnnStore.ensure_array)
    <root>/<fingerprint>/array_{name}.json      the array's own commit marker (written after it)
    <root>/<fingerprint>/meta.json              written last: the entry's commit marker
    <root>/<fingerprint>.lock                   the entry's lock file, lock="hard" (not an entry)
    <root>/<fingerprint>.softlock               the entry's lock marker, lock="soft": one JSON
                                                line (host, pid, acquired, token, ...)
    <root>/<fingerprint>.pin                    the entry's pin file (shared flock = pinned)
    <root>/.knncache-ship-{hex}.npy             features shipped to executor workers during
                                                a search (shared flock while in use)

An entry built by an approximate engine is keyed by the features' fingerprint, the method
and its parameters, and its ``meta.json`` also records ``method``, ``params`` (the keyed
ones, :data:`ENGINE_KEYED_PARAMS`) and ``recall`` (``k``, ``value``, ``sample``, ``seed``),
and, since graph files are tagged, ``build`` (``threads``, ``deterministic``, ``faiss``,
``tag``: how it was built, and the tag its graph files are named with; an approximate entry
written before has none and untagged names); an entry without them is exact.

Every read goes through :mod:`knncache._safefs` relative to the entry's directory
descriptor: no link is followed, no FIFO or device is opened, ``meta.json`` and the array
markers are read with a size cap. :func:`parse_meta` is the one home of what a valid
``meta.json`` is: strict JSON (``NaN`` and ``Infinity`` are no numbers), every field the
reader uses type- and range-checked (counts are ints, not bools, within int64; times are
finite POSIX times between 1970 and 9999, :func:`is_valid_time`; dtypes are numeric numpy
dtypes); keys it does not know are ignored. A ``.npy`` file's size must be exactly its
header's length plus ``shape x itemsize`` (:func:`check_file`, before anything maps it).
Checks with ``checksum=True`` also check the graph's values: every neighbour index in
``[0, n)``, every distance finite and non-negative.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from knncache._errors import CorruptEntryError, ForeignObjectError, InvalidNameError
from knncache._fingerprint import FORMAT_VERSION, checksum_fd
from knncache._graph import METRICS
from knncache._safefs import open_regular, read_capped, scan

__all__ = [
    "ARRAY_NAME_PATTERN",
    "ENGINE_KEYED_PARAMS",
    "ENGINE_META_KEYS",
    "FEATURES_FILE",
    "MAX_MARKER_BYTES",
    "MAX_META_BYTES",
    "META_FILE",
    "StaleEntryError",
    "array_file",
    "array_marker",
    "check_entry",
    "check_file",
    "graph_tag",
    "is_valid_time",
    "k_files",
    "npy_size",
    "parse_meta",
    "read_arrays",
    "read_meta",
    "read_npy_header_fd",
    "validate_array_name",
]

META_FILE = "meta.json"
FEATURES_FILE = "features.npy"
ARRAY_NAME_PATTERN = r"[a-z0-9_]{1,64}"
_ARRAY_NAME_RE = re.compile(ARRAY_NAME_PATTERN)
_HEX32 = re.compile(r"[0-9a-f]{32}")
_TAG_RE = re.compile(r"[0-9a-f]{16}")
_MARKER_RE = re.compile(r"array_([a-z0-9_]{1,64})\.json")
#: Size caps: a meta.json is a few hundred bytes, an array marker about two hundred.
MAX_META_BYTES = 1 << 20
MAX_MARKER_BYTES = 1 << 16
_GRAPH_SUFFIXES = ("_neighbors.npy", "_distances.npy")
NEIGHBORS_DTYPE = np.dtype(np.int64).str
DISTANCES_DTYPE = np.dtype(np.float32).str
#: Counts, shapes and byte sizes fit in int64 (numpy's shapes and offsets do).
_MAX_COUNT = 2**63 - 1
#: The last second of year 9999: the latest time a listing can print.
MAX_TIME = 253402300799.0

Meta = dict[str, Any]

#: Search methods and, for each, the parameters that change its graph: part of an entry's
#: key and recorded in its meta (positive integers). The exact method records nothing.
ENGINE_KEYED_PARAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"exact": (), "hnsw": ("M", "efConstruction", "efSearch"), "ivf": ("nlist", "nprobe")}
)
#: The keys an approximate engine adds to an entry's ``meta.json``: the first three all or
#: none, ``build`` optional (entries written before it stay valid).
ENGINE_META_KEYS: tuple[str, ...] = ("method", "params", "recall", "build")
_REQUIRED_ENGINE_KEYS = ENGINE_META_KEYS[:3]
_RECALL_KEYS = frozenset({"k", "value", "sample", "seed"})
_BUILD_KEYS = frozenset({"threads", "deterministic", "faiss", "tag"})
_MAX_THREADS = 4096


def k_files(k: int, tag: str | None = None) -> tuple[str, str]:
    """File names of the neighbours and distances arrays of an entry stored at ``k``:
    ``k{k}_*.npy``, or with the build's ``tag`` (approximate graphs) ``k{k}-{tag}_*.npy``."""
    stem = f"k{k}" if tag is None else f"k{k}-{tag}"
    return f"{stem}_neighbors.npy", f"{stem}_distances.npy"


def graph_tag(meta: Mapping[str, Any]) -> str | None:
    """The tag the graph files of a (validated) ``meta`` are named with, or None."""
    build = meta.get("build")
    return str(build["tag"]) if isinstance(build, Mapping) else None


def validate_array_name(name: object) -> str:
    """Return ``name`` if it matches ``[a-z0-9_]{1,64}``, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or _ARRAY_NAME_RE.fullmatch(name) is None:
        raise InvalidNameError("array name", name, ARRAY_NAME_PATTERN)
    return name


def array_file(name: str) -> str:
    """File name of the extra array ``name``."""
    return f"array_{validate_array_name(name)}.npy"


def array_marker(name: str) -> str:
    """File name of the commit marker of the extra array ``name``."""
    return f"array_{validate_array_name(name)}.json"


class StaleEntryError(CorruptEntryError):
    """An entry written by an older format version: not corrupt, simply never served.

    Its fingerprint (which hashes the format version) is one no current caller asks for, so
    it is a miss; housekeeping (``clear``, ``gc``/``evict``) removes it like any entry.
    """


def read_npy_header_fd(fd: int) -> tuple[tuple[int, ...], str, bool, int]:
    """``(shape, dtype.str, fortran_order, data_offset)`` of the ``.npy`` file open as ``fd``.

    Reads only the header (from offset 0, whatever the descriptor's position).
    """
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError("object arrays are never read")
    return tuple(int(s) for s in shape), dtype.str, bool(fortran), offset


def npy_size(shape: tuple[int, ...], dtype: str, offset: int) -> int:
    """The exact size in bytes of a ``.npy`` file: header (``offset``) plus its data."""
    count = 1
    for s in shape:
        count *= s
    return offset + count * np.dtype(dtype).itemsize


def is_valid_time(t: object) -> bool:
    """Whether ``t`` is a usable POSIX time: a real number (not a bool), finite, in
    ``[0, MAX_TIME]`` (1970 to the end of year 9999)."""
    # Compared, never converted: NaN compares false, and an int of 400 digits must not
    # raise OverflowError in math.isfinite.
    return isinstance(t, (int, float)) and not isinstance(t, bool) and 0.0 <= t <= MAX_TIME


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and -_MAX_COUNT <= x <= _MAX_COUNT


def _is_dtype(x: object, kinds: str) -> bool:
    """Whether ``x`` is a dtype string numpy parses to a plain dtype of one of ``kinds``."""
    if not isinstance(x, str):
        return False
    try:
        dt = np.dtype(x)
    except (TypeError, ValueError):
        return False
    return not dt.hasobject and dt.fields is None and dt.kind in kinds


class _JsonConstant:
    """``NaN``, ``Infinity`` or ``-Infinity`` read from a file: no number, so every field
    check refuses it, and its repr names it in the message."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _loads(raw: bytes) -> Any:
    """Strict JSON: ``NaN``, ``Infinity`` and ``-Infinity`` are read as no number."""
    return json.loads(raw.decode("utf-8"), parse_constant=_JsonConstant)


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
    if not all(_is_int(s) and s >= 0 for s in shape):
        raise CorruptEntryError(fp, f"meta.json: {name} has no valid shape")


def parse_meta(raw: bytes, fp: str) -> Meta:
    """Parse and validate the text of a ``meta.json``.

    Raises
    ------
    CorruptEntryError
        Unparsable JSON, another format version, another fingerprint, or any field whose
        type or value disagrees with the layout (shapes inconsistent with ``n``/``k``/``d``).
    """
    try:
        meta = _loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptEntryError(fp, f"meta.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CorruptEntryError(fp, "meta.json is not a JSON object")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < FORMAT_VERSION:
        raise StaleEntryError(fp, f"written by format version {version} (now {FORMAT_VERSION})")
    if version != FORMAT_VERSION:
        raise CorruptEntryError(
            fp,
            f"meta.json format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}",
        )
    if meta.get("fingerprint") != fp:
        raise CorruptEntryError(fp, f"meta.json names fingerprint {meta.get('fingerprint')!r}")
    if not isinstance(meta.get("metric"), str) or meta["metric"] not in METRICS:
        raise CorruptEntryError(fp, f"meta.json metric {meta.get('metric')!r} is unknown")
    if "library" in meta and not isinstance(meta["library"], str):
        raise CorruptEntryError(fp, f"meta.json library {meta['library']!r} is not a name")
    n, d, k = meta.get("n"), meta.get("d"), meta.get("k")
    if not (isinstance(n, int) and isinstance(d, int) and isinstance(k, int)) or not (
        _is_int(n) and _is_int(d) and _is_int(k) and n >= 2 and d >= 1 and 1 <= k < n
    ):
        raise CorruptEntryError(fp, f"meta.json has invalid n={n!r}, d={d!r}, k={k!r}")
    for key in ("created", "last_used"):
        if not is_valid_time(meta.get(key)):
            raise CorruptEntryError(
                fp,
                f"meta.json {key} {meta.get(key)!r} is not a POSIX time in [0, {MAX_TIME:.0f}]",
            )
    _check_engine_fields(meta, fp, n, k)
    files = meta.get("files")
    nb_name, ds_name = k_files(k, graph_tag(meta))
    if not isinstance(files, dict) or not {nb_name, ds_name} <= set(files):
        raise CorruptEntryError(fp, f"meta.json does not list {nb_name} and {ds_name}")
    if set(files) - {nb_name, ds_name, FEATURES_FILE}:
        raise CorruptEntryError(fp, f"meta.json lists unexpected files {sorted(files)!r}")
    _check_file_record(fp, nb_name, files[nb_name], [n, k], NEIGHBORS_DTYPE)
    _check_file_record(fp, ds_name, files[ds_name], [n, k], DISTANCES_DTYPE)
    fdtype = meta.get("features_dtype")
    if ("features_dtype" in meta or FEATURES_FILE in files) and not _is_dtype(fdtype, "iuf"):
        raise CorruptEntryError(fp, f"meta.json features_dtype {fdtype!r} is not a numeric dtype")
    if FEATURES_FILE in files:
        assert isinstance(fdtype, str)
        _check_file_record(fp, FEATURES_FILE, files[FEATURES_FILE], [n, d], fdtype)
    # Extra arrays carry their own commit markers (read_arrays); meta.json never lists them.
    meta["arrays"] = {}
    return meta


def _check_engine_fields(meta: Meta, fp: str, n: int, k: int) -> None:
    """Validate an approximate engine's ``method``, ``params`` and ``recall`` (all or none)
    and its optional ``build``."""
    present = [key for key in ENGINE_META_KEYS if key in meta]
    if not present:
        return
    if not set(_REQUIRED_ENGINE_KEYS) <= set(present):
        raise CorruptEntryError(
            fp,
            f"meta.json has engine fields {present!r} but not all of {_REQUIRED_ENGINE_KEYS!r}",
        )
    method = meta["method"]
    if not isinstance(method, str) or method == "exact" or method not in ENGINE_KEYED_PARAMS:
        raise CorruptEntryError(fp, f"meta.json method {method!r} is not an approximate method")
    params = meta["params"]
    if (
        not isinstance(params, dict)
        or set(params) != set(ENGINE_KEYED_PARAMS[method])
        or not all(_is_int(v) and v >= 1 for v in params.values())
    ):
        raise CorruptEntryError(fp, f"meta.json params {params!r} are not valid {method} params")
    recall = meta["recall"]
    if not isinstance(recall, dict) or set(recall) != _RECALL_KEYS:
        raise CorruptEntryError(fp, f"meta.json recall {recall!r} is not a recall record")
    value = recall["value"]
    if (
        not (_is_int(recall["k"]) and 1 <= recall["k"] <= k)
        or not (_is_int(recall["sample"]) and 1 <= recall["sample"] <= n)
        or not _is_int(recall["seed"])
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and 0.0 <= value <= 1.0)
    ):
        raise CorruptEntryError(fp, f"meta.json recall {recall!r} has invalid values")
    if "build" in meta:
        _check_build(meta["build"], fp)


def _check_build(build: object, fp: str) -> None:
    """Validate a ``build`` record: ``threads`` in ``[1, 4096]``, ``deterministic`` the bool
    ``threads == 1``, ``faiss`` a version string, ``tag`` 16 lowercase hex."""
    if not isinstance(build, dict) or set(build) != _BUILD_KEYS:
        raise CorruptEntryError(fp, f"meta.json build {build!r} is not a build record")
    threads = build["threads"]
    if (
        not (_is_int(threads) and 1 <= threads <= _MAX_THREADS)
        or build["deterministic"] is not (threads == 1)
        or not isinstance(build["faiss"], str)
        or len(build["faiss"]) > 64
        or not isinstance(build["tag"], str)
        or _TAG_RE.fullmatch(build["tag"]) is None
    ):
        raise CorruptEntryError(fp, f"meta.json build {build!r} has invalid values")


def parse_marker(raw: bytes, fp: str, name: str) -> dict[str, Any]:
    """Parse and validate the commit marker of the extra array ``name``.

    Raises
    ------
    CorruptEntryError
        Unparsable, another format version, entry or name, or an invalid record.
    """
    fname = array_marker(name)
    try:
        rec = _loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptEntryError(fp, f"{fname} is not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise CorruptEntryError(fp, f"{fname} is not a JSON object")
    if (rec.get("format_version"), rec.get("fingerprint"), rec.get("name")) != (
        FORMAT_VERSION,
        fp,
        name,
    ):
        raise CorruptEntryError(fp, f"{fname} names another entry, array or format version")
    shape = rec.get("shape")
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise CorruptEntryError(fp, f"{fname}: array {name!r} has no valid shape")
    if not _is_dtype(rec.get("dtype"), "biuf"):
        raise CorruptEntryError(fp, f"{fname}: array {name!r} has no valid dtype")
    _check_file_record(fp, array_file(name), rec, shape, rec["dtype"])
    return rec


def _foreign(fp: str, exc: ForeignObjectError) -> CorruptEntryError:
    return CorruptEntryError(fp, f"{os.path.basename(exc.path)} is a {exc.kind} (not followed)")


def read_meta(dfd: int, fp: str) -> Meta:
    """Read and validate ``meta.json`` in the entry directory ``dfd`` (capped, no links).

    Raises
    ------
    FileNotFoundError
        If there is no ``meta.json`` (the entry does not exist or was never committed).
    CorruptEntryError
        See :func:`parse_meta`; also a ``meta.json`` that is a link, FIFO, device or
        directory, or larger than :data:`MAX_META_BYTES`. :class:`StaleEntryError` for an
        older format version.
    """
    try:
        raw = read_capped(dfd, META_FILE, MAX_META_BYTES)
    except ForeignObjectError as exc:
        raise _foreign(fp, exc) from None
    return parse_meta(raw, fp)


def read_arrays(dfd: int, fp: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The committed extra arrays of an entry: ``({name: record}, [problems])``."""
    good: dict[str, dict[str, Any]] = {}
    bad: list[str] = []
    for child, _ in scan(dfd):
        m = _MARKER_RE.fullmatch(child)
        if m is None:
            continue
        try:
            good[m.group(1)] = parse_marker(
                read_capped(dfd, child, MAX_MARKER_BYTES), fp, m.group(1)
            )
        except FileNotFoundError:
            continue
        except ForeignObjectError as exc:
            bad.append(_foreign(fp, exc).reason)
        except CorruptEntryError as exc:
            bad.append(exc.reason)
        except OSError as exc:
            bad.append(f"{child} unreadable ({exc})")
    return good, bad


def _value_problem(name: str, arr: np.ndarray[Any, Any], n: int) -> str | None:
    # Returns instead of raising: a traceback would keep a view of the mmap alive.
    if name.endswith("_neighbors.npy"):
        bad = ((arr < 0) | (arr >= n)).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            return f"{name} row {row} holds a neighbour index outside [0, {n}) (e.g. -1)"
    elif name.endswith("_distances.npy"):
        bad = ~(np.isfinite(arr) & (arr >= 0)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            return f"{name} row {row} holds a non-finite or negative distance"
    return None


def check_file(
    dfd: int,
    fp: str,
    name: str,
    rec: dict[str, Any],
    *,
    checksum: bool,
    n: int | None = None,
) -> None:
    """Check one file against its record: a regular file, size, ``.npy`` header, checksum.

    With ``checksum`` and ``n`` given, a graph file's values are checked too (indices in
    ``[0, n)``, distances finite and non-negative).

    Raises
    ------
    CorruptEntryError
        With the file name and what disagrees (a foreign object included).
    """
    try:
        fd, st = open_regular(dfd, name)
    except FileNotFoundError:
        raise CorruptEntryError(fp, f"{name} is missing") from None
    except ForeignObjectError as exc:
        raise _foreign(fp, exc) from None
    try:
        if st.st_size != rec["bytes"]:
            raise CorruptEntryError(
                fp, f"{name} has {st.st_size} bytes, meta.json says {rec['bytes']} (truncated?)"
            )
        try:
            shape, dtype, fortran, offset = read_npy_header_fd(fd)
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(fp, f"{name} has no valid .npy header ({exc})") from None
        if list(shape) != rec["shape"] or dtype != rec["dtype"]:
            raise CorruptEntryError(
                fp,
                f"{name} holds shape {list(shape)} dtype {dtype}, meta.json says "
                f"{rec['shape']} {rec['dtype']}",
            )
        # Before anything maps it: a file cut short (or padded) under a record rewritten
        # to match its bytes must not reach np.frombuffer.
        need = npy_size(shape, dtype, offset)
        if st.st_size != need:
            raise CorruptEntryError(
                fp,
                f"{name} has {st.st_size} bytes, its .npy header (shape {list(shape)} "
                f"dtype {dtype}) needs {need} (truncated?)",
            )
        if not checksum:
            return
        if checksum_fd(fd) != rec["xxh3_128"]:
            raise CorruptEntryError(fp, f"{name}: checksum mismatch")
        if n is not None and name.endswith(_GRAPH_SUFFIXES) and st.st_size > offset:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                flat = np.frombuffer(mm, dtype=np.dtype(dtype), offset=offset)
                problem = _value_problem(
                    name, flat.reshape(shape, order="F" if fortran else "C"), n
                )
                del flat
            if problem is not None:
                raise CorruptEntryError(fp, problem)
    finally:
        os.close(fd)


def check_entry(dfd: int, fp: str, *, arrays: bool, checksum: bool = True) -> Meta:
    """Read the meta and check every file it lists (and the extra arrays when ``arrays``).

    ``meta["arrays"]`` is filled from the array markers (valid ones only).

    Raises
    ------
    FileNotFoundError
        No ``meta.json``.
    CorruptEntryError
        The first problem found.
    """
    meta = read_meta(dfd, fp)
    for name, rec in meta["files"].items():
        check_file(dfd, fp, name, rec, checksum=checksum, n=meta["n"])
    good, bad = read_arrays(dfd, fp)
    meta["arrays"] = good
    if arrays:
        if bad:
            raise CorruptEntryError(fp, bad[0])
        for name, rec in good.items():
            check_file(dfd, fp, array_file(name), rec, checksum=checksum)
    return meta
