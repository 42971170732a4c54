"""Guards the cost of the exact KNN search that a grid search over k runs once.

What it measures (N=3,000 points, d=768, float32, k = 3..21 as in the grid search):

* ``knncache.compute_knn`` once at k_max=21, then slicing ``[:, :k]`` for every k — what the
  stores do;
* one ``compute_knn`` per k (19 searches) — what the original research code did;
* scikit-learn brute force (``NearestNeighbors(algorithm="brute")``) at k_max, the common
  baseline;
* the raw faiss ``IndexFlatL2`` search at k_max + 1 (no exact refinement, no tie-breaking,
  squared distances), to show what the exactness/determinism refinement costs;
* ``knncache.fingerprint`` as a share of one search (target: ≤ 5 %).

Regressions it catches: the refinement or validation getting slower, fingerprinting copying
the matrix, a search per k creeping back in.

Run::

    .venv/bin/python benchmarks/bench_search.py            # full size, ~1-2 minutes
    .venv/bin/python benchmarks/bench_search.py --quick    # small, a few seconds (CI)

Prints a table of medians over ``--repeats`` runs and ratios to the single search.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from knncache import compute_knn, fingerprint


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, 2 repeats (CI)")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    n, d, repeats = (500, 64, 2) if args.quick else (args.n, args.d, args.repeats)
    ks = list(range(3, 22))
    k_max = ks[-1]

    rng = np.random.default_rng(0)
    # Clustered data, closer to real embeddings than isotropic noise.
    centers = rng.standard_normal((50, d)).astype(np.float32) * 3
    X = (centers[rng.integers(0, 50, n)] + rng.standard_normal((n, d))).astype(np.float32)

    import faiss
    from sklearn.neighbors import NearestNeighbors

    def once_then_slice() -> None:
        g = compute_knn(X, k_max)
        for k in ks:
            g.neighbors[:, :k], g.distances[:, :k]

    def per_k() -> None:
        for k in ks:
            compute_knn(X, k)

    def sklearn_brute() -> None:
        nn = NearestNeighbors(n_neighbors=k_max + 1, algorithm="brute").fit(X)
        nn.kneighbors(X)

    def raw_faiss() -> None:
        index = faiss.IndexFlatL2(d)
        index.add(X)
        index.search(X, k_max + 1)

    compute_knn(X, k_max)  # warm-up (faiss import, BLAS threads)
    rows = [
        ("compute_knn once at k_max=21, then slice", _median_seconds(once_then_slice, repeats)),
        ("compute_knn once per k (19 searches)", _median_seconds(per_k, max(1, repeats // 2))),
        ("sklearn brute force at k_max", _median_seconds(sklearn_brute, repeats)),
        ("raw faiss IndexFlatL2 at k_max+1 (no refinement)", _median_seconds(raw_faiss, repeats)),
        ("fingerprint(X)", _median_seconds(lambda: fingerprint(X), max(repeats, 20))),
    ]
    base = rows[0][1]
    print(f"bench_search: N={n}, d={d}, k={ks[0]}..{k_max}, medians of {repeats} runs")
    print(f"{'method':52} {'median ms':>10} {'ratio':>8}")
    for name, secs in rows:
        print(f"{name:52} {secs * 1e3:10.2f} {secs / base:7.2f}×")
    share = rows[-1][1] / base
    print(f"fingerprint share of one search: {share:.2%} (target ≤ 5%)")
    print(f"per-k searches / one search: {rows[1][1] / base:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
