"""The run heatmaps (``_plots``): colour scales, panels, values, legend, marks and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import InvalidInputError, SearchConfigError
from ssddbc.grid_search._plots import (
    DEFAULT_CLIP,
    PANELS,
    PLOT_FORMATS,
    heatmap_figure,
    mark_sizes,
    panel_norm,
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
                    old_acc=0.95 - 0.02 * abs(dp - 50) / 10,
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
    return [ax for ax in fig.axes if ax.get_label() in PANELS]


def _panel(fig: Any, metric: str) -> Any:
    (ax,) = [ax for ax in fig.axes if ax.get_label() == metric]
    return ax


def _legend_texts(fig: Any) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _oracle_marks(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_gid() == "oracle"]


def _cell_values(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == "value"]


# ---- the colour scales ------------------------------------------------------------------


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
        panel_norm("score", [1.0, 2.0], clip)
    with pytest.raises(InvalidInputError):
        heatmap_figure("t", [], [3], [40], None, None, eval_split="test", clip=clip)


def _plateau_results() -> tuple[list[ConfigResult], list[int], list[int]]:
    """189 cells: 187 on a plateau at 0.55 and two top cells at 0.966 and 0.994."""
    ks, dps = list(range(3, 24)), list(range(40, 85, 5))  # 21 x 9 = 189 cells
    out = []
    for n, (k, dp) in enumerate((k, dp) for k in ks for dp in dps):
        value = {0: 0.966, 1: 0.994}.get(n, 0.55)
        out.append(
            ConfigResult(
                "g",
                k,
                dp,
                ok=True,
                score=value,
                all_acc=value,
                new_acc=value,
                old_acc=value,
                n_clusters=1 if value == 0.55 else 7,
            )
        )
    return out, ks, dps


@pytest.mark.parametrize("metric", ["score", "all_acc", "old_acc", "new_acc"])
def test_equal_values_share_a_colour_and_the_best_cells_stand_out(metric: str) -> None:
    results, ks, dps = _plateau_results()
    fig = heatmap_figure("t", results, ks, dps, (3, 45), (3, 40), eval_split="test")
    (image,) = _panel(fig, metric).get_images()
    values = np.ma.filled(image.get_array(), np.nan)
    rgba = image.to_rgba(values)
    top_a, top_b = rgba[0, 0], rgba[1, 0]  # 0.966 at (k=3, dp=40), 0.994 at (k=3, dp=45)
    plateau = rgba[values == 0.55]
    assert len(plateau) == 187
    assert np.all(plateau == plateau[0])  # equal values, one colour
    assert not np.array_equal(top_a, plateau[0]) and not np.array_equal(top_b, plateau[0])
    assert not np.array_equal(top_a, top_b)  # the two best cells differ too
    # The colour follows the value: the plateau is far from the top of the scale.
    norm = image.norm
    assert norm(0.55) < norm(0.966) < norm(0.994)
    assert norm(0.994) - norm(0.55) >= 0.4


def test_each_panel_has_its_scale() -> None:
    from matplotlib.colors import LogNorm

    rng = np.random.default_rng(3)
    scores = np.concatenate([[-5.0] * 10, rng.uniform(0.5, 0.6, 90)])
    norm, clipped = panel_norm("score", scores)
    assert (norm.vmin, norm.vmax) == pytest.approx(robust_limits(scores)) and clipped == 0
    scores[:2] = -9.0  # now below the 5th percentile
    assert panel_norm("score", scores)[1] == 2
    norm, clipped = panel_norm("score", scores, (0.0, 100.0))
    assert (norm.vmin, norm.vmax, clipped) == (-9.0, pytest.approx(scores.max()), 0)
    for metric in ("all_acc", "old_acc", "new_acc"):
        norm, clipped = panel_norm(metric, [0.55, 0.56, np.nan])
        assert (norm.vmin, norm.vmax, clipped) == (0.0, 1.0, 0)  # fixed, not the cells'
    norm, clipped = panel_norm("n_clusters", [1, 1, 4, 144])
    assert isinstance(norm, LogNorm) and (norm.vmin, norm.vmax, clipped) == (2.0, 144.0, 0)
    norm, _ = panel_norm("n_clusters", [1, 1, np.nan])
    assert (norm.vmin, norm.vmax) == (2.0, 3.0)


def test_clipped_score_cells_get_the_colour_bar_arrow_and_a_count() -> None:
    ks, dps = [3, 4, 5, 6, 7, 8], [40, 50, 60, 70]
    results = _results(ks, dps)
    fig = heatmap_figure("t", results, ks, dps, None, None, eval_split="test")
    scores = np.array([r.score for r in results])
    below = int(np.sum(scores < np.percentile(scores, 5)))
    assert below >= 1  # the bad cell at least
    (score_image,) = _panel(fig, "score").get_images()
    assert score_image.colorbar.extend == "min"
    label = score_image.colorbar.ax.get_ylabel()
    assert "linear, 5th percentile of the cells to max" in label
    assert f"({below} lower cell(s) clipped)" in label
    for metric in ("all_acc", "new_acc", "n_clusters"):
        (image,) = _panel(fig, metric).get_images()
        assert image.colorbar.extend == "neither"
        assert "clipped" not in image.colorbar.ax.get_ylabel()
    (acc,) = _panel(fig, "all_acc").get_images()
    assert "test split, fixed 0-1 scale" in acc.colorbar.ax.get_ylabel()


# ---- the figure -------------------------------------------------------------------------


def test_five_panels_share_the_grid() -> None:
    ks, dps = [3, 4, 5, 6, 7], [40, 50, 60]
    fig = _figure(ks, dps)
    panels = _panels(fig)
    assert [ax.get_label() for ax in panels] == list(PANELS)
    assert PANELS == ("score", "n_clusters", "all_acc", "old_acc", "new_acc")
    assert len(fig.axes) == 11  # five heatmaps, five colour bars, the key
    titles = [ax.get_title().split("\n")[0] for ax in panels]
    assert titles == [
        "label-only score (-L1 + 3·silhouette)",
        "number of clusters",
        "All accuracy",
        "Old accuracy",
        "New accuracy",
    ]
    for ax in panels:
        (image,) = ax.get_images()
        assert image.get_array().shape == (len(dps), len(ks))


def test_the_choice_and_oracle_values_are_written_in_every_panel_title() -> None:
    ks, dps = [3, 4, 5, 6], [40, 50, 60]
    results = _results(ks, dps)
    fig = heatmap_figure("t", results, ks, dps, (4, 40), (5, 60), eval_split="test")
    chosen = next(r for r in results if (r.k, r.density_percentile) == (4, 40))
    best = next(r for r in results if (r.k, r.density_percentile) == (5, 60))
    for metric in ("score", "all_acc", "old_acc", "new_acc"):
        line = _panel(fig, metric).get_title().split("\n")[1]
        assert line == (
            f"choice {getattr(chosen, metric):.3f} · oracle {getattr(best, metric):.3f}"
        )
    assert _panel(fig, "n_clusters").get_title().endswith("\nchoice 5 · oracle 5")
    failed = heatmap_figure(
        "t", _results(ks, dps, failed={(4, 40)}), ks, dps, (4, 40), None, eval_split="test"
    )
    assert _panel(failed, "all_acc").get_title().endswith("\nchoice failed")


def test_cell_values_are_written_when_legible_only() -> None:
    ks, dps = [3, 4, 5, 6], [40, 50, 60]
    results = _results(ks, dps)
    small = heatmap_figure("t", results, ks, dps, None, None, eval_split="test")
    texts = _cell_values(_panel(small, "all_acc"))
    assert sorted(texts) == sorted(f"{r.all_acc:.2f}" for r in results)
    assert sorted(_cell_values(_panel(small, "n_clusters"))) == ["5"] * len(results)
    large_ks, large_dps = list(range(3, 43)), list(range(5, 100, 3))
    large = heatmap_figure(
        "t", _results(large_ks, large_dps), large_ks, large_dps, None, None, eval_split="test"
    )
    assert all(not _cell_values(ax) for ax in _panels(large))


def test_single_cluster_cells_are_marked_in_the_clusters_panel() -> None:
    ks, dps = [3, 4, 5], [40, 50]
    results = _results(ks, dps)
    for r in results:
        if r.k == 3:
            r.n_clusters = 1
    fig = heatmap_figure("t", results, ks, dps, None, None, eval_split="test")
    clusters = _panel(fig, "n_clusters")
    dotted = {(p.get_x() + 0.5, p.get_y() + 0.5) for p in clusters.patches if p.get_hatch() == ".."}
    assert dotted == {(0.0, 0.0), (0.0, 1.0)}  # the column of k=3
    (image,) = clusters.get_images()
    assert np.asarray(image.get_array().mask)[:, 0].all()  # not drawn in the count colours
    assert not any(p.get_hatch() for ax in _panels(fig) if ax is not clusters for p in ax.patches)
    assert "a single cluster (2 cells)" in _legend_texts(fig)


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
    for ax in _panels(fig):
        hatched = {
            (p.get_x() + 0.5, p.get_y() + 0.5, p.get_hatch()) for p in ax.patches if p.get_hatch()
        }
        if ax.get_label() == "new_acc":
            assert sum(h == "///" for _, _, h in hatched) == len(dps)  # k=3 has no New acc
        assert (2.0, 1.0, "xx") in hatched  # (column of k=5, row of dp=50)


def test_a_clean_grid_lists_only_the_two_marks() -> None:
    fig = _figure([3, 4, 5], [40, 50])
    assert len(_legend_texts(fig)) == 2
    assert all(not p.get_hatch() for ax in _panels(fig) for p in ax.patches)


@pytest.mark.parametrize("size", ["small", "large"])
def test_marks_sit_on_their_cells_in_every_panel(size: str) -> None:
    ks, dps = (
        ([3, 4, 5, 6], [40, 50, 60])
        if size == "small"
        else (list(range(3, 43)), list(range(40, 100, 2)))
    )
    fig = _figure(ks, dps)
    for ax in _panels(fig):
        (box,) = [p for p in ax.patches if p.get_gid() == "selected"]
        assert (box.get_x(), box.get_y()) == (1 - 0.5, 0 - 0.5)  # k=4, dp=40
        (dot,) = _oracle_marks(ax)
        x, y = dot.get_xdata()[0], dot.get_ydata()[0]
        j, i = len(ks) - 2, len(dps) - 1  # ks[-2], dps[-1]
        assert abs(x - j) < 0.5 and abs(y - i) < 0.5
        # The dot leaves the centre to the written value only when values are written.
        assert (x == j) == (not _cell_values(ax))


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


def test_leftover_pseudo_label_temporaries_in_superclass_folders_are_swept(
    tmp_path: Path,
) -> None:
    from ssddbc.grid_search._files import sweep_temporaries

    run = tmp_path / "run"
    (run / "sc").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    ours = run / "sc" / ".pseudo_labels.npz.0123456789abcdef.tmp"
    kept = [run / "sc" / "pseudo_labels.npz", run / "sc" / ".notes.npz.x.tmp"]
    for path in [ours, *kept]:
        path.write_bytes(b"half")
    # A link to a folder outside the run is never followed into.
    outside = tmp_path / "elsewhere" / ".pseudo_labels.npz.0123456789abcdef.tmp"
    outside.write_bytes(b"not ours")
    (run / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert sweep_temporaries(run) == ["sc/.pseudo_labels.npz.0123456789abcdef.tmp"]
    assert not ours.exists() and all(p.exists() for p in kept)
    assert outside.exists()
