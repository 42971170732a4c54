"""Approximate engines on every allowed core: threads, determinism, and tagged graph files
that racing writers cannot mix."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from knncache import (
    CorruptEntryError,
    InvalidParameterError,
    KnnRef,
    PersistentStore,
    check_engine,
    compute_knn,
    entry_key,
    recall_at_k,
)
from knncache.cli import main as cli_main
from tests.knncache import kc_workers
from tests.knncache.kc_reference import bits, latent_mixture

SPAWN = multiprocessing.get_context("spawn")
METHODS = ["hnsw", "ivf"]
TAGGED = re.compile(r"k(\d+)-([0-9a-f]{16})_(neighbors|distances)\.npy")


def _meta(ref: KnnRef) -> dict[str, Any]:
    return dict(json.loads((ref.path / "meta.json").read_text()))


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# ---------------------------------------------------------------------- threads
@pytest.mark.parametrize("method", METHODS)
def test_the_default_builds_with_every_allowed_thread(
    method: str, tmp_path: Path, two_threads: None, capsys: pytest.CaptureFixture[str]
) -> None:
    X = latent_mixture(1500, 16, seed=1)
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 8, method=method)
    build = _meta(ref)["build"]
    assert build["threads"] == 2 and build["deterministic"] is False
    assert build["faiss"] == faiss.__version__
    assert store.info(ref).build == build
    assert cli_main(["info", str(store.root), ref.fingerprint]) == 0
    assert f"built with 2 threads (not reproducible), faiss {faiss.__version__}" in (
        capsys.readouterr().out
    )
    assert faiss.omp_get_max_threads() == 2  # the caller's setting is restored
    one = store.ensure(X, 12, method=method, params={"threads": 1})  # regrown at k=12
    assert _meta(one)["build"]["threads"] == 1 and _meta(one)["build"]["deterministic"] is True


@pytest.mark.parametrize("method", METHODS)
def test_threads_one_is_the_deterministic_build(method: str) -> None:
    X = latent_mixture(3000, 32, seed=2)
    a = compute_knn(X, 10, method=method, threads=1)
    b = compute_knn(X, 10, method=method, threads=1)
    assert bits(a.neighbors) == bits(b.neighbors)
    assert bits(a.distances) == bits(b.distances)


@pytest.mark.parametrize("method", METHODS)
def test_a_threaded_graph_keeps_its_recall(method: str, two_threads: None) -> None:
    X = latent_mixture(3000, 32, seed=3)
    graph = compute_knn(X, 10, method=method, threads=2)
    assert recall_at_k(graph.neighbors, X, 10, sample=3000) >= 0.95


def test_the_key_does_not_depend_on_threads(tmp_path: Path, two_threads: None) -> None:
    X = latent_mixture(1200, 16, seed=4)
    keys = {entry_key(X, method="hnsw", params={"threads": t}) for t in (None, 1, 2, 7)}
    assert keys == {entry_key(X, method="hnsw")}
    store = PersistentStore(tmp_path / "s")
    a = store.ensure(X, 6, method="ivf", params={"threads": 1})
    b = store.ensure(X, 6, method="ivf", params={"threads": 2})
    assert a.fingerprint == b.fingerprint and store.stats["searches"] == 1
    assert "threads" not in _meta(a)["params"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, 5000, "2"])
@pytest.mark.parametrize("method", METHODS)
def test_bad_threads_are_refused_before_any_write(method: str, bad: Any, tmp_path: Path) -> None:
    X = latent_mixture(500, 8, seed=5)
    with pytest.raises(InvalidParameterError) as info:
        compute_knn(X, 5, method=method, threads=bad)
    assert info.value.name == "threads" and repr(bad) in str(info.value)
    with pytest.raises(InvalidParameterError):
        check_engine(method, {"threads": bad})
    store = PersistentStore(tmp_path / "s")
    with pytest.raises(InvalidParameterError):
        store.ensure(X, 5, method=method, params={"threads": bad})
    root = tmp_path / "s"
    assert not root.exists() or [p.name for p in root.iterdir() if p.name[:1] != "."] == []


# ---------------------------------------------------------------------- tagged files
@pytest.mark.parametrize("method", METHODS)
def test_each_build_names_its_graph_files_with_its_tag(method: str, tmp_path: Path) -> None:
    X = latent_mixture(1200, 16, seed=6)
    store = PersistentStore(tmp_path / "s")
    exact = store.ensure(X, 5)
    assert exact.tag is None and (exact.path / "k5_neighbors.npy").is_file()
    ref = store.ensure(X, 5, method=method)
    tag = _meta(ref)["build"]["tag"]
    assert ref.tag == tag
    graph_files = sorted(p.name for p in ref.path.iterdir() if p.name.startswith("k"))
    assert graph_files == [f"k5-{tag}_distances.npy", f"k5-{tag}_neighbors.npy"]
    grown = store.ensure(X, 9, method=method)  # another build, another tag
    assert grown.tag is not None and grown.tag != tag
    assert sorted(p.name for p in ref.path.iterdir() if TAGGED.fullmatch(p.name)) == [
        f"k9-{grown.tag}_distances.npy",
        f"k9-{grown.tag}_neighbors.npy",
    ]
    # The old ref follows the meta to the new pair.
    assert bits(ref.load(5).neighbors) == bits(grown.load(5).neighbors)
    assert store.verify() == []


def test_a_ref_pickles_with_its_tag_and_old_pickles_load(tmp_path: Path) -> None:
    X = latent_mixture(800, 8, seed=7)
    ref = PersistentStore(tmp_path / "s").ensure(X, 4, method="hnsw")
    again = pickle.loads(pickle.dumps(ref))
    assert again == ref and again.tag == ref.tag
    assert len(pickle.dumps(ref)) < 600

    class _OldRef:  # the state a ref pickled before tags existed carries: seven values
        def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
            values = [ref.root, ref.fingerprint, ref.n, ref.d, ref.k, ref.metric, True]
            return (object.__new__, (KnnRef,), values)

    old = pickle.loads(pickle.dumps(_OldRef()))
    assert isinstance(old, KnnRef) and old.tag is None and old.k == ref.k
    # Its untagged names are gone: the meta names the pair to map.
    assert bits(old.load().neighbors) == bits(ref.load().neighbors)


def test_an_entry_written_before_tags_still_loads(tmp_path: Path) -> None:
    X = latent_mixture(1000, 8, seed=8)
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 6, method="hnsw", params={"threads": 1})
    expected = ref.load()
    expected = type(expected)(np.array(expected.neighbors), np.array(expected.distances))
    # Rewrite it as the previous format did: untagged names, no build record.
    meta = _meta(ref)
    tag = meta.pop("build")["tag"]
    for kind in ("neighbors", "distances"):
        old, new = f"k6-{tag}_{kind}.npy", f"k6_{kind}.npy"
        (ref.path / old).rename(ref.path / new)
        meta["files"][new] = meta["files"].pop(old)
    (ref.path / "meta.json").write_text(json.dumps(meta))

    reader = PersistentStore(tmp_path / "s")
    again = reader.ensure(X, 6, method="hnsw")
    assert reader.stats["searches"] == 0 and again.tag is None
    assert bits(again.load().neighbors) == bits(expected.neighbors)
    assert reader.info(again).build is None and reader.verify() == []
    grown = reader.ensure(X, 8, method="hnsw")  # a new build of an old entry: tagged
    assert grown.tag is not None and reader.verify() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threads", 0),
        ("threads", 5000),
        ("threads", True),
        ("deterministic", True),  # threads 2 is not deterministic
        ("faiss", 1),
        ("tag", "ABCDEF0123456789"),
        ("tag", "../../etc/passwd"),
        ("extra", 1),
    ],
)
def test_a_bad_build_record_is_corrupt(field: str, value: Any, tmp_path: Path) -> None:
    X = latent_mixture(600, 8, seed=9)
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 4, method="ivf", params={"threads": 2})
    meta = _meta(ref)
    meta["build"][field] = value
    (ref.path / "meta.json").write_text(json.dumps(meta))
    problems = store.verify()
    assert [p.fingerprint for p in problems] == [ref.fingerprint]
    assert "build" in problems[0].reason


def test_a_build_tag_must_name_the_files(tmp_path: Path) -> None:
    X = latent_mixture(600, 8, seed=10)
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 4, method="hnsw")
    meta = _meta(ref)
    meta["build"]["tag"] = "0" * 16  # the files keep the real tag's names
    (ref.path / "meta.json").write_text(json.dumps(meta))
    assert "does not list" in store.verify()[0].reason
    with pytest.raises(CorruptEntryError):
        KnnRef(ref.root, ref.fingerprint, ref.n, ref.d, ref.k, ref.metric, True, "../x")


# ---------------------------------------------------------------------- racing writers
class _CommitLate(PersistentStore):
    """A writer whose commit lets another writer build and commit the same entry first."""

    def __init__(self, root: Path, X: np.ndarray, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.X = X
        self.first: dict[str, Any] = {}

    def _write_meta(self, dfd: int, meta: dict[str, Any]) -> None:
        if not self.first:
            other = PersistentStore(self.root, lock="none")
            ref = other.ensure(self.X, meta["k"], method="hnsw", params={"threads": 1})
            graph = ref.load()
            self.first.update(
                ref=ref,
                meta=_meta(ref),
                neighbors=np.array(graph.neighbors),
                distances=np.array(graph.distances),
            )
        super()._write_meta(dfd, meta)


def _consistent(X: np.ndarray, nb: np.ndarray, ds: np.ndarray) -> bool:
    """Whether the distances are those of the neighbours (a mixed pair is not)."""
    diff = X[nb].astype(np.float64) - X[:, None, :].astype(np.float64)
    exact = np.sqrt(np.einsum("nkd,nkd->nk", diff, diff)).astype(np.float32)
    return bool(np.allclose(ds, exact, rtol=1e-5, atol=1e-6))


def test_a_writer_committing_over_another_never_touches_its_files(tmp_path: Path) -> None:
    X = latent_mixture(1500, 16, seed=11)
    late = _CommitLate(tmp_path / "s", X, lock="none")
    ref_b = late.ensure(X, 6, method="hnsw", params={"threads": 2})
    first = late.first
    names_a = {n for n in first["meta"]["files"] if n != "features.npy"}
    names_b = {n for n in _meta(ref_b)["files"] if n != "features.npy"}
    assert names_a.isdisjoint(names_b)  # one name never stands for two builds
    assert ref_b.tag != first["ref"].tag and _meta(ref_b)["build"]["tag"] == ref_b.tag
    # A's ref still maps A's files, whole, with the checksums A committed.
    graph_a = first["ref"].load()
    assert bits(graph_a.neighbors) == bits(first["neighbors"])
    assert bits(graph_a.distances) == bits(first["distances"])
    assert all((first["ref"].path / name).is_file() for name in names_a)
    # New readers get B's pair, whole; nothing is reported.
    reader = PersistentStore(tmp_path / "s", lock="none")
    served = reader.ensure(X, 6, method="hnsw")
    assert served.tag == ref_b.tag and reader.stats["searches"] == 0
    nb, ds = served.load()
    assert _consistent(X, np.asarray(nb), np.asarray(ds))
    assert reader.verify() == []
    # A's files are now leftovers: swept past the grace period, never reported as foreign.
    old = 1_000_000_000
    for name in names_a:
        os.utime(first["ref"].path / name, (old, old))
    reader.ensure(X, 9, method="hnsw")  # a write of the entry sweeps under its lock
    left = {p.name for p in served.path.iterdir()}
    assert names_a.isdisjoint(left) and reader.verify() == []


@pytest.mark.slow
def test_racing_writers_never_serve_a_mixed_graph(tmp_path: Path) -> None:
    X = latent_mixture(2000, 16, seed=12)
    x_path = tmp_path / "x.npy"
    np.save(x_path, X)
    root = str(tmp_path / "s")
    rounds = 6
    barrier = SPAWN.Barrier(2)
    done = SPAWN.Event()
    out = SPAWN.Queue()
    writers = [
        SPAWN.Process(
            target=kc_workers.race_approximate_writer,
            args=(root, str(x_path), threads, rounds, barrier, out),
        )
        for threads in (1, 2)
    ]
    reader = SPAWN.Process(
        target=kc_workers.read_approximate_until, args=(root, str(x_path), done, out)
    )
    for p in (*writers, reader):
        p.start()
    results = []
    try:
        for _ in writers:
            results.append(out.get(timeout=240))
        done.set()
        results.append(out.get(timeout=240))
    finally:
        done.set()
        for p in (*writers, reader):
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in (*writers, reader)), results
    by_role = {r[0]: r for r in results}
    assert by_role["reader"][1] >= 1 and by_role["reader"][2] == 0, by_role["reader"]
    for role in ("writer1", "writer2"):
        assert by_role[role][2] == 0, by_role[role]  # every graph a writer got was whole
    store = PersistentStore(root, lock="none")
    final = store.ensure(X, 4 + rounds, method="hnsw")
    assert store.stats["searches"] == 0
    nb, ds = final.load()
    assert _consistent(X, np.asarray(nb), np.asarray(ds))
    assert store.verify() == []
