"""The search at its seams: engine parameters faiss cannot take (checked before faiss sees
them, crash-prone calls run in a child process), features changed by another thread while a
store searches them, a search in a process forked after its parent searched, and features
of extreme magnitude (subnormal, near the float64 maximum)."""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import knncache._store
from knncache import (
    ENGINE_DEFAULTS,
    EphemeralStore,
    InvalidFeaturesError,
    InvalidParameterError,
    PersistentStore,
    check_engine,
    compute_knn,
    entry_key,
    fingerprint,
)
from knncache._engine_params import index_bytes, memory_bound
from tests.knncache.kc_reference import brute_force_knn

ROOT = Path(__file__).resolve().parents[2]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


# ---------------------------------------------------------------------- engine parameters
@pytest.mark.parametrize(
    ("method", "name", "value"),
    [
        ("hnsw", "M", 1),
        ("hnsw", "M", 10**8),
        ("hnsw", "efSearch", 10**11),
        ("hnsw", "efConstruction", 10**11),
        ("hnsw", "efConstruction", 2**31),
        ("ivf", "nlist", 2**31),
        ("ivf", "nprobe", 10**11),
    ],
)
def test_check_engine_refuses_what_faiss_cannot_take(method: str, name: str, value: int) -> None:
    with pytest.raises(InvalidParameterError) as info:
        check_engine(method, {name: value})
    assert info.value.name == name and info.value.value == value
    assert f"{method} parameter {name} must be an integer in [" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"), [("M", 2), ("M", 65536), ("efSearch", 2**31 - 1), ("efConstruction", 1)]
)
def test_check_engine_keeps_the_bounds_themselves(name: str, value: int) -> None:
    assert check_engine("hnsw", {name: value}) == ("hnsw", {name: value})


def test_out_of_range_ef_refused_by_compute_knn_before_faiss() -> None:
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    for name in ("efSearch", "efConstruction"):
        with pytest.raises(InvalidParameterError) as info:
            compute_knn(X, 3, method="hnsw", **{name: 10**11})
        assert info.value.name == name


def test_the_index_size_estimate_grows_with_every_parameter() -> None:
    base = dict(ENGINE_DEFAULTS["hnsw"])
    small = index_bytes("hnsw", base, 1000, 8)
    assert small >= 4 * 1000 * 8 + 1000 * 4 * 2 * 32  # vectors and level-0 lists at least
    for name in ("M", "efSearch", "efConstruction"):
        assert index_bytes("hnsw", {**base, name: base[name] * 1000}, 1000, 8) > small
    assert memory_bound() > 0


_CRASH_PRONE = """
import numpy as np
from knncache import EphemeralStore, InvalidParameterError, compute_knn

X = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
calls = {
    "compute_knn M=1": lambda: compute_knn(X, 3, method="hnsw", M=1),
    "ensure M=1": lambda: EphemeralStore().ensure(X, 3, method="hnsw", params={"M": 1}),
    "compute_knn M=10**8": lambda: compute_knn(X, 3, method="hnsw", M=10**8),
    "compute_knn efSearch=10**11": lambda: compute_knn(X, 3, method="hnsw", efSearch=10**11),
    "compute_knn huge index": lambda: compute_knn(
        np.zeros((2**20, 1), np.float32), 3, method="hnsw", M=65536
    ),
}
for what, call in calls.items():
    try:
        call()
        print(what, "ACCEPTED", flush=True)
    except InvalidParameterError as exc:
        print(what, "REFUSED", exc.name, "|", exc, flush=True)
"""


@pytest.mark.slow
def test_crash_prone_parameters_are_refused_in_a_child_process(tmp_path: Path) -> None:
    if index_bytes("hnsw", {**ENGINE_DEFAULTS["hnsw"], "M": 65536}, 2**20, 1) <= memory_bound():
        pytest.skip("this machine could hold the large index")
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_PRONE],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A regression crashes the child (SIGSEGV, std::bad_alloc), not the test run.
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = dict(line.split(" REFUSED ", 1) for line in proc.stdout.splitlines())
    assert sorted(lines) == sorted(
        [
            "compute_knn M=1",
            "ensure M=1",
            "compute_knn M=10**8",
            "compute_knn efSearch=10**11",
            "compute_knn huge index",
        ]
    )
    assert lines["compute_knn M=1"].startswith("M |") and "[2, 65536]" in lines["ensure M=1"]
    assert lines["compute_knn M=10**8"].startswith("M |")
    assert lines["compute_knn efSearch=10**11"].startswith("efSearch |")
    huge = lines["compute_knn huge index"]
    assert huge.startswith("params |") and "GiB" in huge and "memory" in huge


@pytest.mark.slow
def test_the_search_command_refuses_m1_with_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ssddbc._entry import search_main; "
            "sys.argv[0] = 'ssddbc-search'; search_main()",
            "--demo",
            "--knn_method",
            "hnsw",
            "--knn_params",
            "M=1",
            "--output_dir",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "M" in lines[0] and "[2, 65536]" in lines[0]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- features changed
