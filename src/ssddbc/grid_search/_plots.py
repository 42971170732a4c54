"""Heatmaps of a run, one figure per superclass: what the search chose and what it is worth.

:func:`heatmap_figure` draws five panels on the same (density percentile × k) grid: the
label-only selection score and the number of clusters (top row), and All, Old and New
accuracy on the run's evaluation split (bottom row). The accuracies use ground truth; they
are there to judge whether the label-only score tracks accuracy, never to choose. Every
panel marks the same two cells: the label-only choice (red box) and the oracle best by All
accuracy (white dot); failed configurations are grey with cross hatching, cells without a
value (NaN) light grey with diagonal hatching, and in the clusters panel cells that made a
single cluster are peach with dots. The top-right slot holds the legend and the scales.

Colours show magnitudes (:func:`panel_norm`): equal values always share a colour and a
better cell is always a different colour from a worse one.

- Accuracies use one fixed linear 0-1 scale: an accuracy has an absolute meaning, so the
  same colour reads as the same accuracy in every panel, superclass and run, and a plateau
  of mediocre cells can never take the top colour.
- The score has no absolute scale: it is linear from the ``clip[0]`` percentile of its finite
  cells to the ``clip[1]`` percentile (the maximum by default), so a few disastrous cells
  cannot squeeze the rest into one colour. Cells below are clipped to the lowest colour; the
  colour bar's arrow and label say how many.
- The number of clusters is on a log scale from 2 (a count spans 2 to hundreds).

Every panel's title writes the choice's and the oracle's value; when the cells are large
enough to be legible every cell's value is written in it too. Marks are sized from the
drawn cell size (:func:`mark_sizes`), so they stay inside their cell on a large grid and are
easy to see on a small one.

:func:`plot_heatmap` renders the figure once per requested format (:data:`PLOT_FORMATS`)
in memory and writes each file atomically; no temporary file lives while matplotlib works.
The object API with an Agg canvas is used throughout: no pyplot state, no display needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssddbc._errors import InvalidInputError, SearchConfigError
from ssddbc.grid_search._files import write_bytes
from ssddbc.grid_search._tasks import ConfigResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

__all__ = [
    "ACCURACY_METRICS",
    "DEFAULT_CLIP",
    "PANELS",
    "PLOT_FORMATS",
    "heatmap_figure",
    "mark_sizes",
    "panel_norm",
    "parse_plot_formats",
    "plot_heatmap",
    "render",
    "robust_limits",
]

#: The formats ``--plot_format`` accepts (matplotlib writers that need nothing extra).
PLOT_FORMATS = ("png", "pdf", "svg")
#: Default colour range of the score panel: from the 5th to the 100th percentile of its cells.
DEFAULT_CLIP = (5.0, 100.0)
#: The metrics drawn on the fixed 0-1 accuracy scale.
ACCURACY_METRICS = ("all_acc", "old_acc", "new_acc")
#: The panels in drawing order (each panel axis has its metric as ``get_label()``).
PANELS = ("score", "n_clusters", *ACCURACY_METRICS)
#: Raster resolution of the PNG (dots per inch).
DPI = 110
#: Smallest drawn cell (width, height in points) whose value is written inside it.
_MIN_LEGIBLE_CELL = (24.0, 12.0)

# Vector formats stamp the creation date by default; without it, the same run gives the
# same file.
_METADATA: dict[str, dict[str, Any]] = {
    "png": {},
    "pdf": {"CreationDate": None},
    "svg": {"Date": None},
}

#: (face colour, hatch, hatch colour) of failed cells, cells without a value, and cells of
#: the clusters panel that made a single cluster.
_FAILED = ("0.62", "xx", "0.3")
_NO_VALUE = ("0.9", "///", "0.55")
_SINGLE = ("#fbd5b5", "..", "#a0522d")


@dataclass(frozen=True)
class _Panel:
    metric: str
    title: str  # first line of the panel title
    bar: str  # colour bar label
    cmap: str
    value_format: str  # format of the values written on the figure


def _panels(eval_split: str) -> tuple[_Panel, ...]:
    acc = f"{eval_split} split, fixed 0-1 scale"
    return (
        _Panel(
            "score", "label-only score (-L1 + 3·silhouette)", "selection score", "viridis", ".3f"
        ),
        _Panel("n_clusters", "number of clusters", "clusters (log scale)", "magma", ".0f"),
        _Panel("all_acc", "All accuracy", f"All accuracy ({acc})", "viridis", ".3f"),
        _Panel("old_acc", "Old accuracy", f"Old accuracy ({acc})", "viridis", ".3f"),
        _Panel("new_acc", "New accuracy", f"New accuracy ({acc})", "viridis", ".3f"),
    )


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


def panel_norm(
    metric: str, values: Any, clip: tuple[float, float] = DEFAULT_CLIP
) -> tuple[Normalize, int]:
    """The colour scale of one panel and how many of its cells fall below it.

    Every scale is continuous (never binned), so equal values share a colour and a better
    cell never shares the colour of a worse one:

    - an accuracy (:data:`ACCURACY_METRICS`): linear over the fixed range 0-1;
    - ``n_clusters``: logarithmic from 2 to the largest count (at least 3); single-cluster
      cells are drawn apart and are not counted as clipped;
    - anything else (the score): linear over :func:`robust_limits` of the finite values;
      values below the lower limit take the lowest colour and are counted.

    Parameters
    ----------
    metric : str
        The panel's metric (a :class:`ConfigResult` field).
    values : array_like
        The panel's cell values (any shape; NaN ignored).
    clip : (float, float)
        Percentiles of the score's range, ``0 <= lower < upper <= 100``.

    Returns
    -------
    (matplotlib.colors.Normalize, int)
        The norm and the number of finite cells below its ``vmin``.

    Raises
    ------
    InvalidInputError
        Percentiles out of order or outside [0, 100].
    """
    # matplotlib: heavy, loaded only when a figure is drawn
    from matplotlib.colors import LogNorm, Normalize

    _check_clip(*clip)
    finite = _finite(values)
    if metric in ACCURACY_METRICS:
        return Normalize(0.0, 1.0), int(np.sum(finite < 0.0))
    if metric == "n_clusters":
        return LogNorm(2.0, max(3.0, float(finite.max(initial=0.0)))), 0
    lo, hi = robust_limits(finite, *clip)
    return Normalize(lo, hi), int(np.sum(finite < lo))


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
            value = float(getattr(r, metric))
            if metric == "n_clusters" and value < 1:
                value = math.nan  # no count recorded
            grid[row[r.density_percentile], col[r.k]] = value
    return grid


def _count_ticks(vmin: float, vmax: float) -> list[float]:
    """Round counts (2, 3, 5, 10, 20, 30, 50, ...) in ``[vmin, vmax]``, and ``vmax`` itself."""
    ticks = [
        float(m * 10**e)
        for e in range(int(math.log10(vmax)) + 1)
        for m in (1, 2, 3, 5)
        if vmin <= m * 10**e <= vmax
    ]
    if not ticks or vmax / ticks[-1] > 1.25:
        ticks.append(vmax)
    return ticks


def _cell_text(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "n/a"


def _ticks(values: Sequence[int]) -> list[int]:
    """Indices of the tick labels: every value up to 20, else about 20 evenly spaced."""
    step = max(1, math.ceil(len(values) / 20))
    return list(range(0, len(values), step))


def _value_at(
    grid: np.ndarray, failed: np.ndarray, where: tuple[int, int] | None, fmt: str
) -> str | None:
    """The value of cell ``where = (i, j)`` as written on the figure (None: no such cell)."""
    if where is None:
        return None
    if failed[where]:
        return "failed"
    return _cell_text(float(grid[where]), fmt)


def _scale_text(metric: str, clip: tuple[float, float], clipped: int) -> str:
    lower, upper = clip
    if metric == "score":
        top = "max" if upper == 100.0 else f"{_ordinal(upper)} percentile"
        text = f"\nlinear, {_ordinal(lower)} percentile of the cells to {top}"
    else:
        text = ""
    if clipped:
        text += f"\n({clipped} lower cell(s) clipped)"
    return text


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
        The split the accuracies were evaluated on (named on their colour bars).
    clip : (float, float)
        Percentiles of the score's colour range (:func:`panel_norm`).

    Returns
    -------
    matplotlib.figure.Figure
        The five heatmap axes (in :data:`PANELS` order, each with ``get_label()`` its
        metric), their colour bars and the ``"key"`` axis holding the legend, with an Agg
        canvas attached.

    Raises
    ------
    InvalidInputError
        Bad ``clip`` percentiles.
    """
    # matplotlib: heavy, loaded only when a figure is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_clip(*clip)
    panels = _panels(eval_split)
    col = {k: j for j, k in enumerate(ks)}
    row = {dp: i for i, dp in enumerate(dps)}
    failed = np.zeros((len(dps), len(ks)), dtype=bool)
    for r in results:
        if not r.ok and r.k in col and r.density_percentile in row:
            failed[row[r.density_percentile], col[r.k]] = True
    grids = {p.metric: _grid(results, ks, dps, p.metric) for p in panels}
    single = grids["n_clusters"] == 1

    def where(cell: tuple[int, int] | None) -> tuple[int, int] | None:
        if cell is None or cell[0] not in col or cell[1] not in row:
            return None
        return row[cell[1]], col[cell[0]]

    panel_w = min(7.0, max(3.4, 0.22 * len(ks) + 1.9))
    panel_h = min(6.0, max(2.6, 0.22 * len(dps) + 1.6))
    fig = Figure(figsize=(3 * panel_w, 2 * panel_h + 0.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    spec = fig.add_gridspec(2, 3)
    slots = ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))  # the top right slot is the key
    axes: list[Axes] = []
    for (i, j), panel in zip(slots, panels, strict=True):
        first = axes[0] if axes else None
        ax = fig.add_subplot(spec[i, j], sharex=first, sharey=first)
        axes.append(ax)
        grid = grids[panel.metric]
        norm, clipped = panel_norm(panel.metric, grid, clip)
        drawn = np.where(single, np.nan, grid) if panel.metric == "n_clusters" else grid
        image = ax.imshow(
            np.ma.masked_invalid(drawn),
            aspect="auto",
            cmap=panel.cmap,
            norm=norm,
            origin="lower",
            interpolation="nearest",
        )
        bar = fig.colorbar(
            image, ax=ax, shrink=0.95, pad=0.02, extend="min" if clipped else "neither"
        )
        bar.set_label(panel.bar + _scale_text(panel.metric, clip, clipped), fontsize=7)
        if panel.metric == "n_clusters":
            ticks = _count_ticks(2.0, float(norm.vmax or 3.0))
            bar.set_ticks(ticks, labels=[f"{t:.0f}" for t in ticks])
            bar.minorticks_off()
        bar.ax.tick_params(labelsize=6)
        ax.set_label(panel.metric)
        values = [
            f"{name} {text}"
            for name, cell in (("choice", selected), ("oracle", oracle))
            if (text := _value_at(grid, failed, where(cell), panel.value_format)) is not None
        ]
        ax.set_title("\n".join([panel.title, " · ".join(values)]), fontsize=9)
        _hatch_cells(ax, grid, failed, single if panel.metric == "n_clusters" else None)
        ticks_x = _ticks(ks)
        ax.set_xticks(ticks_x, [str(ks[t]) for t in ticks_x], fontsize=7)
        ax.set_xlabel("k (neighbours)", fontsize=8)
        ticks_y = _ticks(dps)
        ax.set_yticks(ticks_y, [str(dps[t]) for t in ticks_y], fontsize=7)
        if j == 0:
            ax.set_ylabel("density percentile", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        ax.set_xlim(-0.5, len(ks) - 0.5)
        ax.set_ylim(-0.5, len(dps) - 0.5)
    key = fig.add_subplot(spec[0, 2])
    key.set_label("key")
    key.set_axis_off()
    any_no_value = any(bool(np.any(~np.isfinite(grids[p.metric]) & ~failed)) for p in panels)
    _legend(key, selected, oracle, int(failed.sum()), any_no_value, int(single.sum()))
    fig.suptitle(
        f"{title}\naccuracies use ground truth: they judge the label-only score, they do not "
        "choose",
        fontsize=10,
    )

    # The layout is settled only once drawn; marks and values are then sized from the cells.
    fig.draw_without_rendering()
    box = axes[0].get_window_extent()
    cell_w = box.width / len(ks) * 72.0 / fig.dpi
    cell_h = box.height / len(dps) * 72.0 / fig.dpi
    dot, line = mark_sizes(min(cell_w, cell_h))
    legible = cell_w >= _MIN_LEGIBLE_CELL[0] and cell_h >= _MIN_LEGIBLE_CELL[1]
    # With values written, the dot moves to the cell's upper right corner to leave them legible.
    offset = 0.0
    if legible:
        dot, offset = min(dot, 0.22 * min(cell_w, cell_h)), 0.32
    for ax, panel in zip(axes, panels, strict=True):
        if legible:
            fontsize = min(8.0, cell_w / 3.8, cell_h * 0.7)
            _write_values(ax, grids[panel.metric], panel, fontsize)
        _mark(ax, where(selected), where(oracle), dot, line, offset)
    return fig


def _hatch_cells(ax: Axes, grid: np.ndarray, failed: np.ndarray, single: np.ndarray | None) -> None:
    """Cover failed cells, cells without a value and (clusters panel) single-cluster cells."""
    from matplotlib.patches import Rectangle  # matplotlib: loaded only when drawing

    covered = ~np.isfinite(grid)
    if single is not None:
        covered |= single
    for i, j in zip(*np.nonzero(covered), strict=True):
        if failed[i, j]:
            face, hatch, edge = _FAILED
        elif single is not None and single[i, j]:
            face, hatch, edge = _SINGLE
        else:
            face, hatch, edge = _NO_VALUE
        ax.add_patch(
            Rectangle(
                (j - 0.5, i - 0.5), 1, 1, linewidth=0, facecolor=face, hatch=hatch, edgecolor=edge
            )
        )


def _write_values(ax: Axes, grid: np.ndarray, panel: _Panel, fontsize: float) -> None:
    """Write each finite cell's value in it, dark on light colours and light on dark."""
    (image,) = ax.get_images()
    fmt = ".0f" if panel.metric == "n_clusters" else ".2f"
    for i, j in zip(*np.nonzero(np.isfinite(grid)), strict=True):
        value = float(grid[i, j])
        if panel.metric == "n_clusters" and value == 1:
            colour = "black"  # on the light single-cluster face
        else:
            r, g, b, _ = image.to_rgba(np.array([[value]]))[0, 0]
            colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
        ax.text(
            j,
            i,
            format(value, fmt),
            ha="center",
            va="center",
            fontsize=fontsize,
            color=colour,
            gid="value",
        )


def _mark(
    ax: Axes,
    selected: tuple[int, int] | None,
    oracle: tuple[int, int] | None,
    dot: float,
    line: float,
    offset: float,
) -> None:
    """The red box on the choice and the white dot on the oracle cell (``(row, column)``).

    The dot sits ``offset`` cells up and right of the oracle cell's centre.
    """
    from matplotlib.patches import Rectangle  # matplotlib: loaded only when drawing

    if selected is not None:
        y, x = selected
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
    if oracle is not None:
        y, x = oracle
        ax.plot(
            x + offset,
            y + offset,
            linestyle="none",
            marker="o",
            markersize=dot,
            markerfacecolor="white",
            markeredgecolor="black",
            markeredgewidth=max(0.5, line / 2),
            gid="oracle",
        )


def _legend(
    key: Axes,
    selected: tuple[int, int] | None,
    oracle: tuple[int, int] | None,
    n_failed: int,
    any_no_value: bool,
    n_single: int,
) -> None:
    """The legend of the marks and hatches, in the key slot."""
    # matplotlib: loaded only when drawing
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

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
    for shown, (face, hatch, edge), label in (
        (n_failed, _FAILED, f"failed configuration ({n_failed})"),
        (any_no_value, _NO_VALUE, "no value (NaN)"),
        (n_single, _SINGLE, f"a single cluster ({n_single} cells)"),
    ):
        if shown:
            handles.append(
                Patch(linewidth=0, facecolor=face, hatch=hatch, edgecolor=edge, label=label)
            )
    if handles:
        key.legend(handles=handles, loc="center", fontsize=9, frameon=False, handleheight=1.6)


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
