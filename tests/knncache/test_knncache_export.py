"""``KnnGraph.to_csr`` against scikit-learn's ``kneighbors_graph``, and ``umap_knn``'s form.

The comparison data has duplicate points (each of the first rows is repeated once), so that
explicit zeros matter, and otherwise continuous values, so that the neighbour sets are not
ambiguous; the order of tied neighbours is compared as sets.
"""

from __future__ import annotations

import builtins
import pickle
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from sklearn.neighbors import kneighbors_graph, sort_graph_by_row_values

from knncache import (
    EphemeralStore,
    InvalidKError,
    InvalidParameterError,
    KnnGraph,
    MissingDependencyError,
    compute_knn,
    umap_knn,
)


@pytest.fixture
def dup_X() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((80, 6))
    x[40:60] = x[:20]  # rows 0..19 each have exactly one duplicate
    return x


def _rows(m: Any) -> list[dict[int, float]]:
    m = scipy.sparse.csr_matrix(m)
    return [
        dict(zip(m.indices[a:b].tolist(), m.data[a:b].tolist(), strict=True))
        for a, b in zip(m.indptr[:-1], m.indptr[1:], strict=True)
    ]


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize("include_self", [False, True])
def test_to_csr_equals_kneighbors_graph(dup_X: np.ndarray, mode: str, include_self: bool) -> None:
    k = 6
    ours = compute_knn(dup_X, k).to_csr(k, mode=mode, include_self=include_self)
    ref = kneighbors_graph(dup_X, k, mode=mode, include_self=include_self)
    assert isinstance(ours, scipy.sparse.csr_matrix)
    assert ours.shape == ref.shape == (80, 80)
    # Same stored entries, explicit zeros of duplicates included.
    assert ours.nnz == ref.nnz == 80 * k
    for i, (mine, theirs) in enumerate(zip(_rows(ours), _rows(ref), strict=True)):
        for j in set(mine) & set(theirs):
            assert mine[j] == pytest.approx(theirs[j], abs=1e-6)
        # Where the sets differ, it is a tie at the row's k-th distance: a duplicate pair
        # straddles the k-th place and each library keeps one of the two.
        exact = np.linalg.norm(dup_X - dup_X[i], axis=1)
        kth = np.sort(exact[[j for j in range(80) if include_self or j != i]])[k - 1]
        for j in set(mine) ^ set(theirs):
            assert exact[j] == pytest.approx(kth, abs=1e-9)
            assert (exact == exact[j]).sum() >= 2  # a tie indeed
    if mode == "distance":
        # Duplicates are stored as explicit zeros, not dropped.
        zeros = int((ours.data == 0).sum())
        assert zeros == int((ref.data == 0).sum()) == (40 if not include_self else 80 + 40)


@pytest.mark.parametrize("include_self", [False, True])
def test_to_csr_is_in_sorted_graph_form(dup_X: np.ndarray, include_self: bool) -> None:
    graph = compute_knn(dup_X, 8)
    csr = graph.to_csr(mode="distance", include_self=include_self)
    rows = csr.data.reshape(80, -1)
    assert (np.diff(rows, axis=1) >= 0).all()
    # An unsorted graph would raise EfficiencyWarning here (warnings are errors).
    again = sort_graph_by_row_values(csr.copy(), warn_when_not_sorted=True)
    assert (again != csr).nnz == 0
    assert csr.nnz == 80 * (9 if include_self else 8)  # default k: the whole graph
    if include_self:
        assert (csr.indices.reshape(80, 9)[:, 0] == np.arange(80)).all()


def test_to_csr_k_defaults_and_bounds(X: np.ndarray) -> None:
    graph = compute_knn(X, 4)
    assert graph.to_csr().nnz == len(X) * 4
    assert graph.to_csr(2).nnz == len(X) * 2
    assert graph.to_csr(5, include_self=True).nnz == len(X) * 5
    with pytest.raises(InvalidKError):
        graph.to_csr(5)
    with pytest.raises(InvalidKError):
        graph.to_csr(0)
    with pytest.raises(InvalidParameterError, match="'weights'"):
        graph.to_csr(mode="weights")
    with pytest.raises(InvalidParameterError, match="include_self"):
        graph.to_csr(include_self=1)  # type: ignore[arg-type]


def test_to_csr_from_a_store_memmap(X: np.ndarray) -> None:
    with EphemeralStore() as store:
        graph = store.ensure(X, 5).load(3)
        csr = graph.to_csr(mode="connectivity")
    assert csr.nnz == len(X) * 3
    assert (csr.data == 1.0).all()


