"""The search result's per-stage timings and the preparation progress lines."""

from __future__ import annotations

import math

from ssddbc.data import make_synthetic_superclass
from ssddbc.grid_search.api import run_clustering_search_on_features


def _search(silent: bool):  # type: ignore[no-untyped-def]
    data = make_synthetic_superclass(n=300, d=16, seed=0)
    return run_clustering_search_on_features(
        data.features,
        data.targets,
        data.known_mask,
        data.labeled_mask,
        k_range=[3, 4],
        density_range=[50, 70],
        max_workers=1,
        silent=silent,
    )


def test_the_result_times_each_stage() -> None:
    result = _search(silent=True)
    assert set(result.timings) == {"prepare", "grid", "selection"}
    assert all(math.isfinite(v) and v >= 0.0 for v in result.timings.values())


def test_progress_names_the_preparation_steps(capsys) -> None:  # type: ignore[no-untyped-def]
    _search(silent=False)
    err = capsys.readouterr().err
    assert "[SS-DDBC grid search] neighbour graph (N=300, k=64, euclidean): done in" in err
    assert "[SS-DDBC grid search] distance matrix (300 x 300): done in" in err
    assert "[SS-DDBC grid search] 4/4 configurations" in err


def test_a_silent_search_prints_nothing(capsys) -> None:  # type: ignore[no-untyped-def]
    _search(silent=True)
    assert capsys.readouterr().err == ""
