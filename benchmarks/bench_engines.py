"""Guards the build time and recall of the search engines, and the exact graph built on Dask.

What it measures (default N=200,000 points, d=768, float32, k=20; synthetic data with the
structure of learned embeddings: 100 Gaussian clusters in a 64-dim latent space mapped
linearly to d dimensions plus isotropic noise):

* ``compute_knn(X, k)``: the exact search, locally (the baseline);
* ``compute_knn(X, k, method="hnsw")`` and ``method="ivf"`` at their documented defaults
  (``knncache.ENGINE_DEFAULTS``), with recall@k measured by ``knncache.recall_at_k`` on
  1,000 seeded queries against exact search (target: >= 0.95);
* raw faiss at the same thread count, for each approximate method: ``IndexHNSWFlat(d, M)``
  with ``efConstruction``, add, ``efSearch``, search ``k + 1``; ``IndexIVFFlat`` train, add,
  ``nprobe``, search ``k + 1`` (the floor knncache's engines are measured against: the
  ``knncache / raw`` ratio per method, target <= 1.2);
* ``compute_knn(X, k, executor=client)``: the exact search split across a local Dask
  cluster of 2 worker processes (1 thread each), checked bit-identical to the local graph.

Every faiss call runs on ``--threads`` threads (default ``faiss.omp_get_max_threads()``).

Regressions it catches: an engine getting slower (or slower than raw faiss) or its defaults
losing recall, the Dask route losing bit-identity or costing much more than the local
search.

Run::

    .venv/bin/python benchmarks/bench_engines.py            # full size: tens of minutes
    .venv/bin/python benchmarks/bench_engines.py --quick    # small, under a minute (CI)

Prints a table of medians over ``--repeats`` runs and ratios to the local exact search.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from knncache import ENGINE_DEFAULTS, KnnGraph, compute_knn, recall_at_k


def latent_mixture(n: int, d: int, seed: int = 0) -> np.ndarray:
    """100 Gaussian clusters in a 64-dim latent space, mapped to ``d`` dims, plus noise."""
    rng = np.random.default_rng(seed)
    latent = 64
    centres = rng.normal(size=(100, latent))
    z = centres[rng.integers(0, 100, n)] + rng.normal(size=(n, latent))
    w = rng.normal(size=(latent, d)) / np.sqrt(latent)
    return (z @ w + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def _timed(fn: Callable[[], KnnGraph], repeats: int) -> tuple[float, KnnGraph]:
    times = []
    graph = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        graph = fn()
        times.append(time.perf_counter() - t0)
    assert graph is not None
    return statistics.median(times), graph


def _identical(a: KnnGraph, b: KnnGraph) -> bool:
    return bool(
        np.array_equal(a.neighbors, b.neighbors)
        and np.ascontiguousarray(a.distances).tobytes()
        == np.ascontiguousarray(b.distances).tobytes()
    )


def _raw_faiss(X: np.ndarray, k: int, method: str) -> KnnGraph:
    """The same index built and searched by faiss alone (``k + 1``, self then dropped)."""
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    n, d = x32.shape
    p = ENGINE_DEFAULTS[method]
    index: Any
    if method == "hnsw":
        index = faiss.IndexHNSWFlat(d, p["M"])
        index.hnsw.efConstruction = p["efConstruction"]
        index.add(x32)
        index.hnsw.efSearch = p["efSearch"]
    else:
        nlist = max(1, min(round(np.sqrt(n)), n // 39))  # knncache's "auto"
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
        index.train(x32)
        index.add(x32)
        index.nprobe = min(p["nprobe"], nlist)
    dist, idx = index.search(x32, k + 1)
    # Drop each row's self (stable: the rest keep faiss's order), else its last column.
    order = np.argsort(idx == np.arange(n)[:, None], axis=1, kind="stable")[:, :k]
    return KnnGraph(np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, 1 repeat (CI)")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask row")
    parser.add_argument(
        "--threads",
        type=int,
        default=faiss.omp_get_max_threads(),
        help="faiss threads for knncache and raw faiss alike (default: every allowed core)",
    )
    args = parser.parse_args(argv)
    threads = args.threads
    faiss.omp_set_num_threads(threads)
    n, d, repeats = (3000, 32, 1) if args.quick else (args.n, args.d, args.repeats)
    k = args.k
    X = latent_mixture(n, d)
    compute_knn(X[:500], 5)  # warm-up: faiss import, BLAS threads

    rows: list[tuple[str, float, str]] = []
    ratios: list[str] = []
    t_exact, exact = _timed(lambda: compute_knn(X, k), repeats)
    rows.append(("exact (local)", t_exact, "1.0000 (exact)"))
    for method in ("hnsw", "ivf"):

        def run(m: str = method) -> KnnGraph:
            return compute_knn(X, k, method=m, threads=threads)

        def raw(m: str = method) -> KnnGraph:
            return _raw_faiss(X, k, m)

        t, graph = _timed(run, repeats)
        sampled = recall_at_k(graph.neighbors, X, k, sample=1000, seed=0)
        full = (graph.neighbors[:, :, None] == exact.neighbors[:, None, :]).any(axis=2).mean()
        params = " ".join(f"{p}={v}" for p, v in ENGINE_DEFAULTS[method].items() if p != "threads")
        rows.append((f"{method} ({params})", t, f"{sampled:.4f} (full {full:.4f})"))
        t_raw, raw_graph = _timed(raw, repeats)
        raw_recall = recall_at_k(raw_graph.neighbors, X, k, sample=1000, seed=0)
        rows.append((f"  raw faiss {method}, same parameters", t_raw, f"{raw_recall:.4f}"))
        ratios.append(f"{method}: knncache / raw faiss = {t / t_raw:.2f}× (target <= 1.2)")

    if not args.no_dask:
        from distributed import Client, LocalCluster

        scratch = tempfile.mkdtemp(prefix="bench_engines_")
        try:
            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    memory_limit=0,
                    local_directory=scratch,
                ) as cluster,
                Client(cluster) as client,
            ):
                t, graph = _timed(lambda: compute_knn(X, k, executor=client), repeats)
                same = "bit-identical" if _identical(graph, exact) else "DIFFERS"
                rows.append(("exact on Dask (2 workers × 1 thread)", t, f"1.0000 ({same})"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"bench_engines: N={n}, d={d}, k={k}, {threads} faiss threads, medians of {repeats} run(s)"
    )
    print(f"{'engine':60} {'build s':>9} {'vs exact':>9}  recall@{k}")
    for name, secs, recall in rows:
        print(f"{name:60} {secs:9.2f} {secs / t_exact:8.2f}×  {recall}")
    for line in ratios:
        print(line)
    return 0 if all("DIFFERS" not in r for _, _, r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
