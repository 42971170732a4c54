"""Approximate engines (``method="hnsw"|"ivf"``), ``recall_at_k``, the exact search on an
executor (threads here; a Dask cluster in tests/system/test_knncache_dask.py) and the store
integration (method and parameters in the key and the meta, recall shown by the CLI)."""

from __future__ import annotations

import json
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import (
    ENGINE_DEFAULTS,
    CorruptEntryError,
    EntryNotFoundError,
    InvalidParameterError,
    PersistentStore,
    check_engine,
    compute_knn,
    entry_key,
    fingerprint,
    recall_at_k,
)
from knncache.cli import main as cli_main
from tests.knncache.kc_reference import bits, latent_mixture


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, Any]:
    X = latent_mixture(20_000, 128)
    return X, compute_knn(X, 20)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_documented_defaults_reach_recall_095(big: tuple[np.ndarray, Any], method: str) -> None:
    X, exact = big
    approx = compute_knn(X, 20, method=method)
    full = (approx.neighbors[:, :, None] == exact.neighbors[:, None, :]).any(axis=2).mean()
    sampled = recall_at_k(approx.neighbors, X, 20, sample=1000, seed=0)
    assert full >= 0.95 and sampled >= 0.95
    assert abs(sampled - full) < 0.02  # the seeded sample estimates the full recall
    # The graph contract still holds: self excluded, rows sorted by (distance, index), and
    # the distance of a neighbour both graphs found is the exact search's, bit for bit.
    n = len(X)
    assert not (approx.neighbors == np.arange(n)[:, None]).any()
    d, nb = approx.distances, approx.neighbors
    assert ((d[:, 1:] > d[:, :-1]) | ((d[:, 1:] == d[:, :-1]) & (nb[:, 1:] > nb[:, :-1]))).all()
    same = approx.neighbors[:, :5] == exact.neighbors[:, :5]
    assert same.mean() > 0.9
    assert bits(approx.distances[:, :5][same]) == bits(exact.distances[:, :5][same])


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_builds_are_reproducible(method: str) -> None:
    X = latent_mixture(3000, 32, seed=4)
    a = compute_knn(X, 10, method=method, threads=1)  # the deterministic build
    b = compute_knn(X, 10, method=method, threads=1)
    assert bits(a.neighbors) == bits(b.neighbors)
    assert bits(a.distances) == bits(b.distances)


def test_ivf_prefix_property_and_hnsw_stated() -> None:
    X = latent_mixture(4000, 32, seed=5)
    small = compute_knn(X, 8, method="ivf", nprobe=4)
    large = compute_knn(X, 24, method="ivf", nprobe=4)
    assert (large.neighbors[:, :8] == small.neighbors).all()
    assert bits(large.distances[:, :8]) == bits(small.distances)
    # hnsw: not guaranteed (documented), but nearly: a larger k explores more.
    h8 = compute_knn(X, 8, method="hnsw")
    h24 = compute_knn(X, 24, method="hnsw")
    assert (h24.neighbors[:, :8] == h8.neighbors).mean() > 0.99


def test_rows_with_too_few_candidates_are_searched_exactly() -> None:
    # 5 lists of ~40 points, one probed: no list holds the 150 neighbours asked for, so every
    # row falls back to the exact search and the graph is the exact one.
    X = latent_mixture(200, 8, seed=6)
    approx = compute_knn(X, 150, method="ivf", nlist=5, nprobe=1)
    exact = compute_knn(X, 150)
    assert bits(approx.neighbors) == bits(exact.neighbors)
    assert bits(approx.distances) == bits(exact.distances)


def test_cosine_and_float64_through_an_engine() -> None:
    X = latent_mixture(2000, 16, seed=7).astype(np.float64) + 3.0
    approx = compute_knn(X, 10, "cosine", method="hnsw")
    exact = compute_knn(X, 10, "cosine")
    assert recall_at_k(approx.neighbors, X, metric="cosine", sample=2000) > 0.99
    same = approx.neighbors == exact.neighbors
    assert bits(approx.distances[same]) == bits(exact.distances[same])


