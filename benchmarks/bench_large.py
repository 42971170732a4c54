"""A million points on one machine: the full grid search on an approximate neighbour graph.

For each N (default 100,000, 300,000 and 1,000,000; d=768) it generates synthetic clustered
embeddings in float32 chunks (``clustered_embeddings``: 100 classes, Gaussian clusters in a
64-dimensional latent space mapped linearly to d dimensions plus isotropic noise, the recipe
of bench_engines.py; the first 50 classes known, half of their training rows labelled, the
last sixth of the rows the test split) and runs, in a fresh PersistentStore:

  graph      ``store.ensure`` of the approximate graph at the width the search uses (hnsw
             or ivf, their default parameters, every core), features stored: the
             fingerprint, private copy, build, search, exact refinement, the recall the
             entry records, and the write
  recall@20  ``knncache.recall_at_k`` of the stored graph's first 20 columns on 1,000
             seeded queries against the exact search (not part of the search)
  search     ``run_clustering_search_on_features`` over k=3..20 x dp=40..95 step 5 (216
             configurations, 2 workers) on that store: the graph is found, so this is the
             rest of the search, split by the result's ``timings`` into prepare (the
             graph found in the store, the split and the silhouette sample's distance
             columns), the grid (the workers) and the selection (the selected cell rerun)

Printed per N: each stage's seconds, its growth exponent between consecutive sizes
(``log(t2/t1) / log(n2/n1)``; N log N grows as about 1.1 over these sizes), the peak memory
of the process tree (summed PSS, so a memory map shared by the workers counts once) during
the graph and during the search, and recall@20; then the goals at the largest N: total
(graph + search) <= 60 minutes, peak <= 16 GB, recall@20 >= 0.95. The load average is
printed before and after: run it alone on a quiet machine.

Run:  .venv/bin/python benchmarks/bench_large.py                  (100k, 300k, 1M: ~40 min)
      .venv/bin/python benchmarks/bench_large.py --sizes 300000
      .venv/bin/python benchmarks/bench_large.py --quick          (N = 3,000 and 6,000; CI)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_grid_search import TreeMemory
from knncache import PersistentStore, recall_at_k
from ssddbc.data import make_gcd_split
from ssddbc.grid_search._plan import DEFAULT_PLAN
from ssddbc.grid_search.api import run_clustering_search_on_features

WORKERS = 2
GOAL_MINUTES = 60.0
GOAL_PEAK_MB = 16 * 1024.0
GOAL_RECALL = 0.95
CHUNK = 1 << 16


def clustered_embeddings(
    n: int, d: int = 768, *, n_classes: int = 100, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(features float32 (n, d), targets int64 (n,))``, generated ``CHUNK`` rows at a time.

    Class ``c``'s points are ``centre_c + N(0, I)`` in a 64-dimensional latent space, mapped
    by one random linear map to ``d`` dimensions, plus ``N(0, 0.3^2)`` noise per coordinate
    (bench_engines.py's recipe with labels). Peak memory: the output plus one chunk.
    """
    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.normal(size=(n_classes, latent)).astype(np.float32)
    w = (rng.normal(size=(latent, d)) / np.sqrt(latent)).astype(np.float32)
    targets = rng.integers(0, n_classes, n).astype(np.int64)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        z = centres[targets[start:stop]]
        z += rng.standard_normal((stop - start, latent), dtype=np.float32)
        block = z @ w
        block += np.float32(0.3) * rng.standard_normal((stop - start, d), dtype=np.float32)
        x[start:stop] = block
    return x, targets


