"""Helpers for the knncache tests: a brute-force reference and direct reads of a store dir.

These read the directory themselves (json, np.load) so that the store is what gets tested,
not tested with itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

FP_LEN = 32


def brute_force_distances(X: np.ndarray, metric: str) -> np.ndarray:
    """All pairwise distances in float64 (euclidean: true distances; cosine: 1 - cos)."""
    x = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.clip(1.0 - x @ x.T, 0.0, 2.0)
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt((diff**2).sum(-1))


def brute_force_knn(X: np.ndarray, k: int, metric: str = "euclidean") -> tuple[Any, Any]:
    """Reference graph: self excluded, rows sorted by (float32 distance, index)."""
    D = brute_force_distances(X, metric)
    n = D.shape[0]
    np.fill_diagonal(D, np.inf)
    D32 = D.astype(np.float32)
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), D32), axis=-1)[:, :k]
    return order.astype(np.int64), np.take_along_axis(D32, order, axis=1), D


def entry_dirs(root: Path) -> list[str]:
    """Names of the entry directories under ``root`` (read directly)."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and len(p.name) == FP_LEN)


def read_meta(root: Path, fp: str) -> dict[str, Any]:
    with open(root / fp / "meta.json") as f:
        return json.load(f)


def snapshot(root: Path) -> list[tuple[str, int]]:
    """Every path under ``root`` with its size (directories as -1)."""
    if not root.exists():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out.append((os.path.relpath(os.path.join(dirpath, name), root), -1))
        for name in filenames:
            p = os.path.join(dirpath, name)
            out.append((os.path.relpath(p, root), os.path.getsize(p)))
    return sorted(out)


def tmp_files(root: Path) -> list[str]:
    """Leftover temporary files of the atomic writer."""
    return [p for p, _ in snapshot(root) if p.endswith(".tmp")]


def read_array_marker(root: Path, fp: str, name: str) -> dict[str, Any]:
    """The commit marker ``array_{name}.json`` of an extra array (read directly)."""
    with open(root / fp / f"array_{name}.json") as f:
        return json.load(f)


def array_names(root: Path, fp: str) -> set[str]:
    """Names of the committed extra arrays of an entry (their markers, read directly)."""
    return {
        p.name[len("array_") : -len(".json")]
        for p in (root / fp).iterdir()
        if p.name.startswith("array_") and p.name.endswith(".json")
    }


def latent_mixture(n: int, d: int, seed: int = 0) -> np.ndarray:
    """The seeded test set: 100 Gaussian clusters in a 64-dim latent space, mapped linearly
    to ``d`` dimensions, plus isotropic noise (structure like learned embeddings have; the
    benchmarks' recipe)."""
    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.normal(size=(100, latent))
    z = centres[rng.integers(0, 100, n)] + rng.normal(size=(n, latent))
    w = rng.normal(size=(latent, d)) / np.sqrt(latent)
    return (z @ w + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def bits(a: np.ndarray) -> bytes:
    """The array's bytes (C order): equal bytes are bit-identical arrays."""
    return np.ascontiguousarray(a).tobytes()