def test_the_stored_graph_belongs_to_the_bytes_its_key_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    original = rng.standard_normal((300, 6)).astype(np.float32)
    other = rng.standard_normal((300, 6)).astype(np.float32)
    X = original.copy()
    real = knncache._store.fingerprint
    fired: list[str] = []

    def overwrite() -> None:
        X[...] = other

    def fingerprint_then_overwrite(arr: Any, metric: str = "euclidean") -> str:
        fp = real(arr, metric)
        if not fired:  # right after the store's first fingerprint, another thread writes
            fired.append(fp)
            writer = threading.Thread(target=overwrite)
            writer.start()
            writer.join()
        return fp

    monkeypatch.setattr(knncache._store, "fingerprint", fingerprint_then_overwrite)
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 5)
    assert fired == [fingerprint(original)]
    named = {fingerprint(original): original, fingerprint(other): other}
    assert ref.fingerprint in named
    data = named[ref.fingerprint]
    want = compute_knn(data, 5)
    got = ref.load(5)
    assert np.array_equal(got.neighbors, want.neighbors)
    assert np.array_equal(got.distances, want.distances)
    assert np.array_equal(ref.features(), data)
    assert store.verify() == []
    # The later hit for those bytes serves the same graph.
    again = store.ensure(data, 5)
    assert again.fingerprint == ref.fingerprint
    assert np.array_equal(again.load(5).neighbors, want.neighbors)


def test_compute_knn_searches_a_private_copy() -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 4))
    before = X.copy()
    graph = compute_knn(X, 4)
    assert np.array_equal(X, before)  # nothing written to the caller's array
    assert np.array_equal(graph.neighbors, brute_force_knn(before, 4)[0])


# ---------------------------------------------------------------------- fork
def _child_search(X: np.ndarray, root: str, out: Any) -> None:
    graph = compute_knn(X, 5)
    hnsw = compute_knn(X, 5, method="hnsw")
    ref = PersistentStore(root).ensure(X, 5)
    out.put((graph.neighbors, hnsw.neighbors, ref.load(5).neighbors))


@pytest.mark.slow
def test_a_child_forked_after_a_search_searches_instead_of_hanging(tmp_path: Path) -> None:
    X = np.random.default_rng(9).standard_normal((4000, 16)).astype(np.float32)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(2, threads))  # the parent's OpenMP pool has threads
    try:
        reference = compute_knn(X, 5)
        # The child's default is its one thread: compare with the deterministic build.
        hnsw_reference = compute_knn(X, 5, method="hnsw", threads=1)
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_child_search, args=(X, str(tmp_path / "s"), out))
        child.start()
        try:  # read before joining: the child exits once its result is through the pipe
            result = out.get(timeout=120)
        except queue.Empty:
            result = None
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
        assert result is not None, f"the forked child hung in its search ({child.exitcode})"
        assert child.exitcode == 0
        exact, hnsw, stored = result
        assert np.array_equal(exact, reference.neighbors)
        assert np.array_equal(hnsw, hnsw_reference.neighbors)
        assert np.array_equal(stored, reference.neighbors)
        assert faiss.omp_get_max_threads() == max(2, threads)  # the parent keeps its threads
    finally:
        faiss.omp_set_num_threads(threads)


# ---------------------------------------------------------------------- magnitudes
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    factor=st.sampled_from([1e-310, 5e-324, 2.0**-1060, 1e-300]),
)
def test_subnormal_features_give_the_neighbours_of_the_unscaled(
    data: st.DataObject, factor: float
) -> None:
    n = data.draw(st.integers(2, 30))
    d = data.draw(st.integers(1, 4))
    ints = data.draw(hnp.arrays(np.int64, (n, d), elements=st.integers(-5, 5)))
    k = data.draw(st.integers(1, n - 1))
    X = ints.astype(np.float64)
    # Small integers times a (sub)normal factor are exact: every distance scales by the same
    # factor, so ties stay ties and the (distance, index) order is the unscaled one.
    scaled = X * factor
    assert np.array_equal(scaled / factor, X) or factor == 5e-324
    graph = compute_knn(scaled, k)
    want = brute_force_knn(X, k)[0]
    assert np.array_equal(graph.neighbors, want)
    assert np.array_equal(graph.neighbors, compute_knn(X, k).neighbors)
    assert np.isfinite(graph.distances).all() and (graph.distances >= 0).all()
    assert (np.diff(graph.distances, axis=1) >= 0).all()


def test_subnormal_features_in_a_store(tmp_path: Path) -> None:
    X = np.random.default_rng(10).standard_normal((120, 5))
    tiny = X * 1e-310
    with EphemeralStore(dir=tmp_path) as store:
        ref = store.ensure(tiny, 4)
        assert np.array_equal(ref.load(4).neighbors, compute_knn(tiny, 4).neighbors)
        assert np.array_equal(ref.features(), tiny)


@pytest.mark.parametrize("magnitude", [1e300, 1e200, 1e39])
def test_huge_features_say_what_is_wrong(tmp_path: Path, magnitude: float) -> None:
    X = np.random.default_rng(11).standard_normal((40, 3)) * magnitude
    with pytest.raises(InvalidFeaturesError) as info:
        compute_knn(X, 3)
    text = str(info.value)
    assert info.value.reason == "overflow" and "non-finite" not in text
    assert "float32 range" in text
    row = info.value.row
    assert row is not None
    assert f"the row's largest magnitude is {np.abs(X[row]).max():.3g}" in text
    assert f"the features' {np.abs(X).max():.3g}" in text
    store = PersistentStore(tmp_path / "s")
    with pytest.raises(InvalidFeaturesError, match="largest magnitude"):
        store.ensure(X, 3)
    assert store.entries() == []


def test_huge_features_whose_distances_fit_are_accepted() -> None:
    X = np.full((5, 3), 1e300)
    X[3:] = -1e300  # two groups of duplicates: within-group distances 0, k stays inside
    graph = compute_knn(X, 1)
    assert np.array_equal(graph.neighbors[:, 0], [1, 0, 0, 4, 3])
    assert (graph.distances == 0).all()
    assert entry_key(X) == fingerprint(X)
