"""Keep ``benchmarks/bench_clustering.py`` from rotting: its ``--quick`` mode must run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_clustering.py"


@pytest.mark.slow
def test_quick_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_clustering", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "labels identical to the oracle: True" in out