def gcd_split(targets: np.ndarray, n_classes: int = 100) -> dict[str, np.ndarray]:
    """Known classes 0..n_classes/2-1; the last sixth of the rows is the test split; half of
    the known-class training rows labelled (seed 0)."""
    n = targets.size
    train = np.arange(n) < n - n // 6
    known, labeled = make_gcd_split(
        targets, range(n_classes // 2), labeled_fraction=0.5, train_mask=train, seed=0
    )
    return {"known_mask": known, "labeled_mask": labeled, "eval_mask": ~train}


def measure(n: int, tmp: Path, method: str, ks: list[int], dps: list[int]) -> dict[str, Any]:
    t = time.perf_counter()
    X, y = clustered_embeddings(n)
    split = gcd_split(y)
    data_s = time.perf_counter() - t
    width = DEFAULT_PLAN.route(n, max(ks)).graph_width
    store = PersistentStore(tmp / f"store_{n}")
    print(f"N={n:,}: data {data_s:.1f}s; graph ({method}, {width} columns) ...", flush=True)
    with TreeMemory(interval=0.2) as mem:
        t = time.perf_counter()
        ref = store.ensure(X, width, store_features=True, method=method)
        graph_s = time.perf_counter() - t
    graph_mb = mem.peak
    info = store.info(ref)
    print(f"N={n:,}: graph {graph_s:.1f}s, peak {graph_mb:,.0f} MB; recall ...", flush=True)
    t = time.perf_counter()
    neighbors = ref.load(20).neighbors
    recall = recall_at_k(neighbors, X, 20, sample=1000, seed=0)
    recall_s = time.perf_counter() - t
    del neighbors
    print(f"N={n:,}: recall@20 {recall:.4f} ({recall_s:.1f}s); search ...", flush=True)
    with TreeMemory(interval=0.2) as mem:
        t = time.perf_counter()
        result = run_clustering_search_on_features(
            X,
            y,
            split["known_mask"],
            split["labeled_mask"],
            eval_mask=split["eval_mask"],
            k_range=ks,
            density_range=dps,
            max_workers=WORKERS,
            store=store,
            knn_method=method,
            silent=False,
        )
        search_s = time.perf_counter() - t
    if result.knn_searches:
        raise SystemExit(f"N={n}: the search ran its own neighbour search; the store missed")
    timings = dict(result.timings)
    row = {
        "n": n,
        "data_s": data_s,
        "graph_s": graph_s,
        "graph_mb": graph_mb,
        "recall": recall,
        "recall_s": recall_s,
        "stored_recall": info.recall,
        "search_s": search_s,
        "search_mb": mem.peak,
        "total_s": graph_s + search_s,
        "best": result.best_params,
        "errors": len(result.errors),
        "timings": timings,
    }
    store.clear()
    print(
        f"N={n:,}: search {search_s:.1f}s, peak {mem.peak:,.0f} MB, best {result.best_params}, "
        f"timings {timings}; load {os.getloadavg()}",
        flush=True,
    )
    return row


def _exp(rows: list[dict[str, Any]], i: int, get: Any) -> str:
    if i == 0:
        return "-"
    a, b = get(rows[i - 1]), get(rows[i])
    if not a or not b:
        return "-"
    return f"{math.log(b / a) / math.log(rows[i]['n'] / rows[i - 1]['n']):.2f}"


STAGES = (
    ("graph", lambda r: r["graph_s"]),
    ("prepare", lambda r: r["timings"].get("prepare")),
    ("grid", lambda r: r["timings"].get("grid")),
    ("selection", lambda r: r["timings"].get("selection")),
    ("search", lambda r: r["search_s"]),
    ("total", lambda r: r["total_s"]),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 3,000 and 6,000 (CI)")
    parser.add_argument("--sizes", type=str, default="100000,300000,1000000")
    parser.add_argument("--method", choices=("hnsw", "ivf"), default="hnsw")
    args = parser.parse_args()
    sizes = [3000, 6000] if args.quick else [int(s) for s in args.sizes.split(",")]
    ks, dps = list(range(3, 21)), list(range(40, 100, 5))
    if args.quick:
        ks, dps = [3, 5, 8], [40, 90]
    print(f"load before: {os.getloadavg()}; uptime {time.monotonic():.0f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_large_") as tmp:
        for n in sizes:
            rows.append(measure(n, Path(tmp), args.method, ks, dps))
    print(f"load after: {os.getloadavg()}")
    print(
        f"\nGrid: k={ks[0]}..{ks[-1]} x dp={dps[0]}..{dps[-1]} ({len(ks) * len(dps)} "
        f"configurations), {WORKERS} workers, d=768, {args.method} at its defaults, "
        "every core for the graph"
    )
    names = [name for name, _ in STAGES]
    print("| N | " + " | ".join(f"{s} s | exp" for s in names) + " | graph peak MB "
          "| search peak MB | recall@20 | errors |")  # fmt: skip
    print("|---" * (1 + 2 * len(names) + 4) + "|")
    for i, r in enumerate(rows):
        cells = []
        for _, get in STAGES:
            value = get(r)
            cells.append(f"{value:.1f}" if value is not None else "-")
            cells.append(_exp(rows, i, get))
        print(
            f"| {r['n']:,} | " + " | ".join(cells) + f" | {r['graph_mb']:,.0f} "
            f"| {r['search_mb']:,.0f} | {r['recall']:.4f} | {r['errors']} |"
        )
    if args.quick:
        return
    last = rows[-1]
    minutes = last["total_s"] / 60
    peak = max(last["graph_mb"], last["search_mb"])
    print(f"\nGoals at N={last['n']:,}:")
    print(f"  total {minutes:.1f} min <= {GOAL_MINUTES:.0f} min: "
          f"{'met' if minutes <= GOAL_MINUTES else 'MISSED'}")  # fmt: skip
    print(f"  peak {peak:,.0f} MB <= {GOAL_PEAK_MB:,.0f} MB: "
          f"{'met' if peak <= GOAL_PEAK_MB else 'MISSED'}")  # fmt: skip
    print(f"  recall@20 {last['recall']:.4f} >= {GOAL_RECALL}: "
          f"{'met' if last['recall'] >= GOAL_RECALL else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
