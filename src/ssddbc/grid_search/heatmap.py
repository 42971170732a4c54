"""The original's debug heatmap of a grid: one metric as colour, another as the cell numbers.

:func:`create_mixed_heatmap` takes the grid the in-memory search returns with
``return_all=True`` (``ClusteringSearchResult.results_grid``: ``(k, density_percentile)`` ->
metrics dict with ``score``, ``l1_loss``, ``silhouette``, ``all_acc``, ``old_acc``,
``new_acc``, ``n_clusters``, ...), exactly what the original's
``scripts/offline_ssddbc_superclass.py --debug_cluster_heatmap`` passes, and writes the file
the original wrote::

    <output_dir>/<superclass_name>/<display_metric>_colored_by_<color_metric>_<month>_<day>_<hour>_<minute>.png

(two calls within one minute for the same pair of metrics write the same name, as in the
original; the second replaces the first). Rows are density percentiles, columns k; the three
best cells by ``display_metric`` carry a star (#1 red, #2 orange, #3 yellow). A metric missing
from a cell is drawn blank. The image is written atomically (temporary file, fsync, rename).

:func:`load_existing_results` reads the same grid back from a batch run of this package
(``ssddbc-search``'s ``<run>/results.csv``), where the original parsed its batch runner's
``<search_dir>/<superclass>/*.txt`` reports, so a finished or resumed run can be plotted too.

The accuracies in a grid are evaluated against ground truth: the plot is for debugging and
reporting, never for choosing parameters (the search selects by its label-only score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from knncache import atomic_write
from ssddbc._errors import InvalidInputError
from ssddbc.grid_search._journal import ResultsJournal

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "DEFAULT_SEARCH_DIR",
    "create_mixed_heatmap",
    "heatmap_filename",
    "load_existing_results",
]

#: Where the heatmaps go by default, relative to the working directory (the original's
#: default was a path of its own configuration file).
DEFAULT_OUTPUT_DIR = "heatmaps"

#: Where ``ssddbc-search`` puts its run folders by default.
DEFAULT_SEARCH_DIR = "ssddbc_runs"

_METRIC_NAMES = {
    "all_acc": "All ACC",
    "old_acc": "Old ACC",
    "new_acc": "New ACC",
    "labeled_acc": "Labeled ACC",
}


def heatmap_filename(display_metric: str, color_metric: str, when: datetime) -> str:
    """The original's file name: ``<display>_colored_by_<color>_<M>_<D>_<h>_<m>.png``."""
    return (
        f"{display_metric}_colored_by_{color_metric}_"
        f"{when.month}_{when.day}_{when.hour}_{when.minute}.png"
    )


def load_existing_results(
    superclass_name: str, search_dir: str | Path = DEFAULT_SEARCH_DIR
) -> dict[tuple[int, int], dict[str, Any]] | None:
    """The grid of one superclass from a batch run, in :func:`create_mixed_heatmap`'s form.

    Parameters
    ----------
    superclass_name : str
        The superclass (the ``superclass`` column of ``results.csv``).
    search_dir : str or pathlib.Path
        A run folder (holding ``results.csv``), or a folder of run folders: then the most
        recently modified run that has rows for ``superclass_name`` is read.

    Returns
    -------
    dict or None
        ``(k, density_percentile)`` -> the metrics of each successful configuration (as in
        ``ClusteringSearchResult.results_grid``); ``None`` when no run has the superclass,
        as the original returned ``None`` without a result file.
    """
    root = Path(search_dir)
    if (root / "results.csv").is_file():
        runs = [root]
    elif root.is_dir():
        runs = sorted(
            (p for p in root.iterdir() if (p / "results.csv").is_file()),
            key=lambda p: (p / "results.csv").stat().st_mtime,
            reverse=True,
        )
    else:
        return None
    for run in runs:
        rows = [r for r in ResultsJournal(run / "results.csv").read() if r.group == superclass_name]
        grid = {(r.k, r.density_percentile): r.metrics() for r in rows if r.ok}
        if grid:
            return grid
    return None