def test_to_csr_without_scipy_names_pip_install(
    X: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = compute_knn(X, 3)
    real_import = builtins.__import__

    def no_scipy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(MissingDependencyError, match="pip install scipy") as info:
        graph.to_csr()
    assert isinstance(info.value, ImportError)
    assert pickle.loads(pickle.dumps(info.value)).package == "scipy"


def test_umap_knn_form(dup_X: np.ndarray) -> None:
    graph = compute_knn(dup_X, 10)
    with EphemeralStore() as store:
        ref = store.ensure(dup_X, 10)
        for source in (graph, ref, (graph.neighbors, graph.distances)):
            idx, dist = umap_knn(source, 8)
            assert idx.shape == dist.shape == (80, 8)
            assert idx.dtype == np.int64 and dist.dtype == np.float32
            assert (idx[:, 0] == np.arange(80)).all() and (dist[:, 0] == 0).all()
            assert (idx[:, 1:] == graph.neighbors[:, :7]).all()
            assert (dist[:, 1:] == graph.distances[:, :7]).all()
            # umap-learn writes into them: fresh, writable copies, never the store's maps.
            assert idx.flags.writeable and dist.flags.writeable
            assert not np.shares_memory(idx, graph.neighbors)
            idx[0, 1] = -1
        assert ref.load(10).neighbors[0, 0] == graph.neighbors[0, 0]


def test_umap_knn_bounds(X: np.ndarray) -> None:
    graph = compute_knn(X, 4)
    assert umap_knn(graph, 5)[0].shape == (len(X), 5)
    for bad in (1, 6, 2.0, True):
        with pytest.raises(InvalidKError):
            umap_knn(graph, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="ref_or_graph"):
        umap_knn(np.zeros((3, 3)), 2)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        umap_knn(KnnGraph(graph.distances, graph.distances), 2)  # type: ignore[arg-type]


def test_umap_accepts_umap_knn_without_recomputing() -> None:
    umap = pytest.importorskip("umap")
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(0, 1, (150, 8)), rng.normal(6, 1, (150, 8))])
    data = data.astype(np.float32)
    n_neighbors = 10
    knn = umap_knn(compute_knn(data, 20), n_neighbors)
    kwargs: dict[str, Any] = {
        "n_neighbors": n_neighbors,
        "n_epochs": 30,
        "random_state": 0,
        "n_jobs": 1,
    }
    with pytest.warns(UserWarning, match="knn_search_index"):  # no NNDescent index: documented
        given = umap.UMAP(precomputed_knn=knn, **kwargs).fit(data)
    own = umap.UMAP(**kwargs).fit(data)  # < 4096 points: UMAP's own exact pairwise path
    # The precomputed path was taken (no search of its own), on exactly our arrays.
    assert not given._small_data and own._small_data
    assert (given._knn_indices == knn[0]).all()
    # Same fuzzy graph as UMAP builds from its own exact neighbours.
    diff = abs(given.graph_ - own.graph_)
    assert diff.max() < 1e-5
    assert given.embedding_.shape == (300, 2) and np.isfinite(given.embedding_).all()
    # Same seed, same input: the same embedding from the same precomputed graph.
    with pytest.warns(UserWarning, match="knn_search_index"):
        again = umap.UMAP(precomputed_knn=umap_knn(compute_knn(data, 20), n_neighbors), **kwargs)
        again.fit(data)
    assert np.array_equal(again.embedding_, given.embedding_)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_to_csr_with_features_gives_float64_distances(dup_X: np.ndarray, metric: str) -> None:
    from sklearn.metrics import pairwise_distances

    X = dup_X * 1e3 + 1.0
    graph = compute_knn(X, 5, metric)
    csr = graph.to_csr(mode="distance", include_self=True, features=X, metric=metric)
    rows = np.repeat(np.arange(80), 6)
    if metric == "euclidean":  # the norm of the difference (scikit-learn's is less exact)
        want = np.linalg.norm(X[rows] - X[csr.indices], axis=1)
    else:
        want = pairwise_distances(X, metric=metric)[rows, csr.indices]
    want = np.where(rows == csr.indices, 0.0, want)
    np.testing.assert_allclose(csr.data, want, rtol=1e-12, atol=1e-12)
    # Without features: the stored float32 values, not as close.
    widened = graph.to_csr(mode="distance", include_self=True).data
    assert np.max(np.abs(widened - want) / np.maximum(want, 1e-300)) > 1e-12
    # Features the graph was not computed from (or another metric) are refused.
    with pytest.raises(InvalidParameterError, match="features"):
        graph.to_csr(features=X[::-1], metric=metric)
    with pytest.raises(InvalidParameterError, match="features"):
        graph.to_csr(features=X[:10], metric=metric)
