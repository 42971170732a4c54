"""Guards the per-task cost of getting a KNN graph into a worker process.

A grid search sends hundreds of tasks (k = 3..21, 12 configurations per k: 228 tasks) to a
pool of worker processes; each needs the graph of the same N=3,000 × d=768 features at its k.
Three ways to ship it, 2 spawn workers:

(a) the whole per-k dict ``{k: (neighbors[:, :k], distances[:, :k])}`` pickled into each task
    (what the original research code did);
(b) only the task's k arrays pickled into the task;
(c) a ``knncache.KnnRef`` (a few hundred bytes) and ``ref.load(k)``: read-only memory maps.

Measured per task: inside the worker, unpickling the payload plus getting the arrays (the
payload travels as bytes so that its unpickling is timed); end to end in the parent,
submit → result of one task at a time (latency); and the wall time of all tasks submitted at
once, divided by the number of tasks (throughput). Targets: (c) ≤ 0.3 ms per task in the
worker and ≥ 50× cheaper than (a).

Run::

    .venv/bin/python benchmarks/bench_transfer.py            # full size, ~1 minute
    .venv/bin/python benchmarks/bench_transfer.py --quick    # small, a few seconds (CI)
"""

from __future__ import annotations

import argparse
import multiprocessing
import pickle
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from knncache import EphemeralStore, compute_knn


def _worker_noop() -> int:
    import knncache  # noqa: F401  # warm the worker's imports before timing

    return 0


def _task_dict(payload: bytes, k: int) -> float:
    t0 = time.perf_counter()
    graphs = pickle.loads(payload)
    nb, ds = graphs[k]
    _ = (nb.shape, ds.shape)
    return time.perf_counter() - t0


def _task_one(payload: bytes, k: int) -> float:
    t0 = time.perf_counter()
    nb, ds = pickle.loads(payload)
    _ = (nb.shape, ds.shape)
    return time.perf_counter() - t0


def _task_ref(payload: bytes, k: int) -> float:
    t0 = time.perf_counter()
    ref = pickle.loads(payload)
    nb, ds = ref.load(k)
    _ = (nb.shape, ds.shape)
    return time.perf_counter() - t0


def _run(
    pool: ProcessPoolExecutor, fn: Any, payloads: list[tuple[bytes, int]]
) -> tuple[float, float, float, int]:
    # Latency: one task at a time, submit -> result.
    latencies = []
    inside = []
    for payload, k in payloads:
        t0 = time.perf_counter()
        inside.append(pool.submit(fn, payload, k).result())
        latencies.append(time.perf_counter() - t0)
    # Throughput: everything at once.
    t0 = time.perf_counter()
    futures = [pool.submit(fn, payload, k) for payload, k in payloads]
    for f in futures:
        f.result()
    wall = (time.perf_counter() - t0) / len(payloads)
    size = statistics.median(len(p) for p, _ in payloads)
    return statistics.median(inside), statistics.median(latencies), wall, int(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, 38 tasks (CI)")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--per-k", type=int, default=12, help="tasks per k")
    args = parser.parse_args(argv)
    n, d, per_k = (500, 64, 2) if args.quick else (args.n, args.d, args.per_k)
    ks = list(range(3, 22))
    k_max = ks[-1]

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    graph = compute_knn(X, k_max)
    per_k_dict = {
        k: (
            np.ascontiguousarray(graph.neighbors[:, :k]),
            np.ascontiguousarray(graph.distances[:, :k]),
        )
        for k in ks
    }
    tasks = [k for k in ks for _ in range(per_k)]
    dict_bytes = pickle.dumps(per_k_dict, protocol=pickle.HIGHEST_PROTOCOL)

    ctx = multiprocessing.get_context("spawn")
    with EphemeralStore() as store, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        ref = store.ensure(X, k_max, store_features=False)
        ref_bytes = pickle.dumps(ref, protocol=pickle.HIGHEST_PROTOCOL)
        for f in [pool.submit(_worker_noop) for _ in range(8)]:
            f.result()
        variants = [
            ("(a) whole per-k dict pickled", _task_dict, [(dict_bytes, k) for k in tasks]),
            (
                "(b) one k's arrays pickled",
                _task_one,
                [(pickle.dumps(per_k_dict[k], protocol=pickle.HIGHEST_PROTOCOL), k) for k in tasks],
            ),
            ("(c) KnnRef + ref.load(k) memmap", _task_ref, [(ref_bytes, k) for k in tasks]),
        ]
        results = [(name, *_run(pool, fn, payloads)) for name, fn, payloads in variants]

    print(
        f"bench_transfer: N={n}, d={d}, {len(tasks)} tasks (k={ks[0]}..{k_max}, {per_k} per k), "
        "2 spawn workers; medians"
    )
    print(
        f"{'variant':34} {'payload':>10} {'worker ms':>10} {'latency ms':>11} "
        f"{'wall/task ms':>13} {'(a)/x worker':>13} {'(a)/x latency':>14}"
    )
    worker_a, latency_a = results[0][1], results[0][2]
    for name, inside, latency, wall, size in results:
        print(
            f"{name:34} {size / 1024:8.1f}KB {inside * 1e3:10.3f} {latency * 1e3:11.3f} "
            f"{wall * 1e3:13.3f} {worker_a / inside:12.1f}× {latency_a / latency:13.1f}×"
        )
    c_inside, c_latency, c_wall = results[2][1], results[2][2], results[2][3]
    print(
        f"(c) per task in the worker: {c_inside * 1e3:.3f} ms (target ≤ 0.3 ms); "
        f"(a)/(c): {worker_a / c_inside:.0f}× in the worker, {latency_a / c_latency:.0f}× "
        f"submit→result, {results[0][3] / c_wall:.0f}× wall per task (target ≥ 50×)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
