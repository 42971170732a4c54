"""The end of a run and ``--show``: the journal in grid order, summary, heatmaps, reports.

:func:`finish_run` writes a run's outputs from its results (with the k-means baselines on
the same split, unless skipped); :func:`show_run` re-prints a run folder's table from its
files, writing nothing, and for an interrupted run how far each superclass got.
:func:`format_grid` is the resolved grid's line printed when a run starts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssddbc._errors import SsddbcError
from ssddbc._metric import l2_normalize
from ssddbc.baselines import BASELINES, run_baselines
from ssddbc.grid_search._config import RunConfig, now
from ssddbc.grid_search._console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    IOFailure,
    say,
)
from ssddbc.grid_search._files import write_json
from ssddbc.grid_search._inputs import APPROXIMATE_NOTE
from ssddbc.grid_search._journal import ResultsJournal
from ssddbc.grid_search._plots import plot_heatmap
from ssddbc.grid_search._report import format_text_report, write_text_report
from ssddbc.grid_search._summary import format_summary, format_warning, oracle_entry, summarise
from ssddbc.grid_search._tasks import ConfigResult

__all__ = ["KNN_FILE", "finish_run", "format_grid", "previous_knn", "record_knn", "show_run"]


def _span(values: Sequence[int]) -> str:
    """``3..20``, ``40..90 step 5``, ``12`` or an explicit list when the step varies."""
    if len(values) == 1:
        return str(values[0])
    steps = {b - a for a, b in itertools.pairwise(values)}
    if len(steps) == 1 and (step := steps.pop()) > 0:
        return f"{values[0]}..{values[-1]}" + (f" step {step}" if step != 1 else "")
    return ",".join(map(str, values))


def format_grid(k_values: Sequence[int], density_values: Sequence[int], n_sets: int = 1) -> str:
    """The resolved grid, e.g. ``k 3..20 (18) × density 40..90 step 5 (11) = 198 configurations``.

    With ``n_sets`` > 1 superclasses the line adds the count per superclass and in all.
    """
    per = len(k_values) * len(density_values)
    text = (
        f"k {_span(k_values)} ({len(k_values)}) × density {_span(density_values)} "
        f"({len(density_values)}) = {per} configurations"
    )
    if n_sets > 1:
        text += f" per superclass, {per * n_sets} for {n_sets} superclasses"
    return text


def finish_run(
    cfg: RunConfig,
    journal: ResultsJournal,
    results: dict[tuple[str, int, int], ConfigResult],
    knn: dict[str, dict[str, Any]],
    invocation: dict[str, Any],
    quiet: bool,
    plot_formats: Sequence[str] = ("png",),
    *,
    model_path: str | None = None,
    data: Mapping[str, tuple[Any, Any, str]] | None = None,
    baselines: bool = True,
) -> int:
    """Write the run's outputs, print its table; return the exit status.

    ``data`` (``{superclass: (SuperclassData, eval_mask, fingerprint)}``, as the run loaded
    it) gives the number of classes the selection warnings compare with and, unless
    ``baselines`` is False, the inputs of the k-means baselines (run here, on the same
    samples, metric and evaluation split as the search).
    """
    ordered = [results[c] for c in cfg.cells() if c in results]
    try:
        journal.rewrite(ordered)
    except OSError as exc:
        raise IOFailure() from exc
    data = data or {}
    summary = summarise(
        superclasses=cfg.superclasses,
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        eval_split=cfg.eval_split,
        results=ordered,
        knn=knn,
        invocation=invocation,
        n_classes={n: int(np.unique(d.targets).size) for n, (d, _, _) in data.items()},
        baselines=_baselines(cfg, data, quiet) if baselines else None,
    )
    run_dir = journal.path.parent
    summary["heatmaps"] = [f"heatmap_{n}.{f}" for n in cfg.superclasses for f in plot_formats]
    try:
        write_json(run_dir / "summary.json", summary)
        for name in cfg.superclasses:
            sel = summary["superclasses"][name]
            plot_heatmap(
                run_dir / f"heatmap_{name}",
                f"SS-DDBC grid search: {name}",
                [r for r in ordered if r.group == name],
                cfg.k_values,
                cfg.density_values,
                _cell(sel.get("selected")),
                _cell(oracle_entry(sel)),
                eval_split=cfg.eval_split,
                formats=plot_formats,
            )
            _write_report(run_dir, cfg, name, ordered, sel, invocation, model_path)
    except OSError as exc:
        raise IOFailure() from exc
    _record_finish(cfg, run_dir)
    # Always on stdout, even with --quiet: the table is the run's answer.
    print(format_summary(summary, run_dir), flush=True)
    _warn(summary, quiet)
    return EXIT_FAILED if summary["failed_configurations"] else EXIT_OK


def _baselines(
    cfg: RunConfig, data: Mapping[str, tuple[Any, Any, str]], quiet: bool
) -> dict[str, dict[str, Any]]:
    """k-means and SS-k-means per superclass, with the true number of classes."""
    out = {}
    for name in cfg.superclasses:
        if name not in data:
            continue
        d, eval_mask, _ = data[name]
        started = time.perf_counter()
        features = l2_normalize(d.features) if cfg.metric == "cosine" else d.features
        out[name] = run_baselines(features, d.targets, d.known_mask, d.labeled_mask, eval_mask)
        say(
            f"{name}: baselines k-means and SS-k-means in {time.perf_counter() - started:.1f}s",
            quiet,
        )
    return out


def _warn(summary: Mapping[str, Any], quiet: bool) -> None:
    """The selection warnings, one stderr line each after the table (hidden by --quiet,
    like all progress: the table on stdout and summary.json carry them too)."""
    for name, entry in summary["superclasses"].items():
        for w in entry.get("warnings", []):
            say(f"{PROG}: {format_warning(name, w)}", quiet)


def _write_report(
    run_dir: Path,
    cfg: RunConfig,
    name: str,
    ordered: list[ConfigResult],
    sel: dict[str, Any],
    invocation: dict[str, Any],
    model_path: str | None,
) -> None:
    """``<run>/<name>/<name>.txt``: the original runner's report, for its tools."""
    rows = [r for r in ordered if r.group == name]
    text = format_text_report(
        name,
        {(r.k, r.density_percentile): r.metrics() for r in rows if r.ok},
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        model_path=model_path,
        feature_cache_dir=cfg.feature_cache_dir,
        workers=int(invocation["workers"]),
        seconds=float(invocation["seconds"]),
        selected=_cell(sel.get("selected")),
        failed=[(r.k, r.density_percentile) for r in rows if not r.ok],
    )
    write_text_report(run_dir / name / f"{name}.txt", text)


