"""Selection warnings, the end table's notes and the progress line, on plain values."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import pytest

from ssddbc.grid_search._diagnose import selection_warnings
from ssddbc.grid_search._execution import ProgressReporter
from ssddbc.grid_search._summary import format_summary, summarise
from ssddbc.grid_search._tasks import ConfigResult

KS = [3, 4, 5, 6]
DPS = [40, 65, 90]


def _sel(k: int, dp: int, n_clusters: int = 5) -> dict[str, Any]:
    return {"k": k, "density_percentile": dp, "n_clusters": n_clusters}


def _kinds(ws: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(w["kind"], w.get("axis", ""), w.get("edge", "")) for w in ws]


def test_an_inner_cell_with_sensible_clusters_warns_nothing() -> None:
    assert selection_warnings(KS, DPS, _sel(4, 65), 5) == []


@pytest.mark.parametrize(
    ("k", "dp", "expected", "words"),
    [
        (3, 65, ("edge", "k", "lower"), "k=3 is the grid's lower edge: extend --k_min below 3"),
        (6, 65, ("edge", "k", "upper"), "extend --k_max above 7"),
        (4, 40, ("edge", "density_percentile", "lower"), "extend --density_min below 40"),
        (4, 90, ("edge", "density_percentile", "upper"), "extend --density_max above 91"),
    ],
)
def test_each_edge_says_which_way_to_extend(
    k: int, dp: int, expected: tuple[str, str, str], words: str
) -> None:
    ws = selection_warnings(KS, DPS, _sel(k, dp), 5)
    assert _kinds(ws) == [expected]
    assert words in ws[0]["message"] and ws[0]["value"] in (k, dp)


def test_a_corner_gives_both_edges() -> None:
    ws = selection_warnings(KS, DPS, _sel(3, 90), 5)
    assert _kinds(ws) == [("edge", "k", "lower"), ("edge", "density_percentile", "upper")]


def test_no_edge_where_the_grid_cannot_be_extended_or_has_one_value() -> None:
    assert selection_warnings([1, 2, 3], [0, 50, 100], _sel(1, 0), 5) == []
    assert selection_warnings([1, 2, 3], [0, 50, 100], _sel(2, 100), 5) == []
    assert selection_warnings([7], [50], _sel(7, 50), 5) == []


def test_a_single_cluster_is_degenerate() -> None:
    ws = selection_warnings(KS, DPS, _sel(4, 65, n_clusters=1), 5)
    assert _kinds(ws) == [("single_cluster", "", "")]
    assert "single cluster" in ws[0]["message"]


def test_far_more_clusters_than_classes_states_the_threshold() -> None:
    # The case: 144 clusters selected for 5 classes.
    ws = selection_warnings(KS, DPS, _sel(4, 65, n_clusters=144), 5)
    assert _kinds(ws) == [("too_many_clusters", "", "")]
    assert ws[0]["threshold"] == 15 and ws[0]["n_classes"] == 5
    assert ws[0]["message"] == (
        "144 clusters for 5 classes: more than 3 × the number of classes (15)"
    )
    assert selection_warnings(KS, DPS, _sel(4, 65, n_clusters=15), 5) == []  # at the threshold
    assert selection_warnings(KS, DPS, _sel(4, 65, n_clusters=144), None) == []  # unknown
    ratio = selection_warnings(KS, DPS, _sel(4, 65, n_clusters=11), 5, max_cluster_ratio=2)
    assert _kinds(ratio) == [("too_many_clusters", "", "")] and "2 ×" in ratio[0]["message"]


# ---- summary.json and the table -----------------------------------------------------------


def _result(group: str, k: int, dp: int, score: float, n_clusters: int, sample: int = 0) -> Any:
    return ConfigResult(
        group=group,
        k=k,
        density_percentile=dp,
        ok=True,
        score=score,
        l1_loss=0.1,
        silhouette=0.2,
        silhouette_se=0.01 if sample else 0.0,
        silhouette_sample=sample,
        all_acc=0.5,
        old_acc=0.5,
        new_acc=0.5,
        n_clusters=n_clusters,
    )


def _summary(results: list[Any], names: list[str], **extra: Any) -> dict[str, Any]:
    return summarise(
        superclasses=names,
        k_values=KS,
        density_values=DPS,
        eval_split="test",
        results=results,
        knn={},
        invocation={},
        **extra,
    )


def test_a_degenerate_selection_is_recorded_and_shown(tmp_path: Path) -> None:
    # A synthetic search whose best score is an inner cell with 144 clusters for 5 classes.
    results = [_result("a", k, dp, 0.0, 5) for k in KS for dp in DPS]
    results[4] = _result("a", 4, 65, 1.0, 144)
    summary = _summary(results, ["a"], n_classes={"a": 5})
    entry = summary["superclasses"]["a"]
    assert entry["n_classes"] == 5
    assert [w["kind"] for w in entry["warnings"]] == ["too_many_clusters"]
    table = format_summary(summary, tmp_path)
    assert "  warning: 144 clusters for 5 classes: more than 3 × the number" in table


def test_baselines_are_recorded_and_shown_with_their_time(tmp_path: Path) -> None:
    results = [_result("a", k, dp, float(k == 4 and dp == 65), 5) for k in KS for dp in DPS]
    base = {
        "k-means": {
            "all_acc": 0.74,
            "old_acc": 0.7,
            "new_acc": 0.8,
            "n_clusters": 5,
            "seconds": 2.5,
        },
        "SS-k-means": {
            "all_acc": 0.81,
            "old_acc": 0.9,
            "new_acc": 0.7,
            "n_clusters": 5,
            "seconds": 0.25,
        },
    }
    summary = _summary(results, ["a"], baselines={"a": base})
    assert summary["superclasses"]["a"]["baselines"] == base
    assert summary["superclasses"]["a"]["warnings"] == []
    lines = format_summary(summary, tmp_path).splitlines()
    km = next(x for x in lines if x.startswith("  k-means"))
    assert "0.7400" in km and "2.5s" in km
    assert any(x.startswith("  SS-k-means") and "0.8100" in x for x in lines)
    assert "k-means" not in format_summary(_summary(results, ["a"]), tmp_path)


def test_the_sampled_silhouette_sentence_is_said_once(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    results = [_result(g, k, dp, 0.0, 5, sample=2000) for g in names for k in KS for dp in DPS]
    table = format_summary(_summary(results, names), tmp_path)
    assert sum("sampl" in line for line in table.splitlines()) == 1, table
    assert "silhouette sampled for a, b, c" in table
    exact = [_result(g, k, dp, 0.0, 5) for g in names for k in KS for dp in DPS]
    assert "sampled" not in format_summary(_summary(exact, names), tmp_path)


def test_the_table_names_only_the_outputs_that_exist(tmp_path: Path) -> None:
    results = [_result("a", k, dp, 0.0, 5) for k in KS for dp in DPS]
    summary = _summary(results, ["a"])
    last = format_summary(summary, tmp_path).splitlines()[-1]
    assert last == ""
    (tmp_path / "results.csv").write_text("x\n")
    (tmp_path / "heatmap_a.svg").write_text("x\n")
    last = format_summary(summary, tmp_path).splitlines()[-1]
    assert "results.csv" in last and "heatmap_*.svg" in last and "summary.json" not in last
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pseudo_labels.npz").write_bytes(b"x")
    last = format_summary(summary, tmp_path).splitlines()[-1]
    assert "pseudo-labels:" in last and "pseudo_labels.npz (1)" in last


# ---- the progress line -------------------------------------------------------------------


def test_the_progress_line_gives_the_best_score_of_each_superclass() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        progress = ProgressReporter(2, "search")
        progress(_result("high", 3, 40, 0.9, 5))  # a high score on one superclass...
        progress(_result("low", 3, 40, 0.1, 5))  # ...is not the other one's best
        progress.close()
    lines = err.getvalue().splitlines()
    assert "best score of high 0.9000" in lines[0]
    assert "best score of low 0.1000" in lines[-1], lines
    assert progress.best == {"high": 0.9, "low": 0.1}
