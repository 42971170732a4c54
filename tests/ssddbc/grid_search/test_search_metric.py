"""``metric=`` through the grid search: cosine is the search of the L2-normalised features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import EphemeralStore
from ssddbc import InvalidInputError
from ssddbc._metric import l2_normalize
from ssddbc.grid_search._inputs import PAIRWISE_ARRAY, PAIRWISE_COSINE_ARRAY
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.grid_search.api import run_clustering_search_on_features
from tests.golden import GOLDEN_DIR

K = range(4, 9)
DP = (40, 60, 80)
# The candidate route (no N x N matrix) with a sampled silhouette, at the golden N.
CANDIDATE = SearchPlan(pairwise_max_n=10, candidate_width=24, silhouette_sample_size=60)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN_DIR / "original_lowdigits.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _search(g: dict[str, np.ndarray], features: Any, **kw: Any) -> Any:
    return run_clustering_search_on_features(
        features,
        g["targets"],
        g["known_mask"],
        g["labeled_mask"],
        k_range=K,
        density_range=DP,
        max_workers=1,
        return_all=True,
        **kw,
    )


def _assert_same_rows(a: Any, b: Any) -> None:
    assert a.results_grid.keys() == b.results_grid.keys()
    for cell, ra in a.results_grid.items():
        rb = b.results_grid[cell]
        for key in ("n_clusters", "n_unknown_clusters", "silhouette_sample"):
            assert ra[key] == rb[key], (cell, key)
        for key in ("all_acc", "old_acc", "new_acc"):
            assert ra[key] == rb[key], (cell, key)
        for key in ("score", "l1_loss", "silhouette"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), (cell, key)
    assert a.best_params == b.best_params
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("plan", [None, CANDIDATE], ids=["matrix", "candidates"])
def test_cosine_search_is_the_search_of_the_normalised_features(
    golden: dict[str, np.ndarray], plan: SearchPlan | None
) -> None:
    x = golden["features"].astype(np.float32)
    scale = np.linspace(0.5, 3.0, x.shape[0], dtype=np.float32)[:, None]
    cosine = _search(golden, x * scale, metric="cosine", plan=plan)  # row scale is irrelevant
    euclid = _search(golden, l2_normalize(x), metric="euclidean", plan=plan)
    _assert_same_rows(cosine, euclid)
    raw = _search(golden, x * scale, metric="euclidean", plan=plan)
    assert any(
        raw.results_grid[c]["score"] != pytest.approx(cosine.results_grid[c]["score"])
        for c in cosine.results_grid
    )


def test_cosine_entries_are_their_own(golden: dict[str, np.ndarray]) -> None:
    x = golden["features"].astype(np.float32)
    with EphemeralStore() as store:
        e = _search(golden, x, store=store)
        c = _search(golden, x, store=store, metric="cosine")
        assert (e.knn_searches, c.knn_searches) == (1, 1)  # no graph shared across metrics
        entries = {p.name for p in store.root.iterdir() if p.is_dir()}
        assert len(entries) == 2
        arrays = {name: {q.name for q in (store.root / name).iterdir()} for name in entries}
        assert sorted(f"array_{PAIRWISE_ARRAY}.npy" in a for a in arrays.values()) == [
            False,
            True,
        ]
        assert sorted(f"array_{PAIRWISE_COSINE_ARRAY}.npy" in a for a in arrays.values()) == [
            False,
            True,
        ]
        again = _search(golden, x, store=store, metric="cosine")
        assert again.knn_searches == 0
        assert again.results_grid == c.results_grid


def test_bad_metric_and_zero_rows_are_refused_before_work(
    golden: dict[str, np.ndarray],
) -> None:
    x = golden["features"].astype(np.float32)
    with pytest.raises(InvalidInputError, match="manhattan"):
        _search(golden, x, metric="manhattan")
    x = x.copy()
    x[3] = 0
    with pytest.raises(InvalidInputError, match="row 3 is all zeros"):
        _search(golden, x, metric="cosine")
    assert _search(golden, x, metric="euclidean").results_grid


def test_the_run_pins_the_cosine_entry_it_ensures(
    golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    import contextlib

    from knncache import KnnCacheWarning, PersistentStore, fingerprint
    from ssddbc.grid_search._inputs import prepare_inputs

    x = golden["features"].astype(np.float32)
    store = PersistentStore(tmp_path / "store")
    mask = np.asarray(golden["labeled_mask"], dtype=bool)
    with contextlib.ExitStack() as scope:
        shared = prepare_inputs(
            store, x, golden["targets"], golden["known_mask"], mask, ~mask,
            k_max=8, pin_into=scope, metric="cosine",
        )  # fmt: skip
        assert shared.ref.fingerprint == fingerprint(x, "cosine") != fingerprint(x)
        with pytest.warns(KnnCacheWarning, match="pinned"):
            store.clear()
        assert shared.ref.load(8).neighbors.shape == (x.shape[0], 8)  # still there
    store.clear()
    assert not [p for p in (tmp_path / "store").iterdir() if p.is_dir()]
