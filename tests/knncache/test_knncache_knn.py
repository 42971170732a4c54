"""compute_knn against a numpy brute-force reference; fingerprint; input validation."""

from __future__ import annotations

import pickle

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import knncache
from knncache import (
    InvalidFeaturesError,
    InvalidKError,
    KnnGraph,
    UnknownMetricError,
    compute_knn,
    fingerprint,
)
from tests.knncache.kc_reference import brute_force_knn

METRICS = ["euclidean", "cosine"]
F32_RTOL = 4 * np.finfo(np.float32).eps


def assert_matches_reference(X: np.ndarray, k: int, metric: str, graph: KnnGraph) -> None:
    """The graph equals the reference up to swaps of neighbours with equal float32 distances."""
    nb, ds = graph
    n = X.shape[0]
    ref_nb, ref_ds, D = brute_force_knn(X, k, metric)
    assert nb.shape == ds.shape == (n, k)
    assert nb.dtype == np.int64 and ds.dtype == np.float32
    scale = max(1e-30, float(np.nanmax(np.where(np.isfinite(D), D, 0))))
    tol = F32_RTOL * scale + 1e-7
    rows = np.arange(n)[:, None]
    # No self, no repeated neighbour, rows sorted by (distance, index).
    assert not (nb == rows).any()
    assert all(len(set(r)) == k for r in nb.tolist())
    assert (np.diff(ds.astype(np.float64), axis=1) >= 0).all()
    same = np.diff(ds.astype(np.float64), axis=1) == 0
    assert (np.diff(nb, axis=1)[same] > 0).all()
    # Reported distances are the true distances of the reported neighbours.
    np.testing.assert_allclose(ds, D[rows, nb], rtol=0, atol=tol)
    # Position by position, distances agree with the reference...
    np.testing.assert_allclose(ds, ref_ds, rtol=0, atol=tol)
    # ...and a neighbour may differ from the reference only where distances tie.
    differ = nb != ref_nb
    np.testing.assert_allclose(D[rows, nb][differ], D[rows, ref_nb][differ], rtol=0, atol=tol)
    # Nothing strictly closer than the k-th distance is missing.
    kth = ds[:, -1].astype(np.float64)
    for i in range(n):
        closer = np.flatnonzero(D[i] < kth[i] - tol)
        closer = closer[closer != i]
        assert set(closer.tolist()) <= set(nb[i].tolist())


@st.composite
def feature_matrices(draw: st.DrawFn, metric: str) -> np.ndarray:
    n = draw(st.integers(2, 25))
    d = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["grid", "float", "dups"]))
    if kind == "grid":
        # Small integer grid: many exact ties and duplicate points.
        x = draw(hnp.arrays(np.int8, (n, d), elements=st.integers(-2, 2))).astype(np.float32)
    elif kind == "float":
        x = draw(
            hnp.arrays(
                np.float32,
                (n, d),
                elements=st.floats(-100, 100, allow_nan=False, width=32),
            )
        )
    else:
        base = draw(
            hnp.arrays(np.float32, (max(1, n // 3), d), elements=st.floats(-5, 5, width=32))
        )
        idx = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, base.shape[0] - 1)))
        x = base[idx]
    if metric == "cosine":
        assume(bool((x != 0).any(axis=1).all()))
    return np.ascontiguousarray(x)


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_brute_force(metric: str, data: st.DataObject) -> None:
    X = data.draw(feature_matrices(metric))
    k = data.draw(st.integers(1, X.shape[0] - 1))
    assert_matches_reference(X, k, metric, compute_knn(X, k, metric))


