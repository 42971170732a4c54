"""Benchmark: oracle gap of the label-only selection vs the held-out selection.

What it guards: the claim of :mod:`ssddbc.grid_search.heldout` that holding out labelled
samples is a selection worth offering. For each dataset it runs
:func:`~ssddbc.grid_search.heldout.heldout_selection` with several held-out seeds and prints
the oracle gap (the oracle's All accuracy on the evaluation split minus the chosen
configuration's) of the default label-only choice and of the held-out choice: mean and
standard deviation over the seeds for the held-out choice (the label-only choice does not
depend on the seed), and how often each is at least as close to the oracle as the other.

Data: the digits demo superclasses (``ssddbc.data.load_digits_superclass``) and one
synthetic superclass (``ssddbc.data.make_synthetic_superclass``: 3,000 points, d = 768,
5 classes, 3 known).

Run::

    .venv/bin/python benchmarks/bench_selection.py            # full grid, 5 seeds (minutes)
    .venv/bin/python benchmarks/bench_selection.py --quick    # small grid, 1 seed: seconds

Prints one table; exits non-zero if a search fails.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from ssddbc.data import load_digits_superclass, make_synthetic_superclass
from ssddbc.grid_search.heldout import heldout_selection


def _datasets(quick: bool) -> list[Any]:
    synthetic = (
        make_synthetic_superclass(n=600, d=32, seed=0)
        if quick
        else make_synthetic_superclass(n=3000, d=768, seed=0)
    )
    return [
        load_digits_superclass("digits_low"),
        load_digits_superclass("digits_high"),
        synthetic,
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid, one seed (for CI)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default 1 "
                    "with --quick, else 2)")  # fmt: skip
    ap.add_argument("--fraction", type=float, default=0.2, help="held-out share")
    args = ap.parse_args()
    if args.quick:
        ks, dps, seeds = [3, 5, 8], [40, 70], [0]
    else:
        ks, dps, seeds = list(range(3, 16)), list(range(40, 100, 10)), [0, 1, 2, 3, 4]
    workers = args.workers or (1 if args.quick else 2)
    print(
        f"grid: k {ks[0]}..{ks[-1]} ({len(ks)}) x density {dps[0]}..{dps[-1]} ({len(dps)}); "
        f"held-out fraction {args.fraction}; seeds {seeds}; {workers} worker(s)"
    )
    print(
        "| dataset | N | oracle All | label-only k/dp | label-only gap | held-out k/dp (seeds) "
        "| held-out gap mean ± std | held-out <= label-only | seconds |"
    )
    print("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |")
    for data in _datasets(args.quick):
        t0 = time.perf_counter()
        runs = [
            heldout_selection(
                data.features,
                data.targets,
                data.known_mask,
                data.labeled_mask,
                ks,
                dps,
                fraction=args.fraction,
                seed=s,
                max_workers=workers,
            )
            for s in seeds
        ]
        seconds = time.perf_counter() - t0
        lo = runs[0].label_only
        gaps = [r.heldout.oracle_gap for r in runs]
        std = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
        cells = ",".join(f"{r.heldout.k}/{r.heldout.density_percentile}" for r in runs)
        better = sum(g <= lo.oracle_gap for g in gaps)
        print(
            f"| {data.name} | {data.features.shape[0]:,} | {runs[0].oracle.all_acc:.4f} "
            f"| {lo.k}/{lo.density_percentile} | {lo.oracle_gap:.4f} | {cells} "
            f"| {statistics.mean(gaps):.4f} ± {std:.4f} | {better}/{len(gaps)} | {seconds:.1f} |"
        )
    print(
        "(gap: oracle All accuracy minus the chosen configuration's, on the unlabelled samples; "
        "the oracle uses their ground truth and is for reference only)"
    )


if __name__ == "__main__":
    main()
