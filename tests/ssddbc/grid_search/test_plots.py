"""The run heatmaps (``_plots``): colour range, panels, legend, marks and the files written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import InvalidInputError, SearchConfigError
from ssddbc.grid_search._plots import (
    DEFAULT_CLIP,
    PLOT_FORMATS,
    colour_levels,
    heatmap_figure,
    mark_sizes,
    parse_plot_formats,
    plot_heatmap,
    render,
    robust_limits,
)
from ssddbc.grid_search._tasks import ConfigResult

MAGIC = {"png": (b"\x89PNG\r\n\x1a\n",), "pdf": (b"%PDF",), "svg": (b"<?xml", b"<svg")}


def _results(
    ks: list[int],
    dps: list[int],
    *,
    failed: set[tuple[int, int]] = frozenset(),
    nan_new: bool = False,
) -> list[ConfigResult]:
    rng = np.random.default_rng(0)
    out = []
    for k in ks:
        for dp in dps:
            if (k, dp) in failed:
                out.append(ConfigResult("g", k, dp, ok=False, error="ValueError: boom"))
                continue
            score = 0.6 - 0.001 * abs(k - 5) - 0.002 * abs(dp - 50) + 0.0001 * rng.random()
            out.append(
                ConfigResult(
                    "g",
                    k,
                    dp,
                    ok=True,
                    score=score,
                    all_acc=0.9 - 0.01 * abs(k - 6),
                    new_acc=float("nan") if nan_new and k == ks[0] else 0.8 - 0.01 * k,
                    n_clusters=5,
                )
            )
    # One very bad cell: it must not stretch the colour range of the plateau.
    out[-1].score = -5.0
    return out


def _figure(ks: list[int], dps: list[int], **kwargs: Any) -> Any:
    results = kwargs.pop("results", None) or _results(ks, dps, **kwargs)
    return heatmap_figure(
        "title", results, ks, dps, (ks[1], dps[0]), (ks[-2], dps[-1]), eval_split="unlabelled"
    )


def _panels(fig: Any) -> list[Any]:
    return [ax for ax in fig.axes if ax.get_label() in ("score", "all_acc", "new_acc")]


def _legend_texts(fig: Any) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _oracle_marks(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_gid() == "oracle"]


# ---- the colour range -------------------------------------------------------------------


@pytest.mark.parametrize(("lower", "upper"), [DEFAULT_CLIP, (0.0, 100.0), (10.0, 90.0)])
def test_robust_limits_are_the_numpy_percentiles_of_the_finite_cells(
    lower: float, upper: float
) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(12, 18))
    values[0, :3] = -50.0  # outliers
    values[1, 1] = np.nan
    values[2, 2] = np.inf
    finite = values[np.isfinite(values)]
    lo, hi = robust_limits(values, lower, upper)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(finite, [lower, upper])))
    if lower > 0:
        assert lo > -50.0  # the outliers are clipped, not the range's end


def test_robust_limits_of_degenerate_panels() -> None:
    assert robust_limits([np.nan, np.nan]) == (0.0, 1.0)
    lo, hi = robust_limits([0.7, 0.7, np.nan])
    assert lo < 0.7 < hi
    lo, hi = robust_limits([0.0, 0.0])
    assert lo < 0.0 < hi


@pytest.mark.parametrize("clip", [(-1.0, 100.0), (50.0, 50.0), (60.0, 40.0), (0.0, 101.0)])
def test_bad_clip_percentiles_are_refused(clip: tuple[float, float]) -> None:
    with pytest.raises(InvalidInputError, match=r"0 <= lower < upper <= 100"):
        robust_limits([1.0, 2.0], *clip)
    with pytest.raises(InvalidInputError):
        colour_levels([1.0, 2.0], *clip)


def test_colour_levels_are_percentile_steps_between_the_limits() -> None:
    rng = np.random.default_rng(2)
    values = rng.random(200)
    levels = colour_levels(values, 5.0, 100.0, 10)
    expected = np.percentile(values, np.linspace(5.0, 100.0, 11))
    np.testing.assert_allclose(levels, expected)
    assert (levels[0], levels[-1]) == pytest.approx(robust_limits(values, 5.0, 100.0))
    assert np.all(np.diff(levels) > 0)
    # Tied values merge their steps instead of repeating a boundary.
    tied = colour_levels([0.0] * 50 + [1.0, 2.0, 3.0])
    assert np.all(np.diff(tied) > 0) and tied[0] == 0.0 and tied[-1] == 3.0
    with pytest.raises(InvalidInputError, match="n_levels"):
        colour_levels(values, n_levels=0)


def test_a_top_plateau_gets_several_colours_despite_outliers() -> None:
    from matplotlib.colors import BoundaryNorm

    # 180 cells on a plateau 0.600..0.610 and 10 disastrous cells at -3: the linear range
    # would paint the whole plateau in the top 0.3% of the colour map.
    values = np.concatenate([np.linspace(0.600, 0.610, 180), np.full(10, -3.0)])
    norm = BoundaryNorm(colour_levels(values), ncolors=256, extend="min")
    colours = {int(c) for c in np.asarray(norm(values[:180]))}
    assert len(colours) >= 8


# ---- the figure -------------------------------------------------------------------------


def test_three_panels_share_the_grid_and_name_the_split() -> None:
    ks, dps = [3, 4, 5, 6, 7], [40, 50, 60]
    fig = _figure(ks, dps)
    panels = _panels(fig)
    assert [ax.get_label() for ax in panels] == ["score", "all_acc", "new_acc"]
    assert len(fig.axes) == 6  # three heatmaps, three colour bars
    assert "label-only score" in panels[0].get_title()
    assert panels[1].get_title() == "All accuracy, unlabelled split"
    assert panels[2].get_title() == "New accuracy, unlabelled split"
    for ax in panels:
        (image,) = ax.get_images()
        assert image.get_array().shape == (len(dps), len(ks))


def test_each_panel_colour_range_is_the_robust_range_and_says_so() -> None:
    ks, dps = [3, 4, 5, 6, 7, 8], [40, 50, 60, 70]
    results = _results(ks, dps)
    fig = heatmap_figure("t", results, ks, dps, None, None, eval_split="test")
    for ax in _panels(fig):
        metric = ax.get_label()
        values = [getattr(r, metric) for r in results]
        (image,) = ax.get_images()
        assert (image.norm.vmin, image.norm.vmax) == pytest.approx(robust_limits(values))
    score_bar = next(ax for ax in fig.axes if ax not in _panels(fig))
    label = score_bar.get_ylabel()
    scores = np.array([r.score for r in results])
    below = int(np.sum(scores < np.percentile(scores, 5)))
    assert below >= 1  # the bad cell at least
    assert "5th-100th percentile" in label and f"({below} lower cell(s) clipped)" in label
    score_image, _, new_image = (ax.get_images()[0] for ax in _panels(fig))
    assert score_image.norm.extend == "min"  # the colour bar's arrow: clipped cells
    # New accuracy's lowest value is tied over four cells, its 5th percentile: none clipped.
    assert new_image.norm.extend == "neither"
    new_bar = [ax for ax in fig.axes if ax not in _panels(fig)][2]
    assert "clipped" not in new_bar.get_ylabel()


def test_the_legend_names_every_mark_and_failed_or_missing_cells() -> None:
    ks, dps = [3, 4, 5, 6], [40, 50, 60]
    fig = _figure(ks, dps, failed={(5, 50)}, nan_new=True)
    texts = _legend_texts(fig)
    assert texts == [
        "label-only choice (k=4, dp=40)",
        "oracle best by All accuracy (k=5, dp=60)",
        "failed configuration (1)",
        "no value (NaN)",
    ]
    score = _panels(fig)[0]
    hatched = {
        (p.get_x() + 0.5, p.get_y() + 0.5, p.get_hatch()) for p in score.patches if p.get_hatch()
    }
    assert hatched == {(2.0, 1.0, "xx")}  # (column of k=5, row of dp=50)
    new = _panels(fig)[2]
    assert sum(p.get_hatch() == "///" for p in new.patches) == len(dps)  # k=3 has no New acc


def test_a_clean_grid_lists_only_the_two_marks() -> None:
    fig = _figure([3, 4, 5], [40, 50])
    assert len(_legend_texts(fig)) == 2
    assert all(not p.get_hatch() for ax in _panels(fig) for p in ax.patches)


def test_marks_sit_on_their_cells_in_every_panel() -> None:
    ks, dps = [3, 4, 5, 6], [40, 50, 60]
    fig = _figure(ks, dps)
    for ax in _panels(fig):
        (box,) = [p for p in ax.patches if p.get_gid() == "selected"]
        assert (box.get_x(), box.get_y()) == (1 - 0.5, 0 - 0.5)  # k=4, dp=40
        (dot,) = _oracle_marks(ax)
        assert (list(dot.get_xdata()), list(dot.get_ydata())) == ([2], [2])  # k=5, dp=60


def test_marks_grow_on_a_smaller_grid() -> None:
    small = _figure([3, 4], [40, 50])
    large = _figure(list(range(3, 43)), list(range(5, 100, 3)))
    s_dot = _oracle_marks(_panels(small)[0])[0].get_markersize()
    l_dot = _oracle_marks(_panels(large)[0])[0].get_markersize()
    assert s_dot > 2 * l_dot
    s_box = next(p for p in _panels(small)[0].patches if p.get_gid() == "selected")
    l_box = next(p for p in _panels(large)[0].patches if p.get_gid() == "selected")
    assert s_box.get_linewidth() > l_box.get_linewidth()
    # The dot fits inside its cell on the large grid (one cell in points).
    ax = _panels(large)[0]
    cell = ax.get_window_extent().width / 40 * 72 / large.dpi
    assert l_dot < cell


def test_mark_sizes_are_monotone_and_bounded() -> None:
    sizes = [mark_sizes(c) for c in (0.0, 2.0, 10.0, 40.0, 400.0)]
    dots = [d for d, _ in sizes]
    assert dots == sorted(dots) and dots[0] > 0
    assert all(0.75 <= line <= 4.0 for _, line in sizes)


# ---- formats and files ------------------------------------------------------------------


def test_parse_plot_formats() -> None:
    assert parse_plot_formats("png") == ("png",)
    assert parse_plot_formats("png,pdf,svg") == PLOT_FORMATS
    assert parse_plot_formats(" SVG , png,,svg,") == ("svg", "png")
    with pytest.raises(SearchConfigError, match=r"--plot_format.*'jpg'") as info:
        parse_plot_formats("png,jpg")
    assert info.value.option == "--plot_format"
    for empty in ("", " , "):
        with pytest.raises(SearchConfigError, match="no format"):
            parse_plot_formats(empty)


@pytest.mark.parametrize("fmt", PLOT_FORMATS)
def test_each_format_is_written_with_its_magic_bytes(tmp_path: Path, fmt: str) -> None:
    ks, dps = [3, 4, 5], [40, 50]
    written = plot_heatmap(
        tmp_path / "heatmap_a.b",
        "t",
        _results(ks, dps),
        ks,
        dps,
        (3, 40),
        (5, 50),
        eval_split="test",
        formats=(fmt,),
    )
    assert written == [tmp_path / f"heatmap_a.b.{fmt}"]
    data = written[0].read_bytes()
    assert data.startswith(MAGIC[fmt]), data[:16]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"heatmap_a.b.{fmt}"]  # no temporaries


def test_all_formats_at_once_and_the_same_bytes_twice(tmp_path: Path) -> None:
    ks, dps = [3, 4, 5], [40, 50]
    args = ("t", _results(ks, dps), ks, dps, (3, 40), (5, 50))
    written = plot_heatmap(tmp_path / "h", *args, eval_split="test", formats=PLOT_FORMATS)
    assert [p.suffix for p in written] == [".png", ".pdf", ".svg"]
    fig = heatmap_figure(*args, eval_split="test")
    for path in written:
        assert render(fig, path.suffix[1:]) == path.read_bytes(), path.name
    with pytest.raises(SearchConfigError):
        render(fig, "jpg")


def test_leftover_temporaries_of_every_format_are_swept(tmp_path: Path) -> None:
    from ssddbc.grid_search._files import sweep_temporaries

    ours = [f".heatmap_a.{fmt}.x1y2.tmp" for fmt in PLOT_FORMATS]
    foreign = [".heatmap_a.gif.x1y2.tmp", "heatmap_a.pdf"]
    for name in ours + foreign:
        (tmp_path / name).write_bytes(b"half")
    assert sorted(sweep_temporaries(tmp_path)) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(foreign)
