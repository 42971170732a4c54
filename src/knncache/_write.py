"""A store's write path: compute and atomically write an entry under its lock (``meta.json``
last), and its extra arrays (each committed by its own marker). What is left behind on a
failure, and when leftovers may go, is :mod:`knncache._housekeeping`'s policy.

No file name ever stands for two different contents, so writers racing without an
exclusive lock (``lock="soft"`` broken, ``"none"``, NFS) cannot mix two graphs into one
entry. Exact graph files ``k{K}_*.npy`` and ``features.npy`` hold the same bytes whoever
writes them (the exact search is deterministic), so replacing one with another writer's is
no change. An approximate graph need not be reproducible (threads, SIMD paths), so each
build names its files ``k{K}-{tag}_*.npy`` with a fresh random tag recorded in the meta's
``build``: writer B never replaces writer A's committed files. B's re-read of the meta just
before its commit finds A's intact entry and returns it (B's tagged files are unlinked, or
left to the sweep), or, if B commits first or last, the meta names one build's pair and the
other's files are unreferenced leftovers, swept after the grace period. A reader maps
exactly the files its meta names (:class:`knncache.KnnRef` carries the tag), whose
checksums it verified."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import numpy as np

from knncache._atomic import atomic_write_at
from knncache._engines import Engine, engine_meta
from knncache._entry import (
    FEATURES_FILE,
    META_FILE,
    Meta,
    array_file,
    array_marker,
    check_entry,
    check_file,
    graph_tag,
    k_files,
    read_arrays,
)
from knncache._errors import (
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    ForeignObjectError,
    InvalidFeaturesError,
    KnnCacheError,
    KnnCacheWarning,
    StoreWriteError,
)
from knncache._fingerprint import FORMAT_VERSION
from knncache._graph import check_graph
from knncache._housekeeping import sweep, unlink_unreferenced
from knncache._ref import open_at
from knncache._safefs import open_dir_at, remove_at
from knncache._storedir import StoreDir

__all__: list[str] = []

#: Commits an entry: writes ``meta.json`` into the entry directory (a descriptor).
Commit = Callable[[int, Meta], None]


def usable(meta: Meta | None, k: int, need_features: bool) -> bool:
    """Whether the committed ``meta`` serves a request for ``k`` neighbours (and features)."""
    if meta is None or meta["k"] < k:
        return False
    return not need_features or FEATURES_FILE in meta["files"]


def _clear_name(dfd: int, name: str) -> None:
    """Before writing ``name``: a foreign object there (a directory, a FIFO...) is nobody's
    file, so it goes (itself, not followed); a regular file is replaced atomically."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        remove_at(dfd, name)


