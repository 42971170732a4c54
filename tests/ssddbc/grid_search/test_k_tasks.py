"""A per-k task scores each configuration exactly as a task of its own, on every route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import PersistentStore
from ssddbc.evaluation import sampled_silhouette, silhouette_sample_indices, unlabelled_silhouette
from ssddbc.evaluation.loss_function import silhouette_rows
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.grid_search._tasks import (
    ConfigResult,
    ConfigTask,
    KTask,
    clear_resources,
    evaluate_config,
    evaluate_k,
    prepare_inputs,
)
from tests.golden import GOLDEN_DIR

DPS = [40, 55, 70, 85, 95]
ROUTES = {
    # matrix + exact silhouette (the default plan at N = 901)
    "matrix": SearchPlan(),
    # matrix for fallback rows, sampled silhouette
    "matrix+sampled": SearchPlan(exact_silhouette_max_n=500, silhouette_sample_size=150),
    # no matrix, exact silhouette from distance blocks
    "blocks": SearchPlan(pairwise_max_n=500),
    # no matrix, sampled silhouette (the large-N route)
    "large": SearchPlan(pairwise_max_n=500, exact_silhouette_max_n=500, silhouette_sample_size=150),
}


@pytest.fixture(scope="module")
def golden() -> tuple[np.ndarray, ...]:
    with np.load(GOLDEN_DIR / "original_lowdigits.npz", allow_pickle=False) as z:
        return tuple(z[k] for k in ("features", "targets", "known_mask", "labeled_mask"))


def _comparable(r: ConfigResult) -> dict[str, Any]:
    d = dict(vars(r))
    del d["seconds"], d["pid"]
    return d


@pytest.mark.parametrize("route", list(ROUTES))
def test_k_task_equals_single_configuration_tasks(
    golden: tuple[np.ndarray, ...], tmp_path: Path, route: str
) -> None:
    X, y, known, labeled = golden
    plan = ROUTES[route]
    shared = prepare_inputs(
        PersistentStore(tmp_path), X, y, known, labeled, ~labeled, k_max=12, plan=plan
    )
    assert shared.candidate_width == 64  # the wide graph on every route
    assert shared.has_pairwise == (plan.pairwise_max_n >= len(X))
    try:
        for k in (3, 12):
            configs = tuple(ConfigTask(shared=shared, k=k, density_percentile=dp) for dp in DPS)
            together = evaluate_k(KTask(configs))
            alone = [evaluate_config(c) for c in configs]
            assert [r.cell for r in together] == [r.cell for r in alone]
            assert all(r.ok for r in together), [r.error for r in together]
            assert [_comparable(r) for r in together] == [_comparable(r) for r in alone]
            # The sampled silhouette reuses the previous partition's sums: any order, any
            # earlier partition, gives the same bits.
            backwards = evaluate_k(KTask(configs[::-1]))
            assert [_comparable(r) for r in backwards] == [_comparable(r) for r in alone[::-1]]
            sampled = plan.exact_silhouette_max_n < len(X)
            for r in together:
                assert (r.silhouette_sample == 150) == sampled
                assert (r.silhouette_se > 0) if sampled else (r.silhouette_se == 0.0)
    finally:
        clear_resources()


def test_a_failing_k_task_gives_each_configuration_its_own_error(
    golden: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    X, y, known, labeled = golden
    shared = prepare_inputs(PersistentStore(tmp_path), X, y, known, labeled, ~labeled, k_max=5)
    try:
        # k = N cannot run (1 <= k < N): the shared part fails, each configuration says so
        configs = tuple(
            ConfigTask(shared=shared, k=len(X), density_percentile=dp) for dp in DPS[:2]
        )
        results = evaluate_k(KTask(configs))
        assert [r.density_percentile for r in results] == DPS[:2]
        assert all(not r.ok and "InvalidInputError: k" in r.error for r in results), results
    finally:
        clear_resources()


def test_sampled_silhouette_and_its_standard_error(golden: tuple[np.ndarray, ...]) -> None:
    X, _, _, labeled = golden
    labels = np.arange(len(X)) % 7
    population = int((~labeled).sum())
    full = unlabelled_silhouette(labels, labeled, X=X)
    for size in (50, 200):
        index = silhouette_sample_indices(labeled, size, 0)
        rows = (index, silhouette_rows(X, index))
        mean, se = sampled_silhouette(labels, labeled, rows)
        assert mean == unlabelled_silhouette(labels, labeled, silhouette_rows=rows)
        # Against an independent computation of the finite-population standard error.
        from sklearn.metrics import silhouette_samples

        values = silhouette_samples(X.astype(np.float64), labels)[index]
        expected = values.std(ddof=1) / np.sqrt(size) * np.sqrt(1 - size / population)
        assert se == pytest.approx(expected, rel=1e-6)
        assert abs(mean - full) < 6 * se  # the estimate is within a few errors of the truth
    everyone = np.flatnonzero(~labeled)
    mean, se = sampled_silhouette(labels, labeled, (everyone, silhouette_rows(X, everyone)))
    assert se == 0.0 and mean == pytest.approx(full, abs=1e-12)
    one_cluster = np.zeros(len(X), dtype=np.int64)
    assert sampled_silhouette(one_cluster, labeled, rows) == (0.0, 0.0)
