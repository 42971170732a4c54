"""``knncache.sklearn.KNeighborsTransformer`` against scikit-learn's own transformer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from sklearn import neighbors as skn
from sklearn.base import clone
from sklearn.cluster import DBSCAN, HDBSCAN, SpectralClustering
from sklearn.datasets import make_swiss_roll
from sklearn.manifold import TSNE, Isomap
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

import knncache.sklearn
from knncache import EphemeralStore, InvalidParameterError, PersistentStore
from knncache.sklearn import KNeighborsTransformer, kneighbors_graph, symmetrize


def _blobs(n: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0]])
    return np.concatenate([c + rng.normal(size=(n // 3, 3)) for c in centres])


def _dense(m: Any) -> np.ndarray:
    return np.asarray(scipy.sparse.csr_matrix(m).toarray())


@parametrize_with_checks(
    [KNeighborsTransformer(), KNeighborsTransformer(3, mode="connectivity", metric="cosine")],
)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    check(estimator)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_same_graph_as_sklearn(mode: str, metric: str) -> None:
    X = _blobs(seed=1) + 10.0  # away from the origin, so cosine separates points too
    ours = KNeighborsTransformer(7, mode=mode, metric=metric).fit_transform(X)
    ref = skn.KNeighborsTransformer(n_neighbors=7, mode=mode, metric=metric).fit_transform(X)
    assert type(ours) is type(ref)
    assert ours.shape == ref.shape and ours.nnz == ref.nnz == len(X) * (
        8 if mode == "distance" else 7
    )
    assert np.allclose(_dense(ours), _dense(ref), atol=1e-6)
    # New data goes through scikit-learn's brute force against the fitted data.
    new = _blobs(30, seed=2)
    t = KNeighborsTransformer(7, mode=mode, metric=metric).fit(X)
    r = skn.KNeighborsTransformer(n_neighbors=7, mode=mode, metric=metric).fit(X)
    assert np.allclose(_dense(t.transform(new)), _dense(r.transform(new)), atol=1e-6)


def test_pipeline_dbscan_and_hdbscan_same_labels_as_sklearn() -> None:
    X = _blobs()
    X[5] = X[4]  # a duplicate: an explicit zero in the graph
    sym = FunctionTransformer(symmetrize, accept_sparse=True)
    for steps in (
        lambda: [DBSCAN(eps=0.8, min_samples=5, metric="precomputed")],
        # scikit-learn's HDBSCAN wants a symmetric matrix, and one distance for the edges
        # the sparse graph does not hold (the blobs are not connected through 15-NN).
        lambda: [
            clone(sym),
            HDBSCAN(
                min_samples=5,
                min_cluster_size=10,
                metric="precomputed",
                metric_params={"max_distance": 100.0},
                copy=True,
            ),
        ],
    ):
        ours = make_pipeline(KNeighborsTransformer(15, mode="distance"), *steps()).fit(X)
        ref = make_pipeline(skn.KNeighborsTransformer(n_neighbors=15, mode="distance"), *steps())
        ref.fit(X)
        labels = ours[-1].labels_
        assert np.array_equal(labels, ref[-1].labels_)
        assert len(set(labels) - {-1}) >= 3  # the test could fail: clusters are found


def test_pipeline_manifold_and_spectral_run_on_the_graph() -> None:
    X = make_swiss_roll(150, random_state=0)[0]  # one connected manifold, as Isomap needs
    emb = make_pipeline(
        KNeighborsTransformer(10), Isomap(n_neighbors=10, metric="precomputed")
    ).fit_transform(X)
    ref = make_pipeline(
        skn.KNeighborsTransformer(n_neighbors=10), Isomap(n_neighbors=10, metric="precomputed")
    ).fit_transform(X)
    assert np.allclose(np.abs(emb), np.abs(ref), atol=1e-6)  # eigenvector signs are free
    tsne = make_pipeline(
        KNeighborsTransformer(30),
        TSNE(metric="precomputed", init="random", perplexity=9.0, max_iter=250, random_state=0),
    ).fit_transform(X)
    assert tsne.shape == (150, 2) and np.isfinite(tsne).all()
    graph = KNeighborsTransformer(10, mode="connectivity").fit_transform(X)
    labels = SpectralClustering(3, affinity="precomputed_nearest_neighbors", random_state=0)
    labels = labels.fit_predict(graph)
    ref_labels = SpectralClustering(3, affinity="precomputed_nearest_neighbors", random_state=0)
    ref_graph = skn.KNeighborsTransformer(n_neighbors=10, mode="connectivity").fit_transform(X)
    assert np.array_equal(labels, ref_labels.fit_predict(ref_graph))


def test_persistent_store_second_fit_runs_no_search(tmp_path: Path) -> None:
    X = _blobs()
    store = PersistentStore(tmp_path / "cache")
    first = KNeighborsTransformer(8, store=store).fit_transform(X)
    assert store.stats["searches"] == 1
    second = KNeighborsTransformer(8, store=store).fit_transform(X)
    smaller = KNeighborsTransformer(4, mode="connectivity", store=store).fit_transform(X)
    assert store.stats["searches"] == 1 and store.stats["hits"] == 2
    assert (first != second).nnz == 0
    assert smaller.nnz == len(X) * 4
    # A path is opened as a PersistentStore: another process would find the same entry.
    by_path = KNeighborsTransformer(8, store=str(tmp_path / "cache")).fit(X)
    assert by_path.knn_ref_ is not None
    assert by_path.knn_ref_.fingerprint == store.entries()[0].fingerprint
    assert (by_path.transform(X) != first).nnz == 0


def test_ephemeral_store_and_ref_attribute() -> None:
    X = _blobs(60)
    with EphemeralStore() as store:
        t = KNeighborsTransformer(5, store=store).fit(X)
        assert t.knn_ref_ is not None and t.knn_ref_.k == 5
        assert t.transform(X).nnz == 60 * 6
    assert KNeighborsTransformer(5).fit(X).knn_ref_ is None


def test_bad_parameters_raise_before_work() -> None:
    X = _blobs(30)
    for params, name in (
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_neighbors": 2.5}, "n_neighbors"),
        ({"mode": "weights"}, "mode"),
        ({"metric": "manhattan"}, "metric"),
        ({"store": 3}, "store"),
    ):
        with pytest.raises(InvalidParameterError, match=name) as info:
            KNeighborsTransformer(**params).fit(X)
        assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        KNeighborsTransformer(30).fit_transform(X)


def test_symmetrize_is_the_union_and_keeps_explicit_zeros() -> None:
    X = _blobs(60)
    X[7] = X[3]
    g = KNeighborsTransformer(4).fit_transform(X)
    s = symmetrize(g)
    dense, sd = _dense(g), _dense(s)
    assert np.array_equal(sd, sd.T)
    assert np.array_equal(sd, np.maximum(dense, dense.T))
    pattern = (g != 0).astype(int) + scipy.sparse.eye(60, dtype=int)  # diagonal is explicit 0
    assert s.nnz == int(((pattern + pattern.T) > 0).sum()) + 2  # (3, 7) and (7, 3): zeros
    with pytest.raises(InvalidParameterError, match="graph"):
        symmetrize(np.zeros((3, 3)))


@pytest.mark.slow
def test_sklearn_own_tests_pass_with_knncache_substituted(tmp_path: Path) -> None:
    """scikit-learn's own tests of the transformer and ``kneighbors_graph``, on knncache.

    The installed scikit-learn's test modules run in a subprocess with the plugin
    ``tests.knncache.sklearn_suite.plugin``, which substitutes knncache's classes and keeps
    the tests that use them; the out-of-scope ones must fail with knncache's error only.
    """
    from tests.knncache.sklearn_suite import plugin

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
        "SKLEARN_RUN_FLOAT32_TESTS": "1",  # the float32 variants too
    }
    args = [sys.executable, "-m", "pytest", "-p", "tests.knncache.sklearn_suite.plugin"]
    args += ["-p", "no:cacheprovider", "-q", "-rfEx", "--pyargs", *plugin.MODULES]
    run = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|xfailed|error)", out)}
    assert counts.get("failed", 0) == counts.get("error", 0) == 0, out[-6000:]
    assert counts["xfailed"] == len(plugin.OUT_OF_SCOPE)
    assert counts["passed"] >= 100, out[-6000:]
    kept = re.search(r"knncache-substituted: (\d+) tests, kneighbors_graph from (\S+)", out)
    assert kept is not None and kept.group(2) == "knncache.sklearn"
    assert int(kept.group(1)) >= counts["passed"] + counts["xfailed"]


def test_constructor_takes_sklearns_arguments_with_its_defaults() -> None:
    import inspect

    theirs = inspect.signature(skn.KNeighborsTransformer).parameters
    ours = inspect.signature(KNeighborsTransformer).parameters
    assert list(ours)[: len(theirs)] == ["n_neighbors", *[n for n in theirs if n != "n_neighbors"]]
    for name, param in theirs.items():
        assert ours[name].default == param.default, name
    assert list(ours)[len(theirs) :] == ["store"]
    X = _blobs(60)
    params = {"algorithm": "kd_tree", "leaf_size": 10, "n_jobs": 2}
    got = KNeighborsTransformer(n_neighbors=4, **params).fit_transform(X)
    ref = skn.KNeighborsTransformer(n_neighbors=4, **params).fit_transform(X)
    assert np.allclose(_dense(got), _dense(ref), rtol=1e-12, atol=0)
    with_p = KNeighborsTransformer(n_neighbors=4, p=None, metric_params={"p": 2})
    assert (with_p.fit_transform(X) != got).nnz == 0


@pytest.mark.parametrize(
    ("metric", "p"), [("minkowski", 2), ("l2", 1), ("euclidean", 2), ("sqeuclidean", 2)]
)
def test_metric_names_and_float64_distances_equal_sklearns(metric: str, p: float) -> None:
    X = _blobs(90, seed=4) * 1e3 + 1.0  # float32 rounding would be visible at 1e-7
    got = KNeighborsTransformer(n_neighbors=6, metric=metric, p=p).fit_transform(X)
    ref = skn.KNeighborsTransformer(n_neighbors=6, metric=metric, p=p).fit_transform(X)
    assert got.dtype == np.float64
    np.testing.assert_allclose(_dense(got), _dense(ref), rtol=1e-12, atol=1e-9)
    graph = kneighbors_graph(X, 6, mode="distance", metric=metric, p=p)
    np.testing.assert_allclose(
        _dense(graph),
        _dense(skn.kneighbors_graph(X, 6, mode="distance", metric=metric, p=p)),
        rtol=1e-12,
        atol=1e-9,
    )


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"metric": "manhattan"}, "metric"),
        ({"metric": "minkowski", "p": 1}, "p"),
        ({"metric_params": {"p": 3}}, "p"),
        ({"metric": "cosine", "metric_params": {"w": 1}}, "metric_params"),
        ({"algorithm": "annoy"}, "algorithm"),
        ({"leaf_size": 0}, "leaf_size"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_unsupported_metrics_are_refused_naming_the_supported(
    params: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidParameterError, match=name) as info:
        KNeighborsTransformer(**params).fit(_blobs(30))
    assert isinstance(info.value, ValueError) and info.value.name == name
    if name in ("metric", "p"):
        assert "'euclidean'" in str(info.value) and "'cosine'" in str(info.value)


def test_sparse_input_is_densified_under_the_bound() -> None:
    X = _blobs(60)
    X[X < 0.5] = 0.0
    sparse = scipy.sparse.csr_matrix(X)
    got = KNeighborsTransformer(n_neighbors=5).fit_transform(sparse)
    assert (got != KNeighborsTransformer(n_neighbors=5).fit_transform(X)).nnz == 0
    assert (kneighbors_graph(sparse, 5) != kneighbors_graph(X, 5)).nnz == 0
    # Few stored values, but 2 GiB dense: over the bound, refused before any work.
    big = scipy.sparse.csr_matrix(([1.0, 2.0], ([0, 5], [3, 7])), shape=(1 << 17, 1 << 11))
    assert big.shape[0] * big.shape[1] * 8 > knncache.sklearn.MAX_DENSE_BYTES
    with pytest.raises(InvalidParameterError, match=r"sparse.*TruncatedSVD"):
        KNeighborsTransformer(n_neighbors=5).fit(big)
    with pytest.raises(InvalidParameterError, match="sparse"):
        kneighbors_graph(big, 5)


def test_cosine_zero_rows_are_at_distance_one_as_in_sklearn() -> None:
    X = _blobs(45, seed=3) + 5.0
    X[[4, 20, 21]] = 0.0
    for mode in ("distance", "connectivity"):
        got = KNeighborsTransformer(n_neighbors=4, metric="cosine", mode=mode).fit_transform(X)
        ref = skn.KNeighborsTransformer(n_neighbors=4, metric="cosine", mode=mode)
        ref_g = ref.fit_transform(X)
        others = np.setdiff1d(np.arange(45), [4, 20, 21])
        np.testing.assert_allclose(_dense(got)[others], _dense(ref_g)[others], atol=1e-12)
    graph = kneighbors_graph(X, 3, mode="distance", metric="cosine")
    # A zero row: every other row at distance 1 (ties by index).
    assert graph[4].indices.tolist() == [0, 1, 2] and graph[4].data.tolist() == [1.0, 1.0, 1.0]
    assert graph[20].indices.tolist() == [0, 1, 2]


def test_kneighbors_graph_defaults_and_refusals() -> None:
    X = _blobs(30)
    got = kneighbors_graph(X, 3)  # scikit-learn's default mode: connectivity
    assert set(got.data.tolist()) == {1.0}
    assert (got != skn.kneighbors_graph(X, 3)).nnz == 0
    assert (
        kneighbors_graph(X, 3, include_self="auto")
        != skn.kneighbors_graph(X, 3, include_self="auto")
    ).nnz == 0
    fitted = skn.NearestNeighbors(n_neighbors=3).fit(X)
    with pytest.raises(InvalidParameterError, match="NearestNeighbors"):
        kneighbors_graph(fitted, 3)
