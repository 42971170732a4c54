"""Scaling benchmark: the grid search from the original's N=3,000 up to CIFAR-100's N=50,000.

Guards the large-N path (issue 5): at N > PAIRWISE_MAX_N the search must run without any N×N
array (graph at CANDIDATE_WIDTH columns used as exact candidates, sampled silhouette from
distance rows computed once), and the 50,000-point search must finish in under 10 minutes on
2 cores with peak memory under 4 GB. For each N (synthetic superclass, d=768, seed 0) it
measures, each in a fresh PersistentStore:

  (a) ensure   one exact faiss search at the width the search uses (k_max, or
               max(k_max, CANDIDATE_WIDTH) on the large-N path), in this process
  (b) search   run_clustering_search_on_features over k=3..20 × dp=40..95 step 5 (216
               configurations), 2 spawn workers, cold store: includes (a)'s search again plus
               the shared arrays (pairwise matrix, or the silhouette sample rows)

Reported: wall time and peak memory of the process tree (summed PSS, TreeMemory from
bench_grid_search.py), the path taken, and the growth exponent between consecutive sizes
(``log(t2/t1) / log(n2/n1)``).

Run:  python benchmarks/bench_scale.py            (full: N = 3,000, 13,800, 50,000; ~15 min)
      python benchmarks/bench_scale.py --quick    (N = 1,000 and 2,000, a 6-configuration grid,
                                                   the second size on the large-N path; CI)
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_grid_search import TreeMemory
from knncache import PersistentStore
from ssddbc.data import make_synthetic_superclass
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search.api import run_clustering_search_on_features

WORKERS = 2
GOAL_SECONDS = 600.0
GOAL_MB = 4096.0


def measure(
    n: int, ks: list[int], dps: list[int], tmp: Path, plan: SearchPlan = DEFAULT_PLAN
) -> dict[str, Any]:
    data = make_synthetic_superclass(n=n, d=768, seed=0)
    route = plan.route(n, max(ks))
    large = not route.pairwise
    width = route.graph_width

    store = PersistentStore(tmp / f"ensure_{n}")
    with TreeMemory() as mem:
        start = time.perf_counter()
        store.ensure(data.features, width, store_features=True)
        ensure_s = time.perf_counter() - start
    ensure_mb = mem.peak
    store.clear()

    with TreeMemory() as mem:
        start = time.perf_counter()
        result = run_clustering_search_on_features(
            data.features,
            data.targets,
            data.known_mask,
            data.labeled_mask,
            k_range=ks,
            density_range=dps,
            max_workers=WORKERS,
            store=PersistentStore(tmp / f"search_{n}"),
            return_all=True,
            plan=plan,
        )
        search_s = time.perf_counter() - start
    grid = result.results_grid or {}
    sample = {int(m["silhouette_sample"]) for m in grid.values()}
    return {
        "n": n,
        "path": "candidates" if large else "matrix",
        "width": width,
        "sample": max(sample) if sample else 0,
        "configs": len(grid),
        "errors": len(result.errors),
        "ensure_s": ensure_s,
        "ensure_mb": ensure_mb,
        "search_s": search_s,
        "search_mb": mem.peak,
        "best": result.best_params,
    }


def _exponent(rows: list[dict[str, Any]], i: int, key: str) -> str:
    if i == 0:
        return "-"
    a, b = rows[i - 1], rows[i]
    return f"{math.log(b[key] / a[key]) / math.log(b['n'] / a['n']):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and grid (CI)")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated N values")
    args = parser.parse_args()

    plan = DEFAULT_PLAN
    if args.quick:
        sizes = [1000, 2000]
        ks, dps = [3, 5, 8], [40, 90]
        plan = SearchPlan(pairwise_max_n=1500)  # the second size takes the large-N path
    else:
        sizes = [3000, 13800, 50000]
        ks, dps = list(range(3, 21)), list(range(40, 100, 5))
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        for n in sizes:
            row = measure(n, ks, dps, Path(tmp), plan)
            rows.append(row)
            print(
                f"  N={n}: ensure {row['ensure_s']:.1f}s, search {row['search_s']:.1f}s, "
                f"peak {row['search_mb']:.0f} MB ({row['path']})",
                flush=True,
            )

    print()
    print(
        f"Grid: k={ks[0]}..{ks[-1]} × dp={dps[0]}..{dps[-1]} ({len(ks) * len(dps)} "
        f"configurations), {WORKERS} workers, d=768, pairwise_max_n={plan.pairwise_max_n}, "
        f"candidate_width={plan.candidate_width}"
    )
    header = (
        "| N | path | graph width | silhouette sample | (a) ensure s | exp | (a) peak MB "
        "| (b) search s | exp | s/config | (b) peak MB | exp | errors |"
    )
    print(header)
    print("|---" * 13 + "|")
    for i, r in enumerate(rows):
        print(
            f"| {r['n']:,} | {r['path']} | {r['width']} | {r['sample'] or 'all'} "
            f"| {r['ensure_s']:.1f} | {_exponent(rows, i, 'ensure_s')} | {r['ensure_mb']:.0f} "
            f"| {r['search_s']:.1f} | {_exponent(rows, i, 'search_s')} "
            f"| {r['search_s'] / max(1, r['configs']):.2f} | {r['search_mb']:.0f} "
            f"| {_exponent(rows, i, 'search_mb')} | {r['errors']} |"
        )
    last = rows[-1]
    if not args.quick and last["n"] >= 50000:
        ok_time = last["search_s"] < GOAL_SECONDS
        ok_mem = last["search_mb"] < GOAL_MB
        print(
            f"\nGoal at N={last['n']:,}: search {last['search_s']:.0f}s < {GOAL_SECONDS:.0f}s "
            f"{'met' if ok_time else 'MISSED'}; peak {last['search_mb']:.0f} MB < "
            f"{GOAL_MB:.0f} MB {'met' if ok_mem else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
