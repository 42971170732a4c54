"""The exact search on an executor's workers, and the features shipped to them.

The query rows are split into blocks, each searched by a worker against the whole matrix,
which workers map from a ``.npy`` whose last path component is never followed (a link or
FIFO there is refused): the entry's ``features.npy``, the caller's ``features_npy``, or a
copy ``.knncache-ship-{hex}.npy`` written by :func:`knncache.atomic_write` into the store
root (or ``scratch_dir``) and held with a shared ``flock`` until its owner removes it.
``clear`` and ``gc`` remove such a copy only when they can lock it exclusively and it is
older than the store's grace period (a dead owner's), and an ``atomic_write`` leftover of
one past that period; nothing is followed and nothing outside the root is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from knncache._atomic import atomic_write, temp_pattern
from knncache._errors import CorruptEntryError
from knncache._fingerprint import fingerprint
from knncache._flock import names_fd
from knncache._graph import KnnGraph
from knncache._ref import open_at
from knncache._safefs import open_dir, open_regular
from knncache._search import search_rows

__all__ = ["SHIP_PREFIX", "SHIP_RE", "SHIP_TEMP_RE", "distributed_exact", "shipped"]

#: The features shipped to an executor's workers (a ``.npy`` in the store root or scratch
#: directory, held with a shared ``flock`` while in use) and ``atomic_write``'s temporary
#: file of one. Housekeeping removes an unheld one past the grace period.
SHIP_PREFIX = ".knncache-ship-"
SHIP_RE = re.compile(re.escape(SHIP_PREFIX) + r"[0-9a-f]{32}\.npy")
SHIP_TEMP_RE = re.compile(temp_pattern(SHIP_RE.pattern))


def _worker_count(executor: Any) -> int:
    with contextlib.suppress(Exception):
        info = executor.scheduler_info()  # distributed.Client
        return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
    count = getattr(executor, "_max_workers", None)  # concurrent.futures executors
    return int(count) if isinstance(count, int) and count > 0 else 4


def _map_npy(path: str, expected_fp: str) -> npt.NDArray[Any]:
    """Read-only map of the ``.npy`` file ``path``: a regular file (its last component is not
    followed, a FIFO or device never opened), truncated or foreign ones refused."""
    directory, name = os.path.split(path)
    dfd = open_dir(directory or ".")
    try:
        return open_at(dfd, name, directory)
    except ValueError as exc:
        raise CorruptEntryError(expected_fp, f"{path!r}: {exc}") from None
    finally:
        os.close(dfd)


def _search_block(
    path: str,
    expected_fp: str,
    k: int,
    metric: str,
    exclude_self: bool,
    start: int,
    stop: int,
) -> tuple[int, KnnGraph]:
    """Worker side: map the matrix, check it is the caller's, search rows ``start:stop``.

    The block's rows are searched against the whole matrix with the same power-of-two
    scaling as the local search (it depends on the whole matrix), so blocks agree bit for bit
    with it; the caller checks the merged graph.
    """
    arr = _map_npy(path, expected_fp)
    if fingerprint(arr, metric) != expected_fp:
        raise CorruptEntryError(expected_fp, f"{path!r} does not hold the features being searched")
    rows = np.arange(start, stop, dtype=np.int64)
    graph = search_rows(arr, k, metric, exclude_self, rows=rows)
    return start, KnnGraph(np.ascontiguousarray(graph.neighbors), graph.distances)


_HOLD_TIMEOUT = 10.0


@contextlib.contextmanager
def shipped(arr: npt.NDArray[Any], scratch_dir: Any) -> Iterator[str]:
    """A ``.npy`` copy of ``arr`` for the workers: its path, for the duration of the block.

    Written with :func:`knncache.atomic_write` (mode ``0o666 & ~umask``, never through a
    link) under a random :data:`SHIP_RE` name, then held with a shared ``flock`` until it is
    removed, so that ``clear`` and ``gc`` of a store whose root holds it (they take it
    exclusively, without waiting) never remove it while it is in use. Where flock is refused
    the copy is simply not held (housekeeping cannot lock it either, so it is kept).
    """
    directory = os.fspath(scratch_dir) if scratch_dir is not None else tempfile.gettempdir()
    name = f"{SHIP_PREFIX}{secrets.token_hex(16)}.npy"
    path = os.path.join(directory, name)
    atomic_write(path, lambda w: np.save(w, np.ascontiguousarray(arr), allow_pickle=False))
    dfd = open_dir(directory)
    fd: int | None = None
    try:
        fd, _ = open_regular(dfd, name, where=directory)
        deadline = time.monotonic() + _HOLD_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # a housekeeper checking it (it keeps a fresh file)
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            except OSError:  # flock unsupported here
                break
        yield path
    finally:
        try:
            if fd is None or names_fd(dfd, name, fd):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=dfd)
        finally:
            if fd is not None:
                os.close(fd)
            os.close(dfd)


def distributed_exact(
    arr: npt.NDArray[Any],
    k: int,
    metric: str,
    exclude_self: bool,
    executor: Any,
    p: Mapping[str, Any],
) -> KnnGraph:
    """The exact search with the query rows split into blocks searched by ``executor``.

    Bit-identical to the local search: each row's result depends only on that row and the
    whole matrix, which the workers map from ``p["features_npy"]`` or a shipped copy.
    """
    n = arr.shape[0]
    blocks = p["blocks"] if p["blocks"] is not None else 2 * _worker_count(executor)
    bounds = np.unique(np.linspace(0, n, min(blocks, n) + 1).astype(np.int64))
    fp = fingerprint(arr, metric)
    with contextlib.ExitStack() as stack:
        if p["features_npy"] is not None:
            path = os.fspath(p["features_npy"])
        else:
            path = stack.enter_context(shipped(arr, p["scratch_dir"]))
        futures = [
            executor.submit(_search_block, path, fp, k, metric, exclude_self, int(lo), int(hi))
            for lo, hi in itertools.pairwise(bounds)
        ]
        parts = [f.result() for f in futures]
    parts.sort(key=lambda part: part[0])
    neighbors = np.concatenate([g.neighbors for _, g in parts], axis=0)
    distances = np.concatenate([g.distances for _, g in parts], axis=0)
    return KnnGraph(neighbors, distances)
