"""Scaling benchmark: the full grid search from the original's N=3,000 up to ImageNet-100's 130,000.

For each N (synthetic superclass, d=768, seed 0) it measures, each in a fresh PersistentStore:

  (a) one search  one exact faiss search at the width the search ensures
                  (min(N - 1, max(k_max, candidate_width)) columns, every route), in this
                  process: the floor every search pays
  (b) full search run_clustering_search_on_features over k=3..20 × dp=40..95 step 5 (216
                  configurations, one task per k), 2 spawn workers, cold store: includes
                  (a)'s search again plus the shared arrays (pairwise matrix when N <=
                  pairwise_max_n, silhouette sample rows when N > exact_silhouette_max_n)

Reported per N: the route (graph + matrix fallback, or graph only; exact or sampled
silhouette, with the largest standard error of a sampled one), (a) and (b) wall time, (b) as
a multiple of (a) measured in the same run, (b) - (a) (what the search adds to its one
neighbour search), the growth exponent of each between consecutive sizes
(``log(t2/t1) / log(n2/n1)``) and the peak memory of the process tree (summed PSS,
TreeMemory from bench_grid_search.py); then the scale goals with met / MISSED: (b)/(a) <=
10 at 3,000, <= 6 at 13,800, <= 2.5 at 50,000 (peak <= 2 GB) and 130,000 (peak <= 6 GB),
growth exponent of (b) <= 1.3. The load average is printed before and after: compare ratios
within one run.

Per-stage profile (``--profile``), in this process, no workers or store: for each N one
exact search at ``max(k_max, --width)`` columns (timed), the shared arrays (pairwise matrix
when N <= --matrix-max, the silhouette sample rows), then for each profiled configuration the
stages densities (densities, relative densities, cutoff), within-H neighbours, growth,
merge, assignment and scoring, on three routes run interleaved on the same inputs:

  matrix       a single call's route when given the matrix: the (N, N) matrix, the graph's
               first k columns, exact silhouette from the matrix
  candidates   the route above the plan's pairwise_max_n: the whole graph as exact
               candidates, blocks from the features, sampled silhouette (from scratch
               per configuration here; the full-grid table scores as the search does)
  cand+matrix  the graph as candidates and the matrix for the rows they leave undecided
               (cluster_percentiles' route), exact silhouette

plus the growth of the previous implementation (tests/ssddbc/grow_reference.py) on the same
inputs (growth old/new), per k the 12 percentiles as one cluster_percentiles call versus 12
adaptive_density_clustering calls, and the rows the graph leaves to distance blocks per
stage at several graph widths. ``--full-grid`` adds all 216 configurations run serially as
one cluster_percentiles call per k plus scoring, as a multiple of the one search;
``--method hnsw`` profiles on an approximate graph (N of 100,000 and more), ``--data
clustered`` on bench_large.py's embeddings, ``--brief`` prints the stage table only. Labels are
checked identical across all of them. Times are medians over --repeats interleaved repeats;
the machine may be loaded, so compare ratios within one run (the load is printed).

Run:  python benchmarks/bench_scale.py            (full: N = 3,000, 13,800, 50,000; ~15 min)
      python benchmarks/bench_scale.py --sizes 3000,13800,50000,130000   (with ImageNet-100)
      python benchmarks/bench_scale.py --quick    (N = 1,000 and 2,000, a 6-configuration grid,
                                                   the second size on the large-N path; CI)
      python benchmarks/bench_scale.py --profile [--sizes 3000,13800,50000,130000]
                                                  (per-stage profile; N=130,000 only on
                                                   request; --quick: N=1,000, 2 configs)
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
from knncache import PersistentStore
from ssddbc.data import make_synthetic_superclass
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search.api import run_clustering_search_on_features
from ssddbc.ssddbc.clustering import grow_core_clusters as grow_core_clusters_new

WORKERS = 2
#: The scale goals: N -> (largest full search / one search, largest peak tree MB or None).
GOALS: dict[int, tuple[float, float | None]] = {
    3000: (10.0, None),
    13800: (6.0, None),
    50000: (2.5, 2048.0),
    130000: (2.5, 6144.0),
}
GOAL_EXPONENT = 1.3


def measure(
    n: int, ks: list[int], dps: list[int], tmp: Path, plan: SearchPlan = DEFAULT_PLAN
) -> dict[str, Any]:
    data = make_synthetic_superclass(n=n, d=768, seed=0)
    route = plan.route(n, max(ks))
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
    se = [float(m["silhouette_se"]) for m in grid.values()]
    return {
        "n": n,
        "path": "graph + matrix fallback" if route.pairwise else "graph only",
        "width": width,
        "sample": max(sample) if sample else 0,
        "max_se": max(se) if se else 0.0,
        "configs": len(grid),
        "errors": len(result.errors),
        "ensure_s": ensure_s,
        "ensure_mb": ensure_mb,
        "search_s": search_s,
        "rest_s": max(search_s - ensure_s, 1e-9),
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
    parser.add_argument("--profile", action="store_true", help="per-stage profile mode")
    parser.add_argument("--width", type=int, default=64, help="profile: graph columns")
    parser.add_argument("--repeats", type=int, default=3, help="profile: interleaved repeats")
    parser.add_argument(
        "--matrix-max",
        type=int,
        default=DEFAULT_PLAN.pairwise_max_n,
        help="profile: largest N given the matrix (default: the plan's pairwise_max_n)",
    )
    parser.add_argument(
        "--full-grid", action="store_true", help="profile: also all 216, serially, per k"
    )
    parser.add_argument(
        "--method",
        choices=("exact", "hnsw", "ivf"),
        default="exact",
        help="profile: the graph's engine (large N: an approximate graph)",
    )
    parser.add_argument(
        "--data",
        choices=("superclass", "clustered"),
        default="superclass",
        help="profile: synthetic superclass, or bench_large.py's clustered embeddings",
    )
    parser.add_argument(
        "--brief",
        action="store_true",
        help="profile: stages only (no per-k sharing, undecided rows or digits tables)",
    )
    parser.add_argument(
        "--configs",
        type=str,
        default="3:40,3:75,10:40,10:75,20:40,20:95",
        help="profile: k:dp pairs, or 'grid' for all 216",
    )
    args = parser.parse_args()
    if args.profile:
        run_profile(args)
        return

    plan = DEFAULT_PLAN
    if args.quick:
        sizes = [1000, 2000]
        ks, dps = [3, 5, 8], [40, 90]
        # the second size takes the large-N route: no matrix, sampled silhouette
        plan = SearchPlan(pairwise_max_n=1500, exact_silhouette_max_n=1500)
    else:
        sizes = [3000, 13800, 50000]  # 130,000 (ImageNet-100) only with --sizes
        ks, dps = list(range(3, 21)), list(range(40, 100, 5))
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]

    print(f"load before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        for n in sizes:
            row = measure(n, ks, dps, Path(tmp), plan)
            rows.append(row)
            print(
                f"  N={n}: one search {row['ensure_s']:.1f}s, full search {row['search_s']:.1f}s, "
                f"peak {row['search_mb']:.0f} MB ({row['path']})",
                flush=True,
            )

    print()
    print(
        f"Grid: k={ks[0]}..{ks[-1]} × dp={dps[0]}..{dps[-1]} ({len(ks) * len(dps)} "
        f"configurations), {WORKERS} workers, d=768, pairwise_max_n={plan.pairwise_max_n}, "
        f"candidate_width={plan.candidate_width}, "
        f"exact_silhouette_max_n={plan.exact_silhouette_max_n}"
    )
    header = (
        "| N | route | graph width | silhouette | (a) one search s | exp | (a) peak MB "
        "| (b) full search s | exp | (b) - (a) s | exp | (b) / (a) | s/config | (b) peak MB "
        "| errors |"
    )
    print(header)
    print("|---" * 15 + "|")
    for i, r in enumerate(rows):
        sil = f"sampled {r['sample']} (max SE {r['max_se']:.4f})" if r["sample"] else "exact"
        print(
            f"| {r['n']:,} | {r['path']} | {r['width']} | {sil} "
            f"| {r['ensure_s']:.1f} | {_exponent(rows, i, 'ensure_s')} | {r['ensure_mb']:.0f} "
            f"| {r['search_s']:.1f} | {_exponent(rows, i, 'search_s')} "
            f"| {r['rest_s']:.1f} | {_exponent(rows, i, 'rest_s')} "
            f"| {r['search_s'] / r['ensure_s']:.1f}x "
            f"| {r['search_s'] / max(1, r['configs']):.3f} | {r['search_mb']:.0f} "
            f"| {r['errors']} |"
        )
    print(f"\nload after: {os.getloadavg()}")
    if args.quick:
        return
    print("\nGoals:")
    for i, r in enumerate(rows):
        ratio_goal, mb_goal = GOALS.get(r["n"], (None, None))
        ratio = r["search_s"] / r["ensure_s"]
        parts = []
        if ratio_goal is not None:
            verdict = "met" if ratio <= ratio_goal else "MISSED"
            parts.append(f"(b)/(a) {ratio:.1f}x <= {ratio_goal}x {verdict}")
        if mb_goal is not None:
            ok = r["search_mb"] <= mb_goal
            parts.append(
                f"peak {r['search_mb']:.0f} MB <= {mb_goal:.0f} MB {'met' if ok else 'MISSED'}"
            )
        if i:
            exp = float(_exponent(rows, i, "search_s"))
            floor = float(_exponent(rows, i, "ensure_s"))
            # (b) contains (a): once (b)/(a) nears 1, (b) grows as fast as the one exact
            # search, whose own exponent is printed as the cause when it exceeds the goal.
            cause = (
                f" (the one search alone grows as N^{floor:.2f})"
                if exp > GOAL_EXPONENT and floor > GOAL_EXPONENT
                else ""
            )
            parts.append(
                f"growth exponent {exp:.2f} <= {GOAL_EXPONENT} "
                f"{'met' if exp <= GOAL_EXPONENT else 'MISSED'}{cause}"
            )
        print(f"  N={r['n']:,}: " + ("; ".join(parts) if parts else "no goal at this size"))


# ---------------------------------------------------------------- per-stage profile
STAGES = ("densities", "within-H", "growth", "merge", "assign", "score")
ROUTES = ("matrix", "candidates", "cand+matrix")


def _profile_data(n: int, kind: str) -> Any:
    """The profiled data: a synthetic superclass, or bench_large.py's clustered embeddings."""
    if kind == "superclass":
        return make_synthetic_superclass(n=n, d=768, seed=0)
    from types import SimpleNamespace

    from bench_large import clustered_embeddings, gcd_split

    features, targets = clustered_embeddings(n)
    split = gcd_split(targets)
    return SimpleNamespace(
        features=features,
        targets=targets,
        known_mask=split["known_mask"],
        labeled_mask=split["labeled_mask"],
    )


