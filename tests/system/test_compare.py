"""``ssddbc-search --compare``: mean ± std over run folders and what differs between them."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc.grid_search._cli import run_batch
from ssddbc.grid_search.compare import MAX_FILE_BYTES, compare_runs, read_run
from tests.system.conftest import SMALL_GRID, run_cli


def _choice(k: int, dp: int, accs: tuple[float | None, ...]) -> dict[str, Any]:
    all_acc, old_acc, new_acc = accs
    return {
        "k": k,
        "density_percentile": dp,
        "score": 0.1,
        "all_acc": all_acc,
        "old_acc": old_acc,
        "new_acc": new_acc,
        "n_clusters": 4,
    }


def _make_run(
    root: Path,
    name: str,
    sel: dict[str, tuple[float | None, ...]],
    orc: dict[str, tuple[float | None, ...]],
    *,
    k_values: list[int] | None = None,
    numpy_version: str = "2.0.0",
) -> Path:
    """A hand-made run folder with the fields the comparison reads."""
    run = root / name
    run.mkdir()
    summary = {
        "evaluated_on": "test",
        "superclasses": {
            sc: {
                "selected": _choice(3, 40, sel[sc]),
                "oracle_best_by_test_accuracy": _choice(5, 65, orc[sc]),
            }
            for sc in sel
        },
    }
    config = {
        "version": 2,
        "feature_cache_dir": "/data/cache",
        "k_values": k_values or [3, 4, 5],
        "metric": "euclidean",
        "knn": {"method": "exact", "params": {}},
        "environment": {
            "packages": {"numpy": numpy_version},
            "started": f"2024-01-01T00:00:0{len(name) % 10}",
        },
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.json").write_text(json.dumps(config))
    return run


SEL = [(0.8, 0.9, 0.7), (0.6, 0.95, 0.4), (0.7, None, 0.5)]
ORC = [(0.85, 0.9, 0.8), (0.9, 0.95, 0.85), (0.75, 0.8, 0.7)]


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    return [
        _make_run(
            tmp_path,
            f"run{i}",
            {"a": SEL[i], "b": ORC[i]},
            {"a": ORC[i], "b": ORC[i]},
            k_values=[3, 4, 5] if i < 2 else [3, 4, 5, 6],
            numpy_version="2.0.0" if i == 0 else "2.1.0",
        )
        for i in range(3)
    ]


def test_means_and_stds_match_numpy(three_runs: list[Path]) -> None:
    result = compare_runs([read_run(r) for r in three_runs])
    a = result["superclasses"]["a"]
    assert a["runs"] == [str(r) for r in three_runs]
    for j, acc in enumerate(("all_acc", "old_acc", "new_acc")):
        values = np.array([np.nan if s[j] is None else s[j] for s in SEL], dtype=float)
        defined = values[~np.isnan(values)]
        assert a["selected"][acc]["mean"] == pytest.approx(defined.mean())
        assert a["selected"][acc]["std"] == pytest.approx(defined.std(ddof=1))
        assert a["selected"][acc]["n"] == defined.size
        orc = np.array([o[j] for o in ORC])
        assert a["oracle"][acc]["mean"] == pytest.approx(orc.mean())
        assert a["oracle"][acc]["std"] == pytest.approx(orc.std(ddof=1))
    assert a["selected"]["old_acc"]["values"][2] is None
    assert a["cells"] == [[3, 40]] * 3


def test_differing_fields_are_listed_and_equal_ones_are_not(three_runs: list[Path]) -> None:
    diffs = compare_runs([read_run(r) for r in three_runs])["differences"]
    assert diffs["k_values"] == [[3, 4, 5], [3, 4, 5], [3, 4, 5, 6]]
    assert diffs["environment.packages.numpy"] == ["2.0.0", "2.1.0", "2.1.0"]
    assert "metric" not in diffs and "knn.method" not in diffs
    assert "environment.started" not in diffs  # differs always, says nothing


def test_the_command_prints_the_table_and_json(
    three_runs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_batch(["--compare", *map(str, three_runs)]) == 0
    out = capsys.readouterr().out
    assert "comparing 3 run(s)" in out
    assert "0.7000 ± 0.1000" in out  # superclass a, selected All: 0.8, 0.6, 0.7
    assert "k_values:" in out and "environment.packages.numpy:" in out
    assert run_batch(["--compare", *map(str, three_runs), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["superclasses"]["b"]["selected"]["all_acc"]["mean"] == pytest.approx(
        np.mean([o[0] for o in ORC])
    )


def test_a_single_run_has_no_std(three_runs: list[Path]) -> None:
    result = compare_runs([read_run(three_runs[0])])
    assert result["superclasses"]["a"]["selected"]["all_acc"]["std"] is None
    assert result["differences"] == {}


def _refused(runs: list[Path], capsys: pytest.CaptureFixture[str]) -> str:
    assert run_batch(["--compare", *map(str, runs)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"evaluated_on": "test", "superclasses": {"a": {"selected": NaN}}}', "NaN"),
        ("[1, 2]", "not a JSON object"),
        ("{", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "JSON"),
    ],
)
def test_a_tampered_summary_is_refused_with_one_line(
    three_runs: list[Path], capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    (three_runs[1] / "summary.json").write_text(text)
    err = _refused(three_runs, capsys)
    assert needle in err and str(three_runs[1] / "summary.json") in err


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("all_acc", "0.9", "all_acc"),
        ("all_acc", 1.5, "all_acc"),
        ("old_acc", True, "old_acc"),
        ("k", 3.5, ".k must be an integer"),
    ],
)
def test_wrongly_typed_fields_are_refused(
    three_runs: list[Path],
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: Any,
    needle: str,
) -> None:
    path = three_runs[2] / "summary.json"
    raw = json.loads(path.read_text())
    raw["superclasses"]["a"]["selected"][field] = value
    path.write_text(json.dumps(raw))
    err = _refused(three_runs, capsys)
    assert needle in err and "superclasses['a'].selected" in err


def test_a_huge_summary_is_refused_before_it_is_read(
    three_runs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = three_runs[0] / "summary.json"
    with open(path, "r+b") as handle:  # sparse: no disk used
        handle.truncate(MAX_FILE_BYTES + 1)
    err = _refused(three_runs, capsys)
    assert f"{MAX_FILE_BYTES + 1} bytes" in err


def test_links_fifos_missing_files_and_repeats_are_refused(
    three_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = three_runs[0] / "summary.json"
    target = tmp_path / "elsewhere.json"
    summary.rename(target)
    summary.symlink_to(target)
    assert "not a regular file" in _refused(three_runs, capsys)
    summary.unlink()
    os.mkfifo(summary)  # would block a plain open() forever
    assert "not a regular file" in _refused(three_runs, capsys)
    summary.unlink()
    assert "no summary.json" in _refused(three_runs, capsys)
    target.rename(summary)
    assert "named twice" in _refused([three_runs[0], three_runs[0]], capsys)
    assert "is not a folder" in _refused([tmp_path / "nothing"], capsys)


def test_bad_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run_batch(["--compare"])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_real_run_folders_are_compared(digits_cache: Path, tmp_path: Path) -> None:
    runs = []
    for i, k_max in enumerate(("6", "7")):
        out = tmp_path / f"out{i}"
        grid = [*SMALL_GRID]
        grid[grid.index("--k_max") + 1] = k_max
        proc = run_cli(
            "--feature_cache_dir",
            str(digits_cache),
            "--output_dir",
            str(out),
            "--max_workers",
            "1",
            "--quiet",
            *grid,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        (run,) = out.iterdir()
        runs.append(run)
    proc = run_cli("--compare", *map(str, runs), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["differences"]["k_values"] == [[3, 4, 5], [3, 4, 5, 6]]
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    for name, entry in result["superclasses"].items():
        values = [s["superclasses"][name]["selected"]["all_acc"] for s in summaries]
        assert entry["selected"]["all_acc"]["mean"] == pytest.approx(np.mean(values))
        assert entry["selected"]["all_acc"]["std"] == pytest.approx(np.std(values, ddof=1))
        assert not math.isnan(entry["oracle"]["all_acc"]["mean"])
    text = run_cli("--compare", *map(str, runs), cwd=tmp_path)
    assert text.returncode == 0 and "k_values:" in text.stdout
