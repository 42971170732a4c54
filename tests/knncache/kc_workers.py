"""Functions run in spawned processes by the knncache process tests (importable by name)."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import numpy as np


def race_ensure(root: str, x_path: str, k: int, barrier: Any, out: Any) -> None:
    from knncache import PersistentStore

    X = np.load(x_path)
    store = PersistentStore(root)
    barrier.wait(timeout=60)
    ref = store.ensure(X, k)
    nb, ds = ref.load()
    digest = hashlib.sha256(nb.tobytes() + ds.tobytes()).hexdigest()
    out.put((os.getpid(), dict(store.stats), digest, ref))


def write_then_hang_before_meta(
    root: str, x_path: str, k: int, ready: Any, lock: str = "hard"
) -> None:
    """Start writing an entry, then block just before ``meta.json`` is renamed into place."""
    import knncache._atomic as atomic_mod
    from knncache import PersistentStore

    real_replace = os.replace

    def hang(src: Any, dst: Any, **kwargs: Any) -> None:
        if str(dst).endswith("meta.json"):
            ready.set()
            time.sleep(600)
        real_replace(src, dst, **kwargs)

    atomic_mod.os.replace = hang  # type: ignore[assignment]  # only in this doomed child
    PersistentStore(root, lock=lock).ensure(np.load(x_path), k)


def load_then_maybe_raise(ref: Any, i: int) -> int:
    nb, _ = ref.load(3)
    if i == 2:
        raise ValueError("task 2 failed on purpose")
    return int(nb.sum())


def race_ensure_mode(
    root: str, x_path: str, k: int, lock: str, barrier: Any, out: Any, load_k: int | None = None
) -> None:
    """``ensure`` with a given lock mode at the barrier; report stats, digest and ref."""
    from knncache import PersistentStore

    X = np.load(x_path)
    store = PersistentStore(root, lock=lock)
    barrier.wait(timeout=60)
    ref = store.ensure(X, k)
    nb, ds = ref.load(load_k if load_k is not None else k)
    digest = hashlib.sha256(nb.tobytes() + ds.tobytes()).hexdigest()
    out.put((os.getpid(), dict(store.stats), digest, ref, k))


def hold_soft_lock(root: str, fp: str, ready: Any) -> None:
    """Take the soft lock of entry ``fp`` and hang holding it (the parent SIGKILLs us)."""
    from knncache import PersistentStore

    store = PersistentStore(root, lock="soft")
    store.root.mkdir(parents=True, exist_ok=True)
    with store._lock(fp):
        ready.set()
        time.sleep(600)


def pin_and_read(root: str, fp: str, ready: Any, go: Any, out: Any) -> None:
    """Pin entry ``fp``, signal, wait for the parent's clear/gc, then read it all."""
    from knncache import PersistentStore

    store = PersistentStore(root)
    ref = store.get(fp)
    assert ref is not None
    with store.pin(ref):
        ready.set()
        go.wait(timeout=120)
        nb, ds = ref.load()
        store.ensure_array(ref, "after_clear", lambda f: np.asarray(f).sum(axis=1))
        out.put((int(nb.sum()), float(ds.sum()), float(ref.array("after_clear").sum())))


def ensure_array_none(root: str, x_path: str, name: str, barrier: Any, out: Any) -> None:
    """``ensure_array`` with ``lock="none"`` at the barrier, each process its own name."""
    from knncache import PersistentStore

    store = PersistentStore(root, lock="none")
    ref = store.ensure(np.load(x_path), 5)
    barrier.wait(timeout=60)
    store.ensure_array(ref, name, lambda f: np.asarray(f, dtype=np.float64) * len(name))
    out.put((name, dict(store.stats)))


def _mixed_rows(X: np.ndarray, nb: np.ndarray, ds: np.ndarray) -> int:
    """Rows whose distances are not those of their neighbours (a mixed pair of files)."""
    diff = X[nb].astype(np.float64) - X[:, None, :].astype(np.float64)
    exact = np.sqrt(np.einsum("nkd,nkd->nk", diff, diff)).astype(np.float32)
    return int((~np.isclose(ds, exact, rtol=1e-5, atol=1e-6)).any(axis=1).sum())


def race_approximate_writer(
    root: str, x_path: str, threads: int, rounds: int, barrier: Any, out: Any
) -> None:
    """Build the same hnsw entry at a growing k, in step with another writer (no lock)."""
    import faiss

    from knncache import PersistentStore

    faiss.omp_set_num_threads(2)
    X = np.load(x_path)
    store = PersistentStore(root, lock="none")
    bad = 0
    for r in range(rounds):
        barrier.wait(timeout=120)
        ref = store.ensure(X, 5 + r, method="hnsw", params={"threads": threads})
        nb, ds = ref.load()
        bad += _mixed_rows(X, np.asarray(nb), np.asarray(ds))
    out.put((f"writer{threads}", rounds, bad, dict(store.stats)))


def read_approximate_until(root: str, x_path: str, done: Any, out: Any) -> None:
    """Ensure and load the hnsw entry again and again until ``done``; count mixed rows."""
    from knncache import PersistentStore

    X = np.load(x_path)
    store = PersistentStore(root, lock="none")
    loads = bad = 0
    while not done.is_set() or loads == 0:
        ref = store.ensure(X, 5, method="hnsw", params={"threads": 1})
        nb, ds = ref.load(5)
        bad += _mixed_rows(X, np.asarray(nb), np.asarray(ds))
        loads += 1
    out.put(("reader", loads, bad, dict(store.stats)))