def _record_finish(cfg: RunConfig, run_dir: Path) -> None:
    """Rewrite config.json with this invocation's end time (the rest is as it was)."""
    path = run_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        env = raw.setdefault("environment", {})
        if env.get("finished") is not None:  # a resumed run: keep each invocation's end
            env.setdefault("earlier_finishes", []).append(env["finished"])
        env["finished"] = now()
        write_json(path, raw)
    except (OSError, ValueError, AttributeError) as exc:
        raise IOFailure() from exc


def show_run(run_dir: Path) -> int:
    """``--show RUN_DIR``: re-print a run's table from its files (nothing is written)."""
    try:
        cfg = RunConfig.read(run_dir)
        rows = ResultsJournal(run_dir / "results.csv").read(repair=False)
    except SsddbcError as exc:
        print(f"{PROG}: error: --show: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    latest = {r.cell: r for r in rows}  # a retried configuration: its last row counts
    ordered = [latest[c] for c in cfg.cells() if c in latest]
    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        previous = loaded if isinstance(loaded, dict) else {}
    invocation = previous.get("this_invocation")
    entries = previous.get("superclasses")
    entries = entries if isinstance(entries, dict) else {}
    summary = summarise(
        superclasses=cfg.superclasses,
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        eval_split=cfg.eval_split,
        results=ordered,
        knn=previous_knn(run_dir, cfg),
        invocation=invocation if isinstance(invocation, dict) else {},
        n_classes=_recorded(entries, "n_classes", int),
        baselines={
            n: b for n, b in _recorded(entries, "baselines", dict).items() if _baselines_ok(b)
        },
    )
    print(f"run folder: {run_dir.resolve()}")
    print(format_summary(summary, run_dir), flush=True)
    total = len(cfg.cells())
    done = sum(r.ok for r in ordered)
    missing = total - len(ordered)
    if missing:
        for line in _progress(cfg, ordered):
            print(line, flush=True)
        print(
            f"interrupted: {missing} of {total} configurations missing ({done} done); "
            f"resume with: {PROG} --resume {run_dir}",
            flush=True,
        )
    return EXIT_OK if missing == 0 and done == total else EXIT_FAILED


def _recorded(entries: Mapping[str, Any], field: str, kind: type) -> dict[str, Any]:
    """A field of each superclass's entry in an earlier summary.json (well-typed ones)."""
    return {
        name: e[field]
        for name, e in entries.items()
        if isinstance(e, dict)
        and isinstance(e.get(field), kind)
        and not isinstance(e.get(field), bool)
    }


def _baselines_ok(block: Mapping[str, Any]) -> bool:
    """An earlier summary's baselines block has every baseline and number the table shows."""
    fields = ("all_acc", "old_acc", "new_acc", "n_clusters", "seconds")
    return all(
        isinstance(block.get(b), dict)
        and all(
            isinstance(block[b].get(f), (int, float)) and not isinstance(block[b].get(f), bool)
            for f in fields
        )
        for b in BASELINES
    )


def _progress(cfg: RunConfig, ordered: Sequence[ConfigResult]) -> list[str]:
    """Per superclass, configurations with a row of the grid's total (an interrupted run)."""
    per = len(cfg.k_values) * len(cfg.density_values)
    width = max(len(n) for n in cfg.superclasses)
    lines = []
    for name in cfg.superclasses:
        rows = [r for r in ordered if r.group == name]
        failed = sum(not r.ok for r in rows)
        state = "done" if len(rows) == per else "PARTLY DONE" if rows else "not started"
        extra = f", {failed} failed" if failed else ""
        lines.append(f"  {name:<{width}}  {len(rows)}/{per} configurations ({state}{extra})")
    return lines


#: The run folder's record of each superclass's knn block, written once the inputs are
#: prepared (before any configuration runs), so an interrupted run keeps them for its resume.
KNN_FILE = "knn.json"


def record_knn(run_dir: Path, knn: dict[str, dict[str, Any]]) -> None:
    """Write the knn blocks known so far to ``run_dir/knn.json`` (atomically)."""
    try:
        write_json(run_dir / KNN_FILE, knn)
    except OSError as exc:
        raise IOFailure() from exc


def previous_knn(run_dir: Path, cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """The knn blocks of an earlier invocation (kept for superclasses not prepared again).

    From ``knn.json`` (written before the configurations run, so an interrupted run has it)
    and an earlier ``summary.json``; ``knn.json`` wins. Only the blocks that belong to the
    run ``cfg`` are kept (a run folder may have been edited, see :func:`_matching_knn`).
    """
    out: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        raw = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        out.update(
            (name, entry["knn"])
            for name, entry in raw["superclasses"].items()
            if isinstance(entry, dict) and isinstance(entry.get("knn"), dict)
        )
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        recorded = json.loads((run_dir / KNN_FILE).read_text(encoding="utf-8"))
        out.update((name, block) for name, block in recorded.items() if isinstance(block, dict))
    return _matching_knn(cfg, out)


def _matching_knn(cfg: RunConfig, blocks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorded knn blocks that belong to this run: its superclasses, their features'
    fingerprint and its engine (a block of another run or an edited one is dropped)."""
    out = {}
    per = cfg.identity.get("superclasses", {})
    for name, block in blocks.items():
        recorded = per.get(name)
        params = block.get("params")
        if (
            isinstance(recorded, dict)
            and block.get("fingerprint") == recorded.get("features")
            and block.get("method") == cfg.knn_method
            and isinstance(params, dict)
            and all(params.get(k) == v for k, v in cfg.knn_params.items())
            and (cfg.knn_method == "exact" or _recall_ok(block.get("recall")))
        ):
            out[name] = block if cfg.knn_method == "exact" else {**block, "note": APPROXIMATE_NOTE}
    return out


def _recall_ok(recall: Any) -> bool:
    return isinstance(recall, dict) and all(
        isinstance(recall.get(f), (int, float)) for f in ("k", "value", "sample")
    )


def _cell(entry: dict[str, Any] | None) -> tuple[int, int] | None:
    if not entry:
        return None
    return int(entry["k"]), int(entry["density_percentile"])