def _reference_growth() -> Any:
    """The previous grow_core_clusters (kept in the tests as the reference), if present."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "ssddbc" / "grow_reference.py").exists():
        return None
    sys.path.insert(0, str(root))
    from tests.ssddbc.grow_reference import reference_grow_core_clusters

    return reference_grow_core_clusters


def _profile_config(
    route: str, ctx: dict[str, Any], k: int, dp: int, times: dict[str, list[float]]
) -> Any:
    """One configuration, stage by stage, as adaptive_density_clustering runs it."""
    from ssddbc.density.density_estimation import identify_high_density_points
    from ssddbc.evaluation import l1_loss, selection_score
    from ssddbc.evaluation._sample import SilhouetteSample
    from ssddbc.ssddbc._params import AlgorithmParams
    from ssddbc.ssddbc._pipeline import prepare_k, validate_inputs
    from ssddbc.ssddbc.assignment import assign_sparse_points
    from ssddbc.ssddbc.clustering import grow_from_table, neighbor_table
    from ssddbc.ssddbc.merging import merge_isolated_core_clusters

    data, nb, ds, pairwise = ctx["data"], ctx["nb"], ctx["ds"], ctx["pairwise"]
    if route == "matrix":
        knn, matrix, mixed = (nb[:, :k], ds[:, :k]), pairwise, False
    elif route == "candidates":
        knn, matrix, mixed = (nb, ds), None, False
    else:
        knn, matrix, mixed = (nb, ds), pairwise, True
    t = time.perf_counter()
    inputs = validate_inputs(
        data.features, data.targets, data.known_mask, data.labeled_mask, k, [dp],
        AlgorithmParams(), precomputed_knn=knn, pairwise_distances=matrix,
        fast_mode=True, metric="euclidean", eval_version="v1",
    )  # fmt: skip
    per_k = prepare_k(inputs, candidates_with_matrix=mixed)
    high = np.flatnonzero(identify_high_density_points(per_k.relative, dp))
    t1 = time.perf_counter()
    table = neighbor_table(per_k.source, high, k, per_k.co)
    t2 = time.perf_counter()
    core = grow_from_table(high, table, inputs.labeled, inputs.y, per_k.densities)
    t3 = time.perf_counter()
    core = merge_isolated_core_clusters(core, inputs.x, inputs.y, inputs.labeled, per_k.source)
    t4 = time.perf_counter()
    labels = assign_sparse_points(core, per_k.source, 3, 5)
    t5 = time.perf_counter()
    if matrix is not None:
        selection_score(labels, data.targets, data.labeled_mask, pairwise_distances=matrix)
    else:
        # The sampled silhouette from scratch (a fresh sample object: no earlier partition
        # to start from); the search's per-process object reuses the previous partition's
        # sums, see the full-grid table.
        l1_loss(labels, data.targets, data.labeled_mask)
        index, columns = ctx["sample"]
        SilhouetteSample(index, columns, data.labeled_mask).score(labels)
    t6 = time.perf_counter()
    for stage, dt in zip(
        STAGES, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True
    ):
        times.setdefault(stage, []).append(dt)
    glob, n_keep = table
    lists = [g[:c] for g, c in zip(glob.tolist(), n_keep.tolist(), strict=True)]
    ctx["last_growth_inputs"] = (high, lists, inputs.labeled, inputs.y, per_k.densities)
    return labels


def run_profile(args: argparse.Namespace) -> None:
    """Per-stage times of the three routes, growth old/new and per-k sharing (see top)."""
    from knncache import compute_knn
    from ssddbc._distances import pairwise_euclidean
    from ssddbc.evaluation import (
        SILHOUETTE_SAMPLE_SIZE,
        SILHOUETTE_SEED,
        silhouette_rows,
        silhouette_sample_indices,
    )
    from ssddbc.ssddbc._per_k import cluster_percentiles
    from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering

    if args.quick:
        sizes, configs, repeats = [1000], [(3, 40), (10, 75)], 1
    else:
        sizes, repeats = [3000, 13800], args.repeats
        if args.configs == "grid":
            configs = [(k, dp) for k in range(3, 21) for dp in range(40, 100, 5)]
        else:
            configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")]
    if args.sizes:
        sizes = [int(v) for v in args.sizes.split(",")]
    old_growth = _reference_growth()
    k_max = max(k for k, _ in configs)
    print(f"load before: {os.getloadavg()}", flush=True)
    for n in sizes:
        data = _profile_data(n, args.data)
        width = min(n - 1, max(k_max, args.width))
        t = time.perf_counter()
        graph = compute_knn(data.features, width, method=args.method)
        search_s = time.perf_counter() - t
        nb, ds = np.asarray(graph.neighbors), np.asarray(graph.distances)
        t = time.perf_counter()
        pairwise = pairwise_euclidean(data.features) if n <= args.matrix_max else None
        matrix_s = time.perf_counter() - t
        t = time.perf_counter()
        index = silhouette_sample_indices(
            data.labeled_mask, SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED
        )
        sample = (index, np.ascontiguousarray(silhouette_rows(data.features, index).T))
        sample_s = time.perf_counter() - t
        ctx = {"data": data, "nb": nb, "ds": ds, "pairwise": pairwise, "sample": sample}
        routes = [r for r in ROUTES if pairwise is not None or r == "candidates"]
        stage_t: dict[str, dict[str, list[float]]] = {r: {} for r in routes}
        growth_old: list[float] = []
        growth_new: list[float] = []
        for ci, (k, dp) in enumerate(configs):
            per_cfg: dict[str, dict[str, list[float]]] = {r: {} for r in routes}
            g_old, g_new = [], []
            for rep in range(repeats):
                labels = {}
                for j in range(len(routes)):  # rotate the order: interleaved
                    route = routes[(ci + rep + j) % len(routes)]
                    labels[route] = _profile_config(route, ctx, k, dp, per_cfg[route])
                first = labels[routes[0]]
                assert all(np.array_equal(first, v) for v in labels.values()), (n, k, dp)
                if old_growth is not None:
                    args_g = ctx["last_growth_inputs"]
                    pair = [("new", grow_core_clusters_new), ("old", old_growth)]
                    if rep % 2:
                        pair.reverse()
                    got = {}
                    for name, fn in pair:
                        t = time.perf_counter()
                        got[name] = fn(*args_g)
                        (g_new if name == "new" else g_old).append(time.perf_counter() - t)
                    assert np.array_equal(got["new"][0], got["old"][0]), (n, k, dp)
            for r in routes:
                for stage, vals in per_cfg[r].items():
                    stage_t[r].setdefault(stage, []).append(float(np.median(vals)))
            if g_old:
                growth_old.append(float(np.median(g_old[-repeats:])))
                growth_new.append(float(np.median(g_new[-repeats:])))
            print(f"  N={n} k={k} dp={dp} done", flush=True)

        # per k: 12 percentiles as one call vs 12 single calls, on each route
        per_k_rows = []
        for k in [] if args.brief else sorted({k for k, _ in configs}):
            dps = list(range(40, 100, 5))
            for route in routes:
                knn = (nb[:, :k], ds[:, :k]) if route == "matrix" else (nb, ds)
                matrix = None if route == "candidates" else pairwise
                singles, shared = [], []
                for rep in range(repeats):
                    order = ("single", "shared") if rep % 2 == 0 else ("shared", "single")
                    for what in order:
                        t = time.perf_counter()
                        if what == "single":
                            one = [
                                adaptive_density_clustering(
                                    data.features, data.targets, data.known_mask,
                                    data.labeled_mask, k, dp, precomputed_knn=knn,
                                    pairwise_distances=matrix, fast_mode=True,
                                )[0]
                                for dp in dps
                            ]  # fmt: skip
                            singles.append(time.perf_counter() - t)
                        else:
                            many = cluster_percentiles(
                                data.features, data.targets, data.known_mask,
                                data.labeled_mask, k, dps, precomputed_knn=knn,
                                pairwise_distances=matrix, fast_mode=True,
                                graph_candidates=route == "cand+matrix",
                            )  # fmt: skip
                            shared.append(time.perf_counter() - t)
                    assert all(np.array_equal(a, b[0]) for a, b in zip(one, many, strict=True))
                per_k_rows.append((k, route, float(np.median(singles)), float(np.median(shared))))

        print(
            f"\nN={n:,}: search at {width} columns {search_s:.2f}s, pairwise matrix "
            f"{matrix_s:.2f}s, silhouette sample rows {sample_s:.2f}s; load {os.getloadavg()}"
        )
        print(f"configurations: {' '.join(f'{k}:{dp}' for k, dp in configs)}; sums of medians")
        print("| route | " + " | ".join(STAGES) + " | total | total / matrix |")
        print("|---" * (len(STAGES) + 3) + "|")
        totals = {r: sum(sum(v) for v in stage_t[r].values()) for r in routes}
        base = totals.get("matrix")
        for r in routes:
            cells = " | ".join(f"{sum(stage_t[r][s]):.3f}" for s in STAGES)
            ratio = f"{totals[r] / base:.2f}" if base else "-"
            print(f"| {r} | {cells} | {totals[r]:.3f} | {ratio} |")
        if growth_old:
            print(
                f"growth old {sum(growth_old):.3f}s, new {sum(growth_new):.3f}s, "
                f"new/old {sum(growth_new) / sum(growth_old):.3f} (worst config "
                f"{max(growth_old):.3f}s -> {growth_new[int(np.argmax(growth_old))]:.3f}s)"
            )
        print("| k | route | 12 single calls s | cluster_percentiles s | shared / single |")
        print("|---|---|---|---|---|")
        for k, route, single, shared in per_k_rows:
            print(f"| {k} | {route} | {single:.3f} | {shared:.3f} | {shared / single:.2f} |")
        if not args.brief:
            _print_undecided(ctx, configs, sorted({width, min(n - 1, max(k_max, 32)), k_max}))
        if args.full_grid:
            _print_full_grid(ctx, routes, search_s)
    if not args.brief:
        _print_digits_reuse()
    print(f"\nload after: {os.getloadavg()}")


def _print_full_grid(ctx: dict[str, Any], routes: list[str], search_s: float) -> None:
    """All 216 configurations serially, one cluster_percentiles call per k, plus scoring.

    Scored as the search scores them: the exact silhouette from the matrix, or one sampled
    silhouette object for the whole grid (each partition's sums derived from the previous
    one's), with the points it had to add reported.
    """
    from ssddbc.evaluation import l1_loss, selection_score
    from ssddbc.evaluation._sample import SilhouetteSample
    from ssddbc.ssddbc._per_k import cluster_percentiles

    data, nb, ds, pairwise = ctx["data"], ctx["nb"], ctx["ds"], ctx["pairwise"]
    dps = list(range(40, 100, 5))
    print(
        "| route (one call per k) | clustering s | scoring s | total / search "
        "| sampled silhouette: points added / from scratch |"
    )
    print("|---|---|---|---|---|")
    for route in [r for r in routes if r != "matrix"]:
        matrix = pairwise if route == "cand+matrix" else None
        sample = SilhouetteSample(*ctx["sample"], data.labeled_mask)
        cluster_s = score_s = 0.0
        for k in range(3, 21):
            t = time.perf_counter()
            outs = cluster_percentiles(
                data.features, data.targets, data.known_mask, data.labeled_mask, k, dps,
                precomputed_knn=(nb, ds), pairwise_distances=matrix,
            )  # fmt: skip
            t1 = time.perf_counter()
            for out in outs:
                if matrix is not None:
                    selection_score(
                        out[0], data.targets, data.labeled_mask, pairwise_distances=matrix
                    )
                else:
                    l1_loss(out[0], data.targets, data.labeled_mask)
                    sample.score(out[0])
            cluster_s += t1 - t
            score_s += time.perf_counter() - t1
        ratio = (cluster_s + score_s) / search_s
        reuse = f"{sample.points_added / (216 * len(data.targets)):.1%}" if matrix is None else "-"
        print(f"| {route} | {cluster_s:.2f} | {score_s:.2f} | {ratio:.2f} | {reuse} |")


def _print_digits_reuse() -> None:
    """How much a sampled silhouette reuses between partitions on real data (golden digits).

    The synthetic superclasses barely change partition between neighbouring configurations,
    so there the per-worker sample object adds almost nothing after its first table; this
    prints the same measure over the 216-configuration grid of the golden digits split
    (N = 901, a 200-point sample, in the search's order), where partitions do change.
    """
    from knncache import compute_knn
    from ssddbc.evaluation import silhouette_rows, silhouette_sample_indices
    from ssddbc.evaluation._sample import SilhouetteSample
    from ssddbc.ssddbc._per_k import iter_cluster_percentiles

    path = Path(__file__).resolve().parents[1] / "tests/data/golden/original_lowdigits.npz"
    if not path.exists():
        return
    with np.load(path, allow_pickle=False) as z:
        X, y = z["features"], z["targets"]
        known, labeled = z["known_mask"].astype(bool), z["labeled_mask"].astype(bool)
    graph = compute_knn(X, 64)
    index = silhouette_sample_indices(labeled, 200, 0)
    sample = SilhouetteSample(index, np.ascontiguousarray(silhouette_rows(X, index).T), labeled)
    count = 0
    for k in range(3, 21):
        for out in iter_cluster_percentiles(
            X, y, known, labeled, k, list(range(40, 100, 5)),
            precomputed_knn=(graph.neighbors, graph.distances),
        ):  # fmt: skip
            sample.score(np.asarray(out.labels))
            count += 1
    share = sample.points_added / (count * len(X))
    print(
        f"\ngolden digits split (N={len(X)}), {count} configurations: the sampled silhouette "
        f"added {share:.1%} of the points a from-scratch table per configuration adds"
    )


def _print_undecided(ctx: dict[str, Any], configs: list[Any], widths: list[int]) -> None:
    """Rows the candidate graph leaves to distance blocks, per stage and graph width."""
    import ssddbc.ssddbc._candidates as cand
    from ssddbc.ssddbc import assignment, clustering, merging
    from ssddbc.ssddbc._per_k import cluster_percentiles

    counts: dict[str, list[int]] = {}
    patched = [
        (clustering, "subset_neighbors", "within-H"),
        (merging, "three_nearest_choice", "merge"),
        (assignment, "three_nearest_choice", "assign"),
    ]

    def counted(stage: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            out = fn(*a, **kw)
            ok = out[0] if isinstance(out, tuple) else out >= 0
            cell = counts.setdefault(stage, [0, 0])
            cell[0] += int(np.count_nonzero(~ok))
            cell[1] += int(ok.size)
            return out

        return wrapper

    data, nb, ds = ctx["data"], ctx["nb"], ctx["ds"]
    print("| graph width | " + " | ".join(f"{s} undecided" for _, _, s in patched) + " |")
    print("|---" * (len(patched) + 1) + "|")
    try:
        for module, name, stage in patched:
            setattr(module, name, counted(stage, getattr(cand, name)))
        for width in widths:
            counts.clear()
            for k in sorted({k for k, _ in configs}):
                w = max(width, k)
                cluster_percentiles(
                    data.features, data.targets, data.known_mask, data.labeled_mask, k,
                    list(range(40, 100, 5)), precomputed_knn=(nb[:, :w], ds[:, :w]),
                    fast_mode=True,
                )  # fmt: skip
            cells = [counts.get(stage, [0, 0]) for _, _, stage in patched]
            text = " | ".join(f"{u}/{t} ({u / max(1, t):.2%})" for u, t in cells)
            print(f"| {width} | {text} |")
    finally:
        for module, name, _ in patched:
            setattr(module, name, getattr(cand, name))


if __name__ == "__main__":
    main()