def test_recall_at_k_counts_what_it_should() -> None:
    X = latent_mixture(1500, 16, seed=8)
    g15 = compute_knn(X, 15)
    assert recall_at_k(g15.neighbors, X, 10) == 1.0
    assert recall_at_k(g15.neighbors[:, :10], X) == 1.0
    # Half the columns replaced by the 11th..15th neighbours: recall exactly 0.5.
    half = g15.neighbors[:, :10].copy()
    half[:, 5:] = g15.neighbors[:, 10:15]
    assert recall_at_k(half, X, 10, sample=300, seed=1) == 0.5
    with pytest.raises(InvalidParameterError, match="approx_neighbors"):
        recall_at_k(half[:10], X)
    with pytest.raises(InvalidParameterError, match="invalid k 11"):
        recall_at_k(half, X, 11)
    with pytest.raises(InvalidParameterError, match="sample"):
        recall_at_k(half, X, sample=0)


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("exact", None, {}),
        ("exact", {}, {}),
        ("hnsw", {}, {}),
        ("hnsw", {"M": np.int64(16), "efSearch": 40}, {"M": 16, "efSearch": 40}),
        ("ivf", {"nlist": "auto", "nprobe": 3}, {"nlist": "auto", "nprobe": 3}),
        ("ivf", {"nlist": 7}, {"nlist": 7}),
    ],
)
def test_check_engine_normalises(method: str, params: Any, expected: dict[str, Any]) -> None:
    got_method, got = check_engine(method, params)
    assert (got_method, got) == (method, expected)
    assert all(type(v) is int for v in got.values() if v != "auto")
    if params:
        assert got is not params


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("annoy", {}, "method"),
        (None, {}, "method"),
        ("hnsw", [("M", 4)], "params"),
        ("exact", {"blocks": 4}, "params"),
        ("hnsw", {"ef": 10}, "params"),
        ("ivf", {"M": 16}, "params"),
        ("hnsw", {"M": 0}, "M"),
        ("hnsw", {"efSearch": True}, "efSearch"),
        ("ivf", {"nprobe": 2.5}, "nprobe"),
        ("ivf", {"nlist": "many"}, "nlist"),
        ("hnsw", {"M": "auto"}, "M"),
    ],
)
def test_check_engine_refuses(method: Any, params: Any, name: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        check_engine(method, params)
    assert info.value.name == name


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"method": "annoy"}, "method"),
        ({"method": "hnsw", "ef": 10}, "params"),
        ({"method": "hnsw", "M": 0}, "M"),
        ({"method": "ivf", "nprobe": 2.5}, "nprobe"),
        ({"method": "ivf", "nlist": 10_000}, "nlist"),
        ({"method": "exact", "blocks": 4}, "params"),  # exact parameters need an executor
        ({"method": "hnsw", "executor": ThreadPoolExecutor(1)}, "executor"),
        ({"method": "exact", "executor": object()}, "executor"),
    ],
)
def test_bad_engine_arguments(kwargs: dict[str, Any], name: str, tmp_path: Path) -> None:
    X = latent_mixture(300, 8)
    with pytest.raises(InvalidParameterError, match=name) as info:
        compute_knn(X, 5, **kwargs)
    assert isinstance(info.value, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))  # errors cross process boundaries
    err = info.value
    assert (copy.name, copy.value, str(copy)) == (err.name, err.value, str(err))
    store = PersistentStore(tmp_path / "s")
    params = {k: v for k, v in kwargs.items() if k not in ("method", "executor")}
    with pytest.raises(InvalidParameterError, match=name):
        store.ensure(
            X,
            5,
            method=kwargs.get("method", "exact"),
            params=params,
            executor=kwargs.get("executor"),
        )
    assert not (tmp_path / "s").exists()  # refused before any write


def test_exact_on_an_executor_is_bit_identical(tmp_path: Path) -> None:
    X = latent_mixture(3000, 24, seed=9)
    X[100:140] = X[0]  # a group of duplicates: the widening path runs too
    local = compute_knn(X, 12)
    with ThreadPoolExecutor(3) as pool:
        split = compute_knn(X, 12, executor=pool, blocks=7, scratch_dir=tmp_path)
    assert bits(split.neighbors) == bits(local.neighbors)
    assert bits(split.distances) == bits(local.distances)
    assert list(tmp_path.iterdir()) == []  # the shipped copy is removed
    # A given .npy is mapped instead of a copy, after checking it holds X.
    np.save(tmp_path / "x.npy", X)
    with ThreadPoolExecutor(2) as pool:
        again = compute_knn(X, 12, executor=pool, features_npy=tmp_path / "x.npy")
        assert bits(again.neighbors) == bits(local.neighbors)
        np.save(tmp_path / "other.npy", X + 1)
        with pytest.raises(CorruptEntryError, match="does not hold the features"):
            compute_knn(X, 12, executor=pool, features_npy=tmp_path / "other.npy")


