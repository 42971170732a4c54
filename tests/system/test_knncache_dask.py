"""The exact graph built on a real Dask cluster equals the local one, bit for bit.

A :class:`distributed.LocalCluster` of two worker *processes* with one thread each; the
workers map the feature matrix from a ``.npy`` file (a temporary copy, or the store root's)
and search their blocks of query rows against all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, LocalCluster

from knncache import PersistentStore, compute_knn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client() -> Any:
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit=0,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[50:90] = x[3]  # duplicates: rows whose window must widen
    return x


def _same(a: Any, b: Any) -> bool:
    return bool(
        a.neighbors.tobytes() == b.neighbors.tobytes()
        and np.ascontiguousarray(a.distances).tobytes()
        == np.ascontiguousarray(b.distances).tobytes()
    )


@pytest.mark.parametrize(("metric", "dtype"), [("euclidean", np.float32), ("cosine", np.float64)])
def test_dask_graph_equals_local_bit_for_bit(
    client: Any, metric: str, dtype: Any, tmp_path: Path
) -> None:
    X = _data(4000, 32, seed=1).astype(dtype)
    local = compute_knn(X, 15, metric)
    on_cluster = compute_knn(X, 15, metric, executor=client, scratch_dir=tmp_path)
    assert _same(on_cluster, local)
    # The same through the concurrent.futures interface of the client, 5 uneven blocks.
    via_executor = compute_knn(X, 15, metric, executor=client.get_executor(), blocks=5)
    assert _same(via_executor, local)
    assert list(tmp_path.iterdir()) == []


def test_store_ensure_on_the_cluster(client: Any, tmp_path: Path) -> None:
    X = _data(3000, 16, seed=2)
    local_store = PersistentStore(tmp_path / "local")
    cluster_store = PersistentStore(tmp_path / "cluster")
    ref_local = local_store.ensure(X, 12)
    ref = cluster_store.ensure(X, 12, executor=client)
    assert ref.fingerprint == ref_local.fingerprint  # where it ran is not part of the key
    assert _same(ref.load(), ref_local.load())
    assert cluster_store.stats["searches"] == 1
    # The workers' copy went to the store root and is gone.
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    )
    # A hit runs nothing on the cluster.
    assert cluster_store.ensure(X, 8, executor=client) == ref
    assert cluster_store.stats["searches"] == 1
    # Growing the entry: the workers map the entry's own features.npy (no copy is made:
    # a scratch directory that cannot be written would fail otherwise).
    grown = cluster_store.ensure(
        X, 20, executor=client, params={"scratch_dir": str(tmp_path / "missing")}
    )
    assert _same(grown.load(), compute_knn(X, 20))
    assert cluster_store.stats["searches"] == 2
