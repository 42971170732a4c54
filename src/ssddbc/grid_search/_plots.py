"""Heatmaps of a run, one figure per superclass: the label-only score beside All and New accuracy.

:func:`heatmap_figure` draws three panels on the same (density percentile × k) grid: the
label-only selection score, and All and New accuracy (v2) on the run's evaluation split.
The accuracies use ground truth; they are there to judge whether the label-only score
tracks accuracy, never to choose. Every panel marks the same two cells: the label-only
choice (red box) and the oracle best by All accuracy (white dot); failed configurations are
grey with cross hatching and cells without a value (NaN) light grey with diagonal hatching.
One legend below the panels names each mark.

Colours are robust to outlier cells: each panel's colour steps are the percentiles of its
own finite cell values from ``clip[0]`` to ``clip[1]`` (:func:`colour_levels`), so each
colour holds about as many cells, a few very bad cells cannot stretch the range, and a
plateau of nearly equal top cells is still shaded by rank. Cells below the lower percentile
are clipped to the lowest colour (the colour bar's lower arrow); the colour bar label says
so. Marks are sized from the drawn cell size (:func:`mark_sizes`), so they stay inside
their cell on a large grid and are easy to see on a small one.

:func:`plot_heatmap` renders the figure once per requested format (:data:`PLOT_FORMATS`)
in memory and writes each file atomically; no temporary file lives while matplotlib works.
The object API with an Agg canvas is used throughout: no pyplot state, no display needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssddbc._errors import InvalidInputError, SearchConfigError
from ssddbc.grid_search._files import write_bytes
from ssddbc.grid_search._tasks import ConfigResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CLIP",
    "PLOT_FORMATS",
    "colour_levels",
    "heatmap_figure",
    "mark_sizes",
    "parse_plot_formats",
    "plot_heatmap",
    "render",
    "robust_limits",
]

#: The formats ``--plot_format`` accepts (matplotlib writers that need nothing extra).
PLOT_FORMATS = ("png", "pdf", "svg")
#: Default colour range of every panel: from the 5th to the 100th percentile of its cells.
DEFAULT_CLIP = (5.0, 100.0)
#: Number of colour steps between the clip percentiles.
N_LEVELS = 10
#: Raster resolution of the PNG (dots per inch).
DPI = 110

# Vector formats stamp the creation date by default; without it, the same run gives the
# same file.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {},
    "pdf": {"CreationDate": None},
    "svg": {"Date": None},
}

#: (face colour, hatch, hatch colour) of failed cells and of cells without a value.
_FAILED = ("0.62", "xx", "0.3")
_NO_VALUE = ("0.9", "///", "0.55")


def parse_plot_formats(text: str) -> tuple[str, ...]:
    """The formats of a ``--plot_format`` value such as ``"png,pdf"`` (order kept, no repeats).

    Raises
    ------
    SearchConfigError
        An empty list or a format not in :data:`PLOT_FORMATS`.
    """
    items = [item.strip().lower() for item in str(text).split(",") if item.strip()]
    if not items:
        raise SearchConfigError(
            "--plot_format",
            f"no format in {text!r}; give a comma list of {', '.join(PLOT_FORMATS)}",
        )
    out: list[str] = []
    for item in items:
        if item not in PLOT_FORMATS:
            raise SearchConfigError(
                "--plot_format",
                f"unknown format {item!r} in {text!r}; choose from {', '.join(PLOT_FORMATS)} "
                "(comma-separated, e.g. png,pdf)",
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def _check_clip(lower: float, upper: float) -> None:
    if not (0.0 <= lower < upper <= 100.0):
        raise InvalidInputError(
            "clip", f"percentiles must satisfy 0 <= lower < upper <= 100, got {(lower, upper)!r}"
        )


def robust_limits(
    values: Any, lower: float = DEFAULT_CLIP[0], upper: float = DEFAULT_CLIP[1]
) -> tuple[float, float]:
    """The colour range of a panel: the ``lower`` and ``upper`` percentiles of its finite values.

    NaN and infinite values are ignored. A panel without a finite value gets ``(0, 1)``;
    a panel whose range is empty (every value equal) is widened around the value, so a
    colour bar can still be drawn.

    Parameters
    ----------
    values : array_like
        The cell values (any shape).
    lower, upper : float
        Percentiles, ``0 <= lower < upper <= 100``.

    Returns
    -------
    (float, float)
        ``lo < hi``.

    Raises
    ------
    InvalidInputError
        Percentiles out of order or outside [0, 100].
    """
    _check_clip(lower, upper)
    finite = _finite(values)
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [lower, upper]))
    if hi <= lo:
        return _widen(lo)
    return lo, hi


def colour_levels(
    values: Any,
    lower: float = DEFAULT_CLIP[0],
    upper: float = DEFAULT_CLIP[1],
    n_levels: int = N_LEVELS,
) -> np.ndarray:
    """The colour step boundaries of a panel: percentiles of its finite values.

    The boundaries are the percentiles ``linspace(lower, upper, n_levels + 1)`` of the finite
    values, repeated boundaries (tied values) dropped. The first and last are
    :func:`robust_limits`; each step holds about as many cells.

    Returns
    -------
    numpy.ndarray
        At least two strictly increasing boundaries.

    Raises
    ------
    InvalidInputError
        Bad percentiles, or ``n_levels < 1``.
    """
    _check_clip(lower, upper)
    if n_levels < 1:
        raise InvalidInputError("n_levels", f"must be >= 1, got {n_levels!r}")
    finite = _finite(values)
    lo, hi = robust_limits(finite, lower, upper)
    if finite.size == 0 or np.percentile(finite, upper) <= np.percentile(finite, lower):
        return np.array([lo, hi])
    edges = np.unique(np.percentile(finite, np.linspace(lower, upper, n_levels + 1)))
    return edges


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _widen(value: float) -> tuple[float, float]:
    half = 0.05 * abs(value) or 0.5
    return value - half, value + half


def mark_sizes(cell_points: float) -> tuple[float, float]:
    """Marker diameter and box line width (both in points) for cells ``cell_points`` wide.

    The dot takes half the cell; the box line a tenth of it, between 0.75 and 4 points.
    """
    cell = max(float(cell_points), 1.0)
    return 0.5 * cell, min(4.0, max(0.75, 0.1 * cell))


def _ordinal(p: float) -> str:
    n = f"{p:g}"
    if not n.isdigit():
        return f"{n}th"
    last2 = int(n) % 100
    suffix = "th" if 11 <= last2 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(int(n) % 10, "th")
    return f"{n}{suffix}"


def _grid(
    results: Sequence[ConfigResult], ks: Sequence[int], dps: Sequence[int], metric: str
) -> np.ndarray:
    grid = np.full((len(dps), len(ks)), np.nan)
    col = {k: j for j, k in enumerate(ks)}
    row = {dp: i for i, dp in enumerate(dps)}
    for r in results:
        if r.ok and r.k in col and r.density_percentile in row:
            grid[row[r.density_percentile], col[r.k]] = float(getattr(r, metric))
    return grid


def _ticks(values: Sequence[int]) -> list[int]:
    """Indices of the tick labels: every value up to 20, else about 20 evenly spaced."""
    step = max(1, math.ceil(len(values) / 20))
    return list(range(0, len(values), step))


def heatmap_figure(
    title: str,
    results: Sequence[ConfigResult],
    ks: Sequence[int],
    dps: Sequence[int],
    selected: tuple[int, int] | None,
    oracle: tuple[int, int] | None,
    *,
    eval_split: str,
    clip: tuple[float, float] = DEFAULT_CLIP,
) -> Figure:
    """The heatmap figure of one superclass (see the module docstring).

    Parameters
    ----------
    title : str
        First line of the figure title (the superclass).
    results : sequence of ConfigResult
        The superclass's rows; cells without a row are drawn as having no value.
    ks, dps : sequence of int
        The grid's columns (k) and rows (density percentile).
    selected, oracle : (k, density_percentile) or None
        The label-only choice and the oracle best by All accuracy.
    eval_split : str
        The split the accuracies were evaluated on (named in the panel titles).
    clip : (float, float)
        Percentiles of each panel's colour range (:func:`colour_levels`).

    Returns
    -------
    matplotlib.figure.Figure
        Three heatmap axes (in panel order, each with ``get_label()`` its metric name) and
        their colour bars, with an Agg canvas attached.
    """
    # matplotlib: heavy, loaded only when a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    _check_clip(*clip)
    panels = (
        ("score", "label-only score (-L1 + 3·silhouette)", "selection score"),
        ("all_acc", f"All accuracy, {eval_split} split", "All accuracy"),
        ("new_acc", f"New accuracy, {eval_split} split", "New accuracy"),
    )
    col = {k: j for j, k in enumerate(ks)}
    row = {dp: i for i, dp in enumerate(dps)}
    failed = np.zeros((len(dps), len(ks)), dtype=bool)
    for r in results:
        if not r.ok and r.k in col and r.density_percentile in row:
            failed[row[r.density_percentile], col[r.k]] = True

    panel_w = min(8.0, max(3.4, 0.24 * len(ks) + 1.7))
    panel_h = min(8.0, max(3.0, 0.26 * len(dps) + 1.8))
    fig = Figure(figsize=(3 * panel_w, panel_h + 1.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True)
    lower, upper = clip
    clip_text = f"colour steps: {_ordinal(lower)}-{_ordinal(upper)} percentile of the cells"
    any_no_value = False
    for ax, (metric, heading, short) in zip(axes, panels, strict=True):
        grid = _grid(results, ks, dps, metric)
        levels = colour_levels(grid, lower, upper)
        finite = grid[np.isfinite(grid)]
        clipped = int(np.sum(finite < levels[0]))
        norm = BoundaryNorm(levels, ncolors=256, extend="min" if clipped else "neither")
        image = ax.imshow(
            np.ma.masked_invalid(grid),
            aspect="auto",
            cmap="viridis",
            norm=norm,
            origin="lower",
            interpolation="nearest",
        )
        label = f"{short}\n{clip_text}"
        if clipped:
            label += f"\n({clipped} lower cell(s) clipped)"
        bar = fig.colorbar(image, ax=ax, shrink=0.95, pad=0.02)
        bar.set_label(label, fontsize=7)
        bar.ax.tick_params(labelsize=6)
        ax.set_label(metric)
        ax.set_title(heading, fontsize=9)
        for i, j in zip(*np.nonzero(~np.isfinite(grid)), strict=True):
            face, hatch, edge = _FAILED if failed[i, j] else _NO_VALUE
            any_no_value |= not failed[i, j]
            ax.add_patch(
                Rectangle(
                    (j - 0.5, i - 0.5),
                    1,
                    1,
                    linewidth=0,
                    facecolor=face,
                    hatch=hatch,
                    edgecolor=edge,
                )
            )
        ticks = _ticks(ks)
        ax.set_xticks(ticks, [str(ks[t]) for t in ticks], fontsize=7)
        ax.set_xlabel("k (neighbours)", fontsize=8)
        ax.set_xlim(-0.5, len(ks) - 0.5)
        ax.set_ylim(-0.5, len(dps) - 0.5)
    ticks = _ticks(dps)
    axes[0].set_yticks(ticks, [str(dps[t]) for t in ticks], fontsize=7)
    axes[0].set_ylabel("density percentile", fontsize=8)
    fig.suptitle(
        f"{title}\naccuracies use ground truth: they judge the label-only score, they do not "
        "choose",
        fontsize=10,
    )

    handles: list[Any] = []
    if selected is not None:
        handles.append(
            Patch(
                facecolor="none",
                edgecolor="red",
                linewidth=2,
                label=f"label-only choice (k={selected[0]}, dp={selected[1]})",
            )
        )
    if oracle is not None:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=8,
                markerfacecolor="white",
                markeredgecolor="black",
                label=f"oracle best by All accuracy (k={oracle[0]}, dp={oracle[1]})",
            )
        )
    n_failed = int(failed.sum())
    if n_failed:
        face, hatch, edge = _FAILED
        handles.append(
            Patch(
                linewidth=0,
                facecolor=face,
                hatch=hatch,
                edgecolor=edge,
                label=f"failed configuration ({n_failed})",
            )
        )
    if any_no_value:
        face, hatch, edge = _NO_VALUE
        handles.append(
            Patch(linewidth=0, facecolor=face, hatch=hatch, edgecolor=edge, label="no value (NaN)")
        )
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            fontsize=8,
            frameon=False,
        )

    # The layout is settled only once drawn; the marks are then sized from the drawn cells.
    fig.draw_without_rendering()
    box = axes[0].get_window_extent()
    cell = min(box.width / len(ks), box.height / len(dps)) * 72.0 / fig.dpi
    dot, line = mark_sizes(cell)
    for ax in axes:
        if selected is not None and selected[0] in col and selected[1] in row:
            x, y = col[selected[0]], row[selected[1]]
            ax.add_patch(
                Rectangle(
                    (x - 0.5, y - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="red",
                    linewidth=line,
                    clip_on=False,  # a box on the edge row keeps its whole outline
                    gid="selected",
                )
            )
        if oracle is not None and oracle[0] in col and oracle[1] in row:
            ax.plot(
                col[oracle[0]],
                row[oracle[1]],
                linestyle="none",
                marker="o",
                markersize=dot,
                markerfacecolor="white",
                markeredgecolor="black",
                markeredgewidth=max(0.5, line / 2),
                gid="oracle",
            )
    return fig


def render(fig: Figure, fmt: str) -> bytes:
    """The figure as the bytes of a ``fmt`` file (one of :data:`PLOT_FORMATS`)."""
    if fmt not in PLOT_FORMATS:
        raise SearchConfigError("--plot_format", f"unknown format {fmt!r}")
    import matplotlib  # matplotlib: heavy, loaded only when a figure is drawn

    buf = io.BytesIO()
    # A fixed salt for the SVG element ids (random by default): same figure, same bytes.
    with matplotlib.rc_context({"svg.hashsalt": "ssddbc"}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


def plot_heatmap(
    stem: Path,
    title: str,
    results: Sequence[ConfigResult],
    ks: Sequence[int],
    dps: Sequence[int],
    selected: tuple[int, int] | None,
    oracle: tuple[int, int] | None,
    *,
    eval_split: str,
    formats: Sequence[str] = ("png",),
) -> list[Path]:
    """Draw :func:`heatmap_figure` and write it once per format as ``<stem>.<format>``.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.
    """
    fig = heatmap_figure(title, results, ks, dps, selected, oracle, eval_split=eval_split)
    written = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"
        write_bytes(path, render(fig, fmt))
        written.append(path)
    return written