def write_json(dfd: int, name: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` as the JSON file ``name`` in ``dfd``, atomically."""
    data = json.dumps(record, indent=1, sort_keys=True).encode()

    def write(w: BinaryIO) -> None:
        w.write(data)

    _clear_name(dfd, name)
    atomic_write_at(dfd, name, write)


def _save(dfd: int, name: str, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
    def write(w: BinaryIO) -> None:
        np.save(w, np.ascontiguousarray(arr), allow_pickle=False)

    _clear_name(dfd, name)
    digest, nbytes = atomic_write_at(dfd, name, write)
    return {
        "shape": [int(s) for s in arr.shape],
        "dtype": arr.dtype.str,
        "xxh3_128": digest,
        "bytes": nbytes,
    }


def _current_meta(dfd: int, fp: str) -> Meta | None:
    """The committed meta of ``fp`` if the entry is intact (checksums verified), else None."""
    try:
        return check_entry(dfd, fp, arrays=False)
    except (OSError, CorruptEntryError):
        return None


def write_entry(
    d: StoreDir,
    fp: str,
    arr: np.ndarray[Any, Any],
    k: int,
    metric: str,
    store_features: bool,
    old: Meta | None,
    engine: Engine,
    commit: Commit,
) -> Meta:
    """Write (or complete) an entry under its lock; ``meta.json`` last, through ``commit``.

    The search runs before the first file is written, so a writer's files reach the
    disk within I/O time of its commit. Without an exclusive lock the meta on disk is
    read again just before committing: if a racing writer already committed an entry
    that serves this request, it is returned instead (no downgrade from k=30 to k=20).
    """
    exclusive = d.exclusive
    n = arr.shape[0]
    reuse_k = old is not None and old["k"] >= k
    graph = None
    if not reuse_k:
        graph = engine.in_entry(d.entry(fp), old).compute(arr, k, metric, True)
        d.stats["searches"] += 1
        check_graph(graph, n)  # never write what could not be served
    # Measured (approximate engines: a recall search) before the first file is written.
    engine_fields = engine_meta(engine, graph, arr, metric, old)
    path = str(d.entry(fp))
    try:
        root_fd = d.open_root()
    except OSError as exc:
        raise StoreWriteError(str(d.root), exc.strerror or str(exc), exc.errno) from None
    try:
        created_dir = False
        try:
            os.mkdir(fp, 0o777, dir_fd=root_fd)
            created_dir = True
            os.fsync(root_fd)  # the new entry directory itself must survive a crash
        except FileExistsError:
            pass
        try:
            dfd = open_dir_at(root_fd, fp, where=str(d.root))
        except OSError as exc:
            raise StoreWriteError(path, str(exc), exc.errno) from None
        try:
            return _fill_entry(
                d, dfd, fp, arr, graph, k, metric, store_features, old, engine_fields, commit
            )
        except BaseException as exc:
            if created_dir and exclusive:
                remove_at(root_fd, fp)
            elif created_dir:
                with contextlib.suppress(OSError):  # only if empty: nobody else's files
                    os.rmdir(fp, dir_fd=root_fd)
            if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
                raise StoreWriteError(
                    path, exc.strerror or str(exc) or type(exc).__name__, exc.errno
                ) from exc
            raise
        finally:
            os.close(dfd)
    finally:
        os.close(root_fd)


def _fill_entry(
    d: StoreDir,
    dfd: int,
    fp: str,
    arr: np.ndarray[Any, Any],
    graph: Any,
    k: int,
    metric: str,
    store_features: bool,
    old: Meta | None,
    engine_fields: Mapping[str, Any],
    commit: Commit,
) -> Meta:
    exclusive = d.exclusive
    n, dim = arr.shape
    written: list[str] = []
    now = time.time()
    try:
        sweep(d, dfd, fp, old)
        files: dict[str, Any] = {}
        reused: list[str] = []
        if old is not None and FEATURES_FILE in old["files"]:
            files[FEATURES_FILE] = old["files"][FEATURES_FILE]
            reused.append(FEATURES_FILE)
        elif store_features:
            written.append(FEATURES_FILE)
            files[FEATURES_FILE] = _save(dfd, FEATURES_FILE, arr)
        # The engine fields carry the build (a new tag, or the old one when reused).
        tag = graph_tag(engine_fields)
        if graph is None:
            assert old is not None
            k_new = old["k"]
            for name in k_files(k_new, tag):
                files[name] = old["files"][name]
                reused.append(name)
        else:
            k_new = k
            arrays: tuple[np.ndarray[Any, Any], ...] = (graph.neighbors, graph.distances)
            for name, data in zip(k_files(k_new, tag), arrays, strict=True):
                written.append(name)
                files[name] = _save(dfd, name, data)
        meta: Meta = {
            "format_version": FORMAT_VERSION,
            "fingerprint": fp,
            "metric": metric,
            "n": int(n),
            "d": int(dim),
            "k": int(k_new),
            "features_dtype": arr.dtype.str,
            "files": files,
            "created": old["created"] if old is not None else now,
            "last_used": now,
            "library": "knncache",
            **engine_fields,
        }
        if not exclusive:
            # Files we did not rewrite must look fresh to a racing writer's sweep.
            for name in reused:
                os.utime(name, dir_fd=dfd, follow_symlinks=False)
            current = _current_meta(dfd, fp)
            if current is not None:
                if usable(current, k, store_features):
                    if graph is not None and tag is not None:
                        # Our tagged files: no other writer ever names them.
                        unlink_unreferenced(d, dfd, fp, list(k_files(k_new, tag)))
                    return current  # our other files are the same bytes or unreferenced
                meta["created"] = min(meta["created"], current["created"])
        commit(dfd, meta)
    except BaseException:
        unlink_unreferenced(d, dfd, fp, written)
        raise
    meta["arrays"] = read_arrays(dfd, fp)[0]
    # Committed. Readers holding old memmaps keep them; new readers follow the meta.
    # Without an exclusive lock a racing writer may be about to commit a meta naming the
    # old k-files: they are left to the grace-period sweep.
    if exclusive and old is not None and old["k"] < k_new:
        for name in k_files(old["k"], graph_tag(old)):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dfd)
    return meta


def write_array(
    d: StoreDir, fp: str, name: str, compute: Callable[[np.memmap[Any, Any]], Any]
) -> None:
    """Under the entry lock: compute the extra array ``name`` unless an intact one is
    committed, write it, commit it by its marker (see :meth:`knncache.KnnStore.ensure_array`)."""
    try:
        with d.entry_fd(fp) as dfd:
            _write_array(d, dfd, fp, name, compute)
    except ForeignObjectError as exc:
        raise CorruptEntryError(fp, str(exc)) from None
    except FileNotFoundError as exc:
        if isinstance(exc, KnnCacheError):
            raise
        raise EntryNotFoundError(str(d.entry(fp)), fp) from None


def _write_array(
    d: StoreDir, dfd: int, fp: str, name: str, compute: Callable[[np.memmap[Any, Any]], Any]
) -> None:
    entry = d.entry(fp)
    try:
        meta = check_entry(dfd, fp, arrays=False)
    except FileNotFoundError:
        raise EntryNotFoundError(str(entry), fp) from None
    if FEATURES_FILE not in meta["files"]:
        raise FeaturesNotStoredError(fp)
    fname, mname = array_file(name), array_marker(name)
    rec = meta["arrays"].get(name)
    if rec is not None:
        try:
            check_file(dfd, fp, fname, rec, checksum=True)
        except CorruptEntryError as exc:
            warnings.warn(
                f"knncache: {exc}; recomputing array {name!r}", KnnCacheWarning, stacklevel=4
            )
            d.stats["corrupt_rebuilds"] += 1
        else:
            d.stats["array_hits"] += 1
            d.use(fp)
            return
    sweep(d, dfd, fp, meta)
    feats = open_at(dfd, FEATURES_FILE, str(entry))
    result = np.asarray(compute(feats))  # type: ignore[arg-type]  # a read-only map
    del feats
    if result.dtype.kind not in "biuf":
        raise InvalidFeaturesError(
            "dtype",
            f"ensure_array({name!r}): compute returned dtype {result.dtype}; "
            "expected a numeric or bool array",
        )
    try:
        with contextlib.suppress(FileNotFoundError):
            # A corrupt marker must not commit the new file before it is complete.
            os.unlink(mname, dir_fd=dfd)
        record = _save(dfd, fname, result)
        record.update(format_version=FORMAT_VERSION, fingerprint=fp, name=name)
        write_json(dfd, mname, record)
    except BaseException as exc:
        # Nothing commits a half-done array; drop whatever was written (unless a racing
        # writer committed it: no exclusive lock).
        unlink_unreferenced(d, dfd, fp, [fname])
        if isinstance(exc, OSError) and not isinstance(exc, KnnCacheError):
            raise StoreWriteError(str(entry / fname), exc.strerror or str(exc), exc.errno) from exc
        raise
    with contextlib.suppress(OSError):
        os.utime(META_FILE, dir_fd=dfd, follow_symlinks=False)
    d.stats["array_computes"] += 1
    d.use(fp)
