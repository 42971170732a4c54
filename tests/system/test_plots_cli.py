"""``ssddbc-search --plot_format``: one heatmap file per format, checked up front, not identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.conftest import SMALL_GRID, run_cli

pytestmark = pytest.mark.slow  # CLI subprocesses

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}
NAMES = ("digits_high", "digits_low")


def _heatmaps(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.glob("heatmap_*"))}


def test_every_format_is_written_and_a_resume_may_choose_another(
    digits_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    common = ("--feature_cache_dir", str(digits_cache), "--output_dir", str(out), *SMALL_GRID)
    proc = run_cli(*common, "--n_jobs", "1", "--plot_format", "png,pdf,svg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = out.iterdir()
    files = _heatmaps(run)
    assert sorted(files) == sorted(f"heatmap_{n}.{f}" for n in NAMES for f in MAGIC)
    for name, data in files.items():
        assert data.startswith(MAGIC[name.rsplit(".", 1)[1]]), name
        if name.endswith(".svg"):
            assert b"<svg" in data[:1000]
    assert f"heatmaps: {run}/heatmap_*.{{png,pdf,svg}}" in proc.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert sorted(summary["heatmaps"]) == sorted(files)
    config = (run / "config.json").read_text()
    assert "plot" not in json.dumps(json.loads(config)["identity"])

    # The plot format is not part of the run: a resume with another one is accepted and
    # writes that format only; drawing again gives the same bytes.
    (run / "heatmap_digits_low.svg").unlink()
    pdf = (run / "heatmap_digits_low.pdf").stat().st_mtime_ns
    again = run_cli("--resume", str(run), "--plot_format", "svg", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"heatmaps: {run}/heatmap_*.svg" in again.stdout
    svg = (run / "heatmap_digits_low.svg").read_bytes()
    assert svg.startswith(MAGIC["svg"]) and b"<svg" in svg[:1000]
    assert (run / "heatmap_digits_low.pdf").stat().st_mtime_ns == pdf
    third = run_cli("--resume", str(run), "--plot_format", "svg", "--quiet", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert (run / "heatmap_digits_low.svg").read_bytes() == svg
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heatmaps"] == [f"heatmap_{n}.svg" for n in summary["superclasses"]]


@pytest.mark.parametrize("value", ["png,gif", "", "pdf,,jpeg"])
def test_a_bad_format_is_a_one_line_usage_error_before_any_work(
    digits_cache: Path, tmp_path: Path, value: str
) -> None:
    out = tmp_path / "runs"
    proc = run_cli(
        "--feature_cache_dir",
        str(digits_cache),
        "--output_dir",
        str(out),
        *SMALL_GRID,
        "--plot_format",
        value,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ssddbc-search: error: argument --plot_format:"), lines
    assert ("no format" if not value else repr(value.split(",")[-1])) in lines[0]
    assert "png, pdf, svg" in lines[0]
    assert proc.stdout == ""
    assert not out.exists()  # no run folder
    assert not list(digits_cache.glob("*/knn_cache"))  # no neighbour search
