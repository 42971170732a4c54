"""Choosing the best configuration and summarising a run (``summary.json``, the table).

:func:`select_best` is the one selection rule, used by the API and the batch runner alike:
the highest label-only score, ties to the first cell in grid order (k outer, density
percentile inner, as the original serial search visited it), so parallel and serial
searches select the same cell.

Each superclass's entry also carries the selection's warnings
(:func:`~ssddbc.grid_search._diagnose.selection_warnings`) and, when they were run, the
k-means baselines on the same split (:func:`ssddbc.baselines.run_baselines`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ssddbc.baselines import BASELINES
from ssddbc.grid_search._diagnose import selection_warnings
from ssddbc.grid_search._inputs import describe_graph
from ssddbc.grid_search._tasks import ConfigResult

__all__ = [
    "PSEUDO_LABELS",
    "format_summary",
    "format_warning",
    "oracle_entry",
    "oracle_key",
    "select_best",
    "summarise",
]

#: A finished superclass's pseudo-labels in the run folder: ``<run>/<superclass>/<this>``.
PSEUDO_LABELS = "pseudo_labels.npz"

#: The summary's accuracy columns (All/Old/New, accuracy v2 on the evaluation split).
_ACC = ("all_acc", "old_acc", "new_acc")


def oracle_key(eval_split: str) -> str:
    """The summary field of the oracle choice: it names the split it peeked at."""
    return f"oracle_best_by_{eval_split}_accuracy"


def oracle_entry(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A superclass's oracle choice, whatever split its name says (older runs included)."""
    for key, value in entry.items():
        if key.startswith("oracle_best_by_") and isinstance(value, dict):
            return value
    return None


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
    n_classes: Mapping[str, int] | None = None,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` payload of a run.

    ``knn`` maps each superclass to its knn block (store, fingerprint, searches, hits); a
    superclass with nothing left to run in this invocation keeps the block of the
    invocation that prepared it. ``n_classes`` (per superclass, the number of classes of
    its data) enables the too-many-clusters warning; ``baselines`` (per superclass, what
    :func:`ssddbc.baselines.run_baselines` returned) is recorded as each entry's
    ``baselines``.
    """
    n_classes = n_classes or {}
    baselines = baselines or {}
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
            best = select_best(ok, order)
            entry["selected"] = _describe(best, "label-only score (-L1 + 3*silhouette)")
            entry["ties_at_best_score"] = sum(r.score == best.score for r in ok)
            oracle = min(
                ok, key=lambda r: (-_nan_low(r.all_acc), order.index((r.k, r.density_percentile)))
            )
            entry[oracle_key(eval_split)] = _describe(
                oracle, "ORACLE: uses ground truth of the evaluated samples; for reference only"
            )
            entry["oracle_gap"] = {a: getattr(oracle, a) - getattr(best, a) for a in _ACC}
        if name in n_classes:
            entry["n_classes"] = int(n_classes[name])
        entry["warnings"] = (
            selection_warnings(k_values, density_values, entry["selected"], n_classes.get(name))
            if "selected" in entry
            else []
        )
        if name in baselines:
            entry["baselines"] = {b: dict(baselines[name][b]) for b in BASELINES}
        if name in knn:
            entry["knn"] = knn[name]
        entry["errors"] = {f"k={r.k},dp={r.density_percentile}": r.error for r in rs if not r.ok}
        per[name] = entry
    return {
        "selection": "label-only score = -L1 + 3.0 * silhouette (no ground truth beyond the "
        "labelled samples)",
        "evaluated_on": eval_split,
        "mean": _mean(per),
        "k_values": list(k_values),
        "density_values": list(density_values),
        "superclasses": per,
        "failed_configurations": sum(e["failed"] for e in per.values()),
        "knn_fallback_configurations": sum(e["knn_fallback_configurations"] for e in per.values()),
        "this_invocation": invocation,
    }


def _mean(per: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Means over the superclasses with a selection (how GCD papers report superclasses)."""
    chosen = [e for e in per.values() if "selected" in e]
    oracles = [o for o in (oracle_entry(e) for e in chosen) if o is not None]
    out: dict[str, Any] = {"superclasses": len(chosen)}
    for label, rows in (("selected", [e["selected"] for e in chosen]), ("oracle", oracles)):
        out[label] = {a: _average([r[a] for r in rows]) for a in ("score", *_ACC)}
    out["oracle_gap"] = {a: _average([e["oracle_gap"][a] for e in chosen]) for a in _ACC}
    return out


def _average(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def _fmt(x: float | None) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.4f}"


def _gap(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.4f}"


def _row(label: str, r: Mapping[str, Any], tail: str = "") -> str:
    k = f"{r['k']:>3}" if "k" in r else "   "
    dp = f"{r['density_percentile']:>3}" if "density_percentile" in r else "   "
    clusters = f"{r['n_clusters']:>4}" if "n_clusters" in r else "    "
    score = r["score"]
    shown = "    n/a" if isinstance(score, float) and math.isnan(score) else f"{score:7.4f}"
    return (
        f"{label:<20} {k} {dp} {shown} {_fmt(r['all_acc'])} {_fmt(r['old_acc'])} "
        f"{_fmt(r['new_acc'])} {clusters}{tail}"
    ).rstrip()


def _baseline_row(name: str, b: Mapping[str, Any]) -> str:
    return (
        f"{'  ' + name:<20} {'':>3} {'':>3} {'':>7} {_fmt(b['all_acc'])} {_fmt(b['old_acc'])} "
        f"{_fmt(b['new_acc'])} {b['n_clusters']:>4}        {b['seconds']:.1f}s"
    )


def format_warning(name: str, warning: Mapping[str, Any]) -> str:
    """One selection warning as a progress line: ``suspect selection for <name>: <message>``."""
    return f"suspect selection for {name}: {warning['message']}"


def _sampled_note(summary: Mapping[str, Any]) -> str | None:
    """One line naming the superclasses whose silhouette was sampled (None: all exact)."""
    sampled = [
        name
        for name, e in summary["superclasses"].items()
        if str(e.get("silhouette", "")).startswith("sampled")
    ]
    if not sampled:
        return None
    return (
        f"(silhouette sampled for {', '.join(sampled)}: the mean over a seeded sample of "
        "unlabelled points, N above the plan's exact_silhouette_max_n; sample size and "
        "standard error in summary.json)"
    )


def _outputs(summary: Mapping[str, Any], run_dir: Path) -> str:
    """The run folder's output files that exist, by kind (a partial run has fewer)."""
    parts = []
    for label, name in (("results", "results.csv"), ("summary", "summary.json")):
        if (run_dir / name).is_file():
            parts.append(f"{label}: {run_dir / name}")
    # The heatmaps the run recorded (its --plot_format order) that exist; a partial run has
    # recorded none, so those found.
    recorded = [n for n in summary.get("heatmaps") or [] if isinstance(n, str)]
    found = {p.name for p in run_dir.glob("heatmap_*") if p.is_file()}
    maps = [n for n in recorded if n in found] if recorded else sorted(found)
    if maps:
        formats = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in maps))
        ext = formats[0] if len(formats) == 1 else "{" + ",".join(formats) + "}"
        parts.append(f"heatmaps: {run_dir}/heatmap_*.{ext}")
    labelled = [n for n in summary["superclasses"] if (run_dir / n / PSEUDO_LABELS).is_file()]
    if labelled:
        parts.append(f"pseudo-labels: {run_dir}/<superclass>/{PSEUDO_LABELS} ({len(labelled)})")
    return "  ".join(parts)


def format_summary(summary: Mapping[str, Any], run_dir: Path) -> str:
    """The table ``ssddbc-search`` prints at the end of a run (and ``--show`` re-prints).

    Per superclass the label-only selection (with how many cells tie at its score), the
    oracle best (with its All/Old/New gap over the selection), the k-means baselines when
    run, and the selection's warnings; with several superclasses, a mean row of each. The
    last line names the run folder's output files that exist.
    """
    split = summary["evaluated_on"]
    lines = [
        "",
        f"{'superclass':<20} {'k':>3} {'dp':>3} {'score':>7} {'All':>6} {'Old':>6} "
        f"{'New':>6} {'clus':>4} {'ties':>4}   (label-only selection; ties: cells at its "
        f"score; accuracy v2 on the {split} split)",
    ]
    for name, e in summary["superclasses"].items():
        s = e.get("selected")
        if s is None:
            lines.append(f"{name:<20} no successful configuration")
            continue
        ties = e.get("ties_at_best_score")
        lines.append(_row(name, s, f" {ties:>4}" if ties else ""))
        knn = e.get("knn", {})
        if knn.get("method", "exact") != "exact":
            lines.append(f"{'':<20} neighbour graph: {describe_graph(knn)}")
        o = oracle_entry(e)
        if o is not None:
            gap = e.get("oracle_gap") or {a: o[a] - s[a] for a in _ACC}
            lines.append(
                _row(
                    "  (oracle best)",
                    o,
                    f"        gap All {_gap(gap['all_acc'])} Old {_gap(gap['old_acc'])} "
                    f"New {_gap(gap['new_acc'])}",
                )
            )
        for b, values in (e.get("baselines") or {}).items():
            lines.append(_baseline_row(b, values))
        lines += [f"  warning: {w['message']}" for w in e.get("warnings", [])]
    mean = summary.get("mean")
    if mean and mean["superclasses"] > 1:
        gap = mean["oracle_gap"]
        lines.append(_row(f"mean of {mean['superclasses']}", mean["selected"]))
        lines.append(
            _row(
                "  (oracle mean)",
                mean["oracle"],
                f"        gap All {_gap(gap['all_acc'])} Old {_gap(gap['old_acc'])} "
                f"New {_gap(gap['new_acc'])}",
            )
        )
    lines.append(
        f"(oracle: the best All accuracy on the {split} split; it uses ground truth, for "
        "reference only)"
    )
    if any(e.get("baselines") for e in summary["superclasses"].values()):
        lines.append(
            "(k-means, SS-k-means: the baselines with the true number of classes, on the same "
            "samples and split; the last column is their time)"
        )
    note = _sampled_note(summary)
    if note is not None:
        lines.append(note)
    inv = summary.get("this_invocation")
    lines.append("")
    if inv:
        lines.append(
            f"knn: {inv['knn_searches']} neighbour search(es) run, {inv['knn_cache_hits']} "
            f"cache hit(s); {summary['failed_configurations']} configuration(s) failed; "
            f"{summary['knn_fallback_configurations']} recomputed the graph in a worker; "
            f"{inv['seconds']:.1f}s with {inv['workers']} worker(s)"
        )
    lines.append(_outputs(summary, Path(run_dir)))
    return "\n".join(lines)