def test_store_keys_meta_and_cli_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = latent_mixture(2500, 16, seed=10)
    store = PersistentStore(tmp_path / "s")
    exact = store.ensure(X, 10)
    hnsw = store.ensure(X, 10, method="hnsw", params={"threads": 1})
    ivf = store.ensure(X, 10, method="ivf", params={"nprobe": 8})
    assert exact.fingerprint == fingerprint(X)  # the exact entry's key is unchanged
    assert len({exact.fingerprint, hnsw.fingerprint, ivf.fingerprint}) == 3
    # Defaults spelled out give the same key; another value another one.
    spelled = dict(ENGINE_DEFAULTS["hnsw"])
    assert store.ensure(X, 5, method="hnsw", params=spelled).fingerprint == hnsw.fingerprint
    other = store.ensure(X, 5, method="hnsw", params={"efSearch": 40})
    assert other.fingerprint != hnsw.fingerprint
    assert store.stats["searches"] == 4
    one = compute_knn(X, 10, method="hnsw", threads=1)
    assert bits(hnsw.load().neighbors) == bits(one.neighbors)

    meta = json.loads((hnsw.path / "meta.json").read_text())
    keyed = {k: v for k, v in ENGINE_DEFAULTS["hnsw"].items() if k != "threads"}
    assert meta["method"] == "hnsw" and meta["params"] == keyed
    measured = recall_at_k(hnsw.load().neighbors, X, 10, sample=1000, seed=0)
    assert meta["recall"] == {"k": 10, "value": measured, "sample": 1000, "seed": 0}
    assert "method" not in json.loads((exact.path / "meta.json").read_text())

    # Growing the entry keeps the engine fields (re-measured at the new k).
    bigger = store.ensure(X, 15, method="ivf", params={"nprobe": 8})
    assert bigger.fingerprint == ivf.fingerprint
    meta = json.loads((bigger.path / "meta.json").read_text())
    assert meta["method"] == "ivf" and meta["recall"]["k"] == 15
    assert meta["params"]["nlist"] == 50  # "auto": round(sqrt(2500))

    assert cli_main(["info", str(store.root), hnsw.fingerprint]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("engine"))
    assert "hnsw M=32 efConstruction=80 efSearch=96" in line
    assert f"recall@10={measured:.4f}" in line
    assert cli_main(["info", str(store.root), exact.fingerprint]) == 0
    assert "engine       exact\n" in capsys.readouterr().out
    assert cli_main(["info", "--json", str(store.root), ivf.fingerprint]) == 0
    assert json.loads(capsys.readouterr().out)["recall"]["k"] == 15


def test_entry_key_and_info_name_the_entry_ensure_keeps(tmp_path: Path) -> None:
    X = latent_mixture(1200, 8, seed=11)
    store = PersistentStore(tmp_path / "s")
    # The key is known before the entry exists (to pin it first), and is ensure's key.
    key = entry_key(X, method="hnsw", params={"efSearch": 50})
    assert key != entry_key(X) == fingerprint(X)
    assert entry_key(X, method="hnsw", params=dict(ENGINE_DEFAULTS["hnsw"])) == entry_key(
        X, method="hnsw"
    )
    with pytest.raises(EntryNotFoundError):
        store.info(key)
    with store.pin(key):
        ref = store.ensure(X, 6, method="hnsw", params={"efSearch": 50})
    assert ref.fingerprint == key
    assert entry_key(X, method="ivf") == store.ensure(X, 6, method="ivf").fingerprint

    info = store.info(ref)
    assert info.method == "hnsw" and info.params == {"M": 32, "efConstruction": 80, "efSearch": 50}
    meta = json.loads((ref.path / "meta.json").read_text())
    assert info.recall == meta["recall"] and 0.0 < info.recall["value"] <= 1.0
    exact = store.info(store.ensure(X, 6))
    assert exact.method == "exact" and exact.params == {} and exact.recall is None
    assert {e.fingerprint: e.recall for e in store.entries()}[key] == info.recall

    with pytest.raises(InvalidParameterError, match="efSearch"):
        entry_key(X, method="hnsw", params={"efSearch": 0})
    with pytest.raises(InvalidParameterError, match="method"):
        entry_key(X, method="annoy")
