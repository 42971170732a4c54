"""Choosing the best configuration and summarising a run (``summary.json``, the table).

:func:`select_best` is the one selection rule, used by the API and the batch runner alike:
the highest label-only score, ties to the first cell in grid order (k outer, density
percentile inner, as the original serial search visited it), so parallel and serial
searches select the same cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ssddbc.grid_search._tasks import ConfigResult

__all__ = ["format_summary", "select_best", "summarise"]


def select_best(results: Iterable[ConfigResult], order: Sequence[tuple[int, int]]) -> ConfigResult:
    """The successful result with the highest score; ties go to the first in grid order.

    Raises
    ------
    ValueError
        No successful configuration with a finite score.
    """
    rank = {c: i for i, c in enumerate(order)}
    ok = [r for r in results if r.ok and not math.isnan(r.score)]
    if not ok:
        raise ValueError("no successful configuration")
    return min(ok, key=lambda r: (-r.score, rank[(r.k, r.density_percentile)]))


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def _describe(r: ConfigResult, how: str) -> dict[str, Any]:
    return {
        "k": r.k,
        "density_percentile": r.density_percentile,
        "chosen_by": how,
        "score": r.score,
        "l1_loss": r.l1_loss,
        "silhouette": r.silhouette,
        "silhouette_se": r.silhouette_se,
        "all_acc": r.all_acc,
        "old_acc": r.old_acc,
        "new_acc": r.new_acc,
        "n_clusters": r.n_clusters,
    }


def summarise(
    *,
    superclasses: Sequence[str],
    k_values: Sequence[int],
    density_values: Sequence[int],
    eval_split: str,
    results: Sequence[ConfigResult],
    knn: Mapping[str, dict[str, Any]],
    invocation: dict[str, Any],
) -> dict[str, Any]:
    """The ``summary.json`` payload of a run.

    ``knn`` maps each superclass to its knn block (store, fingerprint, searches, hits); a
    superclass with nothing left to run in this invocation keeps the block of the
    invocation that prepared it.
    """
    per: dict[str, Any] = {}
    order = [(k, dp) for k in k_values for dp in density_values]
    for name in superclasses:
        rs = [r for r in results if r.group == name]
        ok = [r for r in rs if r.ok]
        entry: dict[str, Any] = {
            "configurations": len(order),
            "completed": len(ok),
            "failed": len(rs) - len(ok),
            "knn_fallback_configurations": sum(r.knn_fallback for r in rs),
        }
        sampled = max((r.silhouette_sample for r in ok), default=0)
        entry["silhouette"] = (
            f"sampled: mean over a seeded sample of {sampled} unlabelled points (N above the "
            "plan's exact_silhouette_max_n), its standard error in silhouette_se"
            if sampled
            else "exact: mean over all unlabelled points"
        )
        if ok:
            entry["selected"] = _describe(
                select_best(ok, order), "label-only score (-L1 + 3*silhouette)"
            )
            oracle = min(
                ok, key=lambda r: (-_nan_low(r.all_acc), order.index((r.k, r.density_percentile)))
            )
            entry["oracle_best_by_test_accuracy"] = _describe(
                oracle, "ORACLE: uses ground truth of the evaluated samples; for reference only"
            )
        if name in knn:
            entry["knn"] = knn[name]
        entry["errors"] = {f"k={r.k},dp={r.density_percentile}": r.error for r in rs if not r.ok}
        per[name] = entry
    return {
        "selection": "label-only score = -L1 + 3.0 * silhouette (no ground truth beyond the "
        "labelled samples)",
        "evaluated_on": eval_split,
        "k_values": list(k_values),
        "density_values": list(density_values),
        "superclasses": per,
        "failed_configurations": sum(e["failed"] for e in per.values()),
        "knn_fallback_configurations": sum(e["knn_fallback_configurations"] for e in per.values()),
        "this_invocation": invocation,
    }


def _fmt(x: float | None) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.4f}"


def format_summary(summary: dict[str, Any], run_dir: Any) -> str:
    """The table ``ssddbc-search`` prints at the end of a run."""
    lines = [
        "",
        f"{'superclass':<20} {'k':>3} {'dp':>3} {'score':>7} {'All':>6} {'Old':>6} "
        f"{'New':>6} {'clus':>4}   (selected by label-only score; accuracy v2 on "
        f"{summary['evaluated_on']} split)",
    ]
    for name, e in summary["superclasses"].items():
        s = e.get("selected")
        if s is None:
            lines.append(f"{name:<20} no successful configuration")
            continue
        lines.append(
            f"{name:<20} {s['k']:>3} {s['density_percentile']:>3} {s['score']:7.4f} "
            f"{_fmt(s['all_acc'])} {_fmt(s['old_acc'])} {_fmt(s['new_acc'])} "
            f"{s['n_clusters']:>4}"
        )
        if e["silhouette"].startswith("sampled"):
            lines.append(f"{'':<20} silhouette {e['silhouette']}")
        o = e["oracle_best_by_test_accuracy"]
        lines.append(
            f"{'  (oracle best)':<20} {o['k']:>3} {o['density_percentile']:>3} "
            f"{o['score']:7.4f} {_fmt(o['all_acc'])} {_fmt(o['old_acc'])} "
            f"{_fmt(o['new_acc'])} {o['n_clusters']:>4}"
        )
    inv = summary["this_invocation"]
    lines.append("")
    lines.append(
        f"knn: {inv['knn_searches']} neighbour search(es) run, {inv['knn_cache_hits']} "
        f"cache hit(s); {summary['failed_configurations']} configuration(s) failed; "
        f"{summary['knn_fallback_configurations']} recomputed the graph in a worker; "
        f"{inv['seconds']:.1f}s with {inv['workers']} worker(s)"
    )
    formats = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in summary.get("heatmaps", ["x.png"])))
    ext = formats[0] if len(formats) == 1 else "{" + ",".join(formats) + "}"
    lines.append(
        f"results: {run_dir / 'results.csv'}  summary: {run_dir / 'summary.json'}  "
        f"heatmaps: {run_dir}/heatmap_*.{ext}"
    )
    return "\n".join(lines)