@pytest.mark.parametrize("metric", METRICS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_prefix_of_larger_k_is_graph_at_smaller_k(metric: str, data: st.DataObject) -> None:
    X = data.draw(feature_matrices(metric))
    k = data.draw(st.integers(1, X.shape[0] - 1))
    k2 = data.draw(st.integers(1, k))
    big, small = compute_knn(X, k, metric), compute_knn(X, k2, metric)
    assert np.array_equal(big.neighbors[:, :k2], small.neighbors)
    assert big.distances[:, :k2].tobytes() == small.distances.tobytes()


@pytest.mark.parametrize("metric", METRICS)
def test_larger_random_data_matches_reference(metric: str, rng: np.random.Generator) -> None:
    X = rng.standard_normal((400, 24)).astype(np.float32)
    X[10:20] = X[0]  # a block of duplicates
    assert_matches_reference(X, 15, metric, compute_knn(X, 15, metric))


def test_duplicates_exclude_only_self() -> None:
    X = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 3 groups of 4 identical points
    nb, ds = compute_knn(X, 3)
    for i in range(12):
        group = set(range(4 * (i // 4), 4 * (i // 4) + 4)) - {i}
        assert set(nb[i].tolist()) == group
        assert (ds[i] == 0).all()
        assert list(nb[i]) == sorted(nb[i])


def test_true_euclidean_and_cosine_distances() -> None:
    X = np.array([[0, 0], [3, 4], [6, 8]], dtype=np.float32)
    nb, ds = compute_knn(X, 2)
    assert nb[0].tolist() == [1, 2] and ds[0].tolist() == [5.0, 10.0]
    Y = np.array([[1, 0], [0, 2], [-3, 0]], dtype=np.float64)
    nb, ds = compute_knn(Y, 2, "cosine")
    assert nb[0].tolist() == [1, 2]
    np.testing.assert_allclose(ds[0], [1.0, 2.0], atol=1e-7)


def test_exclude_self_false_keeps_self() -> None:
    X = np.arange(10, dtype=np.float32)[:, None] ** 2
    nb, ds = compute_knn(X, 10, exclude_self=False)
    assert nb[:, 0].tolist() == list(range(10))
    assert (ds[:, 0] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64, np.uint8])
def test_other_dtypes_accepted(dtype: type, rng: np.random.Generator) -> None:
    X = (rng.standard_normal((40, 3)) * 10).astype(dtype)
    assert_matches_reference(X, 5, "euclidean", compute_knn(X, 5))


def test_float64_refinement_uses_full_precision() -> None:
    # Two points that differ only beyond float32 precision are still told apart.
    X = np.array([[1.0], [1.0 + 1e-12], [1.0 - 3e-12], [9.0]], dtype=np.float64)
    nb, ds = compute_knn(X, 1)
    assert nb[:3, 0].tolist() == [1, 0, 0]
    np.testing.assert_allclose(ds[:3, 0], [1e-12, 1e-12, 3e-12], rtol=1e-3)
    # Row 3's distances (8 - 1e-12, 8, 8 + 3e-12) are equal in float32: the smaller index wins.
    assert nb[3, 0] == 0


def test_bit_identical_across_faiss_thread_counts(rng: np.random.Generator) -> None:
    X = rng.standard_normal((1500, 32)).astype(np.float32)
    X[100:140] = X[7]
    X[200:210] = np.round(X[200:210], 1)
    before = faiss.omp_get_max_threads()
    try:
        results = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            for metric in METRICS:
                g = compute_knn(X, 21, metric)
                results.append((threads, metric, g.neighbors.tobytes(), g.distances.tobytes()))
    finally:
        faiss.omp_set_num_threads(before)
    by_metric: dict[str, set[tuple[bytes, bytes]]] = {}
    for _, metric, nb, ds in results:
        by_metric.setdefault(metric, set()).add((nb, ds))
    assert all(len(v) == 1 for v in by_metric.values())


def test_memmap_input(tmp_path, X: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a, b = compute_knn(mm, 4), compute_knn(X, 4)
    assert np.array_equal(a.neighbors, b.neighbors)


BAD_FEATURES = [
    (np.zeros(5, np.float32), "not_2d", None),
    (np.zeros((2, 2, 2), np.float32), "not_2d", None),
    (np.zeros((0, 3), np.float32), "empty", None),
    (np.zeros((3, 0), np.float32), "empty", None),
    (np.zeros((1, 3), np.float32), "too_few_rows", None),
    (np.array([["a", "b"], ["c", "d"]]), "dtype", None),
    (np.zeros((3, 2), dtype=object), "dtype", None),
    (np.zeros((3, 2), dtype=np.complex64), "dtype", None),
    (np.zeros((3, 2), dtype=bool), "dtype", None),
]


@pytest.mark.parametrize(("X", "reason", "row"), BAD_FEATURES)
def test_invalid_features(X: np.ndarray, reason: str, row: int | None) -> None:
    with pytest.raises(InvalidFeaturesError) as info:
        compute_knn(X, 1)
    assert info.value.reason == reason
    assert info.value.row == row
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_names_the_row(bad: float) -> None:
    X = np.ones((6, 3), np.float32)
    X[4, 1] = bad
    X[5, 0] = bad
    with pytest.raises(InvalidFeaturesError, match="row 4") as info:
        compute_knn(X, 2)
    assert info.value.reason == "non_finite" and info.value.row == 4


def test_float32_overflow_and_cosine_zero_row() -> None:
    X = np.ones((4, 2))
    X[2, 0] = 1e300
    with pytest.raises(InvalidFeaturesError) as info:
        compute_knn(X, 1)
    assert (info.value.reason, info.value.row) == ("overflow", 2)
    Y = np.ones((4, 2), np.float32)
    Y[3] = 0
    with pytest.raises(InvalidFeaturesError) as info:
        compute_knn(Y, 1, "cosine")
    assert (info.value.reason, info.value.row) == ("zero_norm", 3)
    compute_knn(Y, 1, "euclidean")  # fine for euclidean


@pytest.mark.parametrize("k", [0, -1, 5, 6, 1.5, True, "3", None, np.float64(2.0)])
def test_invalid_k(k: object) -> None:
    with pytest.raises(InvalidKError) as info:
        compute_knn(np.eye(5, dtype=np.float32), k)  # type: ignore[arg-type]
    assert info.value.k == k or info.value.k == int(k)  # type: ignore[call-overload]
    assert isinstance(info.value, ValueError)


def test_numpy_integer_k_accepted() -> None:
    assert compute_knn(np.eye(5, dtype=np.float32), np.int64(4)).neighbors.shape == (5, 4)


@pytest.mark.parametrize("metric", ["manhattan", "Euclidean", None, 3])
def test_unknown_metric(metric: object) -> None:
    with pytest.raises(UnknownMetricError) as info:
        compute_knn(np.eye(5, dtype=np.float32), 2, metric)  # type: ignore[arg-type]
    assert info.value.metric == metric
    with pytest.raises(UnknownMetricError):
        fingerprint(np.eye(5, dtype=np.float32), metric)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_32_hex_and_deterministic(X: np.ndarray) -> None:
    fp = fingerprint(X)
    assert len(fp) == 32 and all(c in "0123456789abcdef" for c in fp)
    assert fingerprint(X.copy()) == fp


def test_fingerprint_memmap_and_layouts_agree(tmp_path, X: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    big = np.zeros((X.shape[0], X.shape[1] * 2), X.dtype)
    big[:, ::2] = X
    for variant in (mm, np.asfortranarray(X), big[:, ::2]):
        assert fingerprint(variant) == fingerprint(X)


def test_fingerprint_changes_with_everything_hashed(X: np.ndarray, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fp = fingerprint(X)
    Y = X.copy()
    Y[17, 3] = np.nextafter(Y[17, 3], np.float32(np.inf))
    keys = {
        fp,
        fingerprint(Y),
        fingerprint(X, "cosine"),
        fingerprint(X.astype(np.float64)),
        fingerprint(X.reshape(X.shape[1], X.shape[0])),
    }
    assert len(keys) == 5
    import knncache._fingerprint as fpmod

    monkeypatch.setattr(fpmod, "FORMAT_VERSION", fpmod.FORMAT_VERSION + 1)
    assert fingerprint(X) != fp


def test_fingerprint_large_chunks_streamed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import knncache._fingerprint as fpmod

    X = np.random.default_rng(1).standard_normal((100, 7)).astype(np.float32)
    fp = fingerprint(X)
    monkeypatch.setattr(fpmod, "_CHUNK_BYTES", 64)  # many chunks, rows split across chunks
    assert fingerprint(X) == fp
    assert fingerprint(np.asfortranarray(X)) == fp


# ---------------------------------------------------------------------------- errors & API

ERRORS = [
    knncache.KnnCacheError("plain"),
    knncache.InvalidFeaturesError("non_finite", "bad row 3", row=3),
    knncache.InvalidKError(7, 5, "k too large"),
    knncache.UnknownMetricError("manhattan", ("cosine", "euclidean")),
    knncache.InvalidNameError("fingerprint", "../etc", "[0-9a-f]{32}"),
    knncache.StoreClosedError("/tmp/x"),
    knncache.LockTimeoutError("/tmp/x.lock", 1.5),
    knncache.CorruptEntryError("ab" * 16, "checksum mismatch"),
    knncache.StoreWriteError("/ro", "No space left on device", 28),
    knncache.EntryNotFoundError("/tmp/x/ab", "ab" * 16),
    knncache.EntryNotFoundError("/tmp/x/ab", "ab" * 16, "evicted; recomputing"),
    knncache.FeaturesNotStoredError("ab" * 16),
    knncache.ArrayNotFoundError("ab" * 16, "pdist"),
]


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_attributes(err: Exception) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert {k: v for k, v in vars(back).items()} == {k: v for k, v in vars(err).items()}
    if isinstance(err, OSError):
        assert back.errno == err.errno
    assert isinstance(err, knncache.KnnCacheError)


def test_error_builtin_bases() -> None:
    assert issubclass(knncache.InvalidFeaturesError, ValueError)
    assert issubclass(knncache.InvalidKError, ValueError)
    assert issubclass(knncache.UnknownMetricError, ValueError)
    assert issubclass(knncache.StoreClosedError, RuntimeError)
    assert issubclass(knncache.LockTimeoutError, TimeoutError)
    assert issubclass(knncache.CorruptEntryError, ValueError)
    assert issubclass(knncache.StoreWriteError, OSError)
    assert issubclass(knncache.EntryNotFoundError, FileNotFoundError)
    assert issubclass(knncache.ArrayNotFoundError, KeyError)
    assert issubclass(knncache.KnnCacheWarning, UserWarning)
    assert str(knncache.ArrayNotFoundError("f", "x")) == "entry 'f' holds no array 'x'"


def test_public_surface() -> None:
    # Sorted the way ruff (RUF022) sorts: CONSTANTS, then Classes, then functions.
    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert knncache.__all__ == sorted(knncache.__all__, key=key)
    assert len(set(knncache.__all__)) == len(knncache.__all__)
    for name in knncache.__all__:
        obj = getattr(knncache, name)
        if callable(obj):
            assert obj.__doc__, name
    assert isinstance(knncache.FORMAT_VERSION, int)
    assert isinstance(knncache.__version__, str)


def test_non_finite_row_found_beyond_the_first_block() -> None:
    X = np.zeros((5000, 1024), np.float32)  # validation works in blocks of 4096 rows here
    X[4500, 3] = np.nan
    with pytest.raises(InvalidFeaturesError) as info:
        compute_knn(X, 3)
    assert info.value.row == 4500


@pytest.mark.parametrize("metric", METRICS)
def test_large_duplicate_groups_force_the_exact_fallback(
    metric: str, rng: np.random.Generator
) -> None:
    # 60 copies of one point: the faiss window (k + 9) cannot hold the tie group, so the
    # rows must be resolved by the exact brute-force fallback, ties broken by index.
    X = rng.standard_normal((300, 6)).astype(np.float32)
    X[100:160] = X[5]
    X[200:230] = X[6] * 1.0000001  # near-duplicates within float32 rounding
    graph = compute_knn(X, 4, metric)
    assert_matches_reference(X, 4, metric, graph)
    group = [5, *range(100, 160)]
    for i in group:
        assert graph.neighbors[i].tolist() == [j for j in group if j != i][:4]