def _value(metrics: Mapping[str, Any], name: str) -> float:
    v = metrics.get(name)
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def create_mixed_heatmap(
    results_dict: Mapping[tuple[int, int], Mapping[str, Any]],
    color_metric: str = "all_acc",
    display_metric: str = "labeled_acc",
    superclass_name: str = "",
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    save_plots: bool = True,
) -> tuple[int, int, float]:
    """Colour each ``(k, density_percentile)`` cell by one metric and print another in it.

    Parameters
    ----------
    results_dict : mapping
        ``(k, density_percentile)`` -> metrics dict.
    color_metric : str
        Metric for the colour (and for the returned best cell).
    display_metric : str
        Metric printed in the cells; its three best cells are starred.
    superclass_name : str
        Sub-folder of ``output_dir`` and part of the title.
    output_dir : str or pathlib.Path
        Root of the heatmaps (created if needed).
    save_plots : bool
        Write the PNG (otherwise only the best cell is computed).

    Returns
    -------
    (best_k, best_dp, best_value)
        The cell with the highest ``color_metric`` (first in (density percentile, k) order
        on ties).

    Raises
    ------
    InvalidInputError
        An empty grid, keys that are not ``(k, density_percentile)`` pairs, or no cell with
        a finite ``color_metric``.
    """
    if not results_dict:
        raise InvalidInputError("results_dict", "is empty: nothing to draw")
    try:
        cells = [(int(k), int(dp)) for k, dp in results_dict]
    except (TypeError, ValueError):
        raise InvalidInputError(
            "results_dict", "keys must be (k, density_percentile) pairs of integers"
        ) from None
    ks = sorted({k for k, _ in cells})
    dps = sorted({dp for _, dp in cells})
    color = np.full((len(dps), len(ks)), np.nan)
    shown = np.full((len(dps), len(ks)), np.nan)
    for (k, dp), metrics in zip(cells, results_dict.values(), strict=True):
        i, j = dps.index(dp), ks.index(k)
        color[i, j] = _value(metrics, color_metric)
        shown[i, j] = _value(metrics, display_metric)
    if not np.isfinite(color).any():
        raise InvalidInputError(
            "color_metric", f"no configuration has a finite {color_metric!r} value"
        )
    finite = [
        (shown[i, j], i, j)
        for i in range(len(dps))
        for j in range(len(ks))
        if np.isfinite(shown[i, j])
    ]
    top3 = sorted(finite, key=lambda t: -t[0])[:3]

    if save_plots:
        folder = Path(output_dir) / superclass_name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / heatmap_filename(display_metric, color_metric, datetime.now())
        _draw(path, color, shown, ks, dps, top3, color_metric, display_metric, superclass_name)
        print(f"heatmap written: {path}")
    display_name = _METRIC_NAMES.get(display_metric, display_metric)
    for rank, (value, i, j) in enumerate(top3, 1):
        c = color[i, j]
        c_text = f"{c:.4f}" if np.isfinite(c) else "n/a"
        print(
            f"#{rank} by {display_name}: k={ks[j]}, density_percentile={dps[i]}, "
            f"{display_metric}={value:.4f}, {color_metric}={c_text}"
        )
    row, col = (int(v) for v in np.unravel_index(int(np.nanargmax(color)), color.shape))
    return ks[col], dps[row], float(color[row, col])


def _draw(
    path: Path,
    color: np.ndarray,
    shown: np.ndarray,
    ks: list[int],
    dps: list[int],
    top3: list[tuple[float, int, int]],
    color_metric: str,
    display_metric: str,
    superclass_name: str,
) -> None:
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    # matplotlib: heavy, loaded only when a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.7 * len(ks) + 2), max(4.0, 0.5 * len(dps) + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(color), aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label=f"{color_metric.upper()} (colour)")
    for i in range(len(dps)):
        for j in range(len(ks)):
            if np.isfinite(shown[i, j]):
                ax.text(
                    j, i, f"{shown[i, j]:.4f}", ha="center", va="center", fontsize=6, color="white"
                )
    for rank, (_, i, j) in enumerate(top3, 1):
        face = ("red", "orange", "yellow")[rank - 1]
        ax.plot(j, i - 0.25, marker="*", markersize=12, color=face, markeredgecolor="white")
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_yticks(range(len(dps)), [str(dp) for dp in dps])
    ax.set_xlabel("k (number of neighbours)")
    ax.set_ylabel("density percentile")
    color_name = _METRIC_NAMES.get(color_metric, color_metric.upper())
    display_name = _METRIC_NAMES.get(display_metric, display_metric.upper())
    ax.set_title(
        f"{display_name} values (coloured by {color_name}) - {superclass_name}\n"
        f"top 3 by {display_name} starred",
        fontsize=9,
    )
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=150))
