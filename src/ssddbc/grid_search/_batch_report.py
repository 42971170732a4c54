"""The end of a run and ``--show``: the journal in grid order, summary, heatmaps, reports.

:func:`finish_run` writes a run's outputs from its results; :func:`show_run` re-prints a run
folder's table from its files, writing nothing. :func:`format_grid` is the resolved grid's
line printed when a run starts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssddbc._errors import SsddbcError
from ssddbc.grid_search._config import RunConfig, now
from ssddbc.grid_search._console import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, PROG, IOFailure
from ssddbc.grid_search._files import write_json
from ssddbc.grid_search._inputs import APPROXIMATE_NOTE
from ssddbc.grid_search._journal import ResultsJournal
from ssddbc.grid_search._plots import plot_heatmap
from ssddbc.grid_search._report import format_text_report, write_text_report
from ssddbc.grid_search._summary import format_summary, oracle_entry, summarise
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
) -> int:
    ordered = [results[c] for c in cfg.cells() if c in results]
    try:
        journal.rewrite(ordered)
    except OSError as exc:
        raise IOFailure() from exc
    summary = summarise(
        superclasses=cfg.superclasses,
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        eval_split=cfg.eval_split,
        results=ordered,
        knn=knn,
        invocation=invocation,
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
    return EXIT_FAILED if summary["failed_configurations"] else EXIT_OK


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
    invocation = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        invocation = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))[
            "this_invocation"
        ]
    summary = summarise(
        superclasses=cfg.superclasses,
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        eval_split=cfg.eval_split,
        results=ordered,
        knn=previous_knn(run_dir, cfg),
        invocation=invocation or {},
    )
    print(f"run folder: {run_dir.resolve()}")
    print(format_summary(summary, run_dir), flush=True)
    total = len(cfg.cells())
    done = sum(r.ok for r in ordered)
    missing = total - len(ordered)
    if missing:
        print(
            f"interrupted: {missing} of {total} configurations missing ({done} done); "
            f"resume with: {PROG} --resume {run_dir}",
            flush=True,
        )
    return EXIT_OK if missing == 0 and done == total else EXIT_FAILED


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
