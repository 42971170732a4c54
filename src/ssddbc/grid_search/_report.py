"""The original batch runner's per-superclass text report, written from this search's rows.

The original's ``run_grid_search`` wrote ``<output_dir>/<superclass>_<MM_DD_HH_MM>[_parallel].txt``
and its tools read it back (``heatmap.load_existing_results`` globs
``<search_dir>/<superclass>/*.txt`` and parses each ``k=.., density_percentile=..`` block with
regular expressions). :func:`write_text_report` writes the same layout, so those tools work on
this package's runs: a header, one block per successful configuration in (k, density
percentile) order, and the closing lines. ``Best params`` is the original's choice, by test
accuracy (an oracle: it uses ground truth); the line after it gives the configuration this
package selects, by the label-only score.

Values the search does not compute are written as the original wrote a missing one
(``labeled_acc: N/A``); the one L2 component of the label-only score, the silhouette (weight
3, maximised), is written as the original wrote its components.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from knncache import atomic_write

__all__ = ["SILHOUETTE_WEIGHT", "format_text_report", "write_text_report"]

#: The silhouette's weight in the label-only score (``-L1 + 3 * silhouette``), the original's
#: ``l2_component_weights``.
SILHOUETTE_WEIGHT = 3.0
_RULE = "=" * 80
_DASH = "-" * 80


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _block(k: int, dp: int, m: Mapping[str, Any], components: Sequence[str] | None) -> list[str]:
    silhouette = _num(m.get("silhouette"))
    lines = [
        f"k={k}, density_percentile={dp}",
        _DASH,
        f"all_acc: {_num(m.get('all_acc')):.4f}",
        f"old_acc: {_num(m.get('old_acc')):.4f}",
        f"new_acc: {_num(m.get('new_acc')):.4f}",
        f"clusters: {int(m.get('n_clusters', 0))}",
        "labeled_acc: N/A",
        f"l1_loss: {_num(m.get('l1_loss')):.4f}",
        f"component_silhouette_value: {silhouette:.4f}",
        f"component_silhouette_contribution: {SILHOUETTE_WEIGHT * silhouette:.4f}",
        "component_silhouette_orientation: maximize",
        f"score: {_num(m.get('score')):.4f}",
        f"l2_components: {list(components) if components is not None else None}",
        f"l2_component_weights: {{'silhouette': {SILHOUETTE_WEIGHT}}}",
        "l2_component_params: {}",
        "",
    ]
    return lines


def format_text_report(
    superclass: str,
    grid: Mapping[tuple[int, int], Mapping[str, Any]],
    *,
    k_values: Sequence[int],
    density_values: Sequence[int],
    model_path: str | None,
    feature_cache_dir: str | None,
    workers: int,
    seconds: float,
    selected: tuple[int, int] | None,
    l2_components: Sequence[str] | None = None,
    failed: Iterable[tuple[int, int]] = (),
) -> str:
    """The report's text (see the module docstring).

    Parameters
    ----------
    superclass : str
    grid : mapping
        ``(k, density_percentile)`` -> metrics of each successful configuration (as in
        ``ClusteringSearchResult.results_grid``).
    k_values, density_values : sequences of int
        The grid searched (all cells, including failed ones).
    model_path, feature_cache_dir : str or None
        Echoed in the header, as the original did.
    workers : int
        Worker processes used.
    seconds : float
        Wall time of the search.
    selected : (k, density_percentile) or None
        The label-only selection.
    l2_components : sequence of str or None
        Echoed as the original did.
    failed : iterable of (k, density_percentile)
        Configurations that raised (counted in ``Success``).
    """
    total = len(k_values) * len(density_values)
    done = len(grid)
    comps = list(l2_components) if l2_components is not None else None
    lines = [
        f"Grid search for superclass: {superclass}",
        f"Model path: {model_path}",
        f"feature_cache_dir: {feature_cache_dir}",
        f"k values: {list(k_values)}",
        f"density percentiles: {list(density_values)}",
        "l1_type: cross_entropy",
        f"l2_components: {comps}",
        f"l2_component_weights: {{'silhouette': {SILHOUETTE_WEIGHT}}}",
        f"Parallel workers: {workers}",
        f"Total time: {seconds:.2f}s",
    ]
    if done:
        lines.append(f"Avg per combination: {seconds / done:.2f}s")
    lines += [f"Success: {done}/{total} combinations", _RULE, ""]
    for k, dp in sorted(grid):
        lines += _block(k, dp, grid[(k, dp)], comps)
    lines.append(_RULE)
    finite = [(cell, _num(m.get("all_acc"))) for cell, m in sorted(grid.items())]
    finite = [(cell, acc) for cell, acc in finite if math.isfinite(acc)]
    if finite:
        # The original's choice: the first cell in grid order with the highest test accuracy.
        (bk, bdp), best = max(finite, key=lambda t: t[1])
        lines.append(f"Best params: k={bk}, density_percentile={bdp}")
        lines.append(f"Best all_acc: {best:.4f}")
    if selected is not None and selected in grid:
        sk, sdp = selected
        lines.append(
            f"Selected params (label-only score, no ground truth): k={sk}, "
            f"density_percentile={sdp}, score={_num(grid[selected].get('score')):.4f}"
        )
    n_failed = len(list(failed))
    if n_failed:
        lines.append(f"Failed: {n_failed} configuration(s)")
    return "\n".join(lines) + "\n"


def write_text_report(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data))
    return path
