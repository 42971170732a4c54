"""Races, crashes and cleanup with real processes (spawn), never only threads."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from knncache import (
    EphemeralStore,
    KnnCacheWarning,
    PersistentStore,
    compute_knn,
    fingerprint,
)
from knncache.cli import main as cli_main
from tests.knncache import kc_workers
from tests.knncache.kc_reference import entry_dirs, read_meta

pytestmark = pytest.mark.slow
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def features_file(tmp_path: Path) -> tuple[np.ndarray, str]:
    X = np.random.default_rng(7).standard_normal((1500, 24)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, str(path)


def test_four_processes_one_search(tmp_path: Path, features_file: tuple[np.ndarray, str]) -> None:
    X, x_path = features_file
    root = str(tmp_path / "store")
    barrier = SPAWN.Barrier(4)
    out = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=kc_workers.race_ensure, args=(root, x_path, 12, barrier, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    stats = [r[1] for r in results]
    assert sum(s["searches"] for s in stats) == 1
    assert sum(s["misses"] for s in stats) == 1
    assert sum(s["hits"] for s in stats) == 3
    assert len({r[2] for r in results}) == 1
    assert len({r[3] for r in results}) == 1
    g = compute_knn(X, 12)
    nb, ds = results[0][3].load()
    assert np.array_equal(nb, g.neighbors) and ds.tobytes() == g.distances.tobytes()
    assert entry_dirs(Path(root)) == [fingerprint(X)]


def _kill_while_writing(root: str, x_path: str, k: int) -> None:
    ready = SPAWN.Event()
    p = SPAWN.Process(target=kc_workers.write_then_hang_before_meta, args=(root, x_path, k, ready))
    p.start()
    try:
        assert ready.wait(timeout=120), "the child never reached the meta write"
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL


def test_sigkill_while_writing_a_new_entry(
    tmp_path: Path, features_file: tuple[np.ndarray, str]
) -> None:
    X, x_path = features_file
    root = tmp_path / "store"
    _kill_while_writing(str(root), x_path, 8)
    fp = fingerprint(X)
    leftovers = os.listdir(root / fp)
    assert "meta.json" not in leftovers and "k8_neighbors.npy" in leftovers
    store = PersistentStore(root)
    # Never served: not listed, reported by verify, get() refuses it.
    assert store.entries() == []
    assert [b.fingerprint for b in store.verify()] == [fp]
    with pytest.warns(KnnCacheWarning):
        assert store.get(fp) is None
    with pytest.warns(KnnCacheWarning, match="meta.json missing"):
        ref = store.ensure(X, 8)
    g = compute_knn(X, 8)
    nb, ds = ref.load()
    assert np.array_equal(nb, g.neighbors) and ds.tobytes() == g.distances.tobytes()
    assert store.verify() == []
    assert not [n for n in os.listdir(ref.path) if n.endswith(".tmp")]


def test_sigkill_while_replacing_with_larger_k(
    tmp_path: Path, features_file: tuple[np.ndarray, str]
) -> None:
    X, x_path = features_file
    root = tmp_path / "store"
    ref = PersistentStore(root).ensure(X, 4)
    _kill_while_writing(str(root), x_path, 9)
    assert read_meta(root, ref.fingerprint)["k"] == 4  # the old commit still stands
    store = PersistentStore(root)
    assert store.verify() == []
    assert store.ensure(X, 4) == ref and store.stats["searches"] == 0
    assert np.array_equal(ref.load().neighbors, compute_knn(X, 4).neighbors)
    ref9 = store.ensure(X, 9)
    assert ref9.k == 9 and store.stats["searches"] == 1
    assert sorted(os.listdir(ref9.path)) == [
        "features.npy",
        "k9_distances.npy",
        "k9_neighbors.npy",
        "meta.json",
    ]


def test_ephemeral_removed_after_a_spawn_pool_raised(tmp_path: Path) -> None:
    X = np.random.default_rng(3).standard_normal((80, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="on purpose"), EphemeralStore(dir=tmp_path) as store:
        ref = store.ensure(X, 5)
        with ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
            results = list(pool.map(kc_workers.load_then_maybe_raise, [ref] * 4, range(4)))
        raise AssertionError(f"unreachable: {results}")
    assert os.listdir(tmp_path) == []


def test_ephemeral_removed_at_interpreter_exit_and_gc_temp(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from knncache import EphemeralStore
        s = EphemeralStore(dir={str(tmp_path)!r})
        s.ensure(np.eye(5, dtype=np.float32), 2)
        print(s.root, flush=True)
        if sys.argv[1] == "hang":
            time.sleep(600)
        """
    )
    # Normal interpreter exit, never closed, never used with `with`: removed.
    out = subprocess.run(
        [sys.executable, "-c", code, "exit"], capture_output=True, text=True, check=True
    )
    assert not Path(out.stdout.strip()).exists()
    # SIGKILL: the directory stays; `knncache gc --temp` removes it (dead pid) but never a
    # live process's directory.
    with (
        subprocess.Popen(
            [sys.executable, "-c", code, "hang"], stdout=subprocess.PIPE, text=True
        ) as proc,
        EphemeralStore(dir=tmp_path) as live,
    ):
        assert proc.stdout is not None
        killed_root = Path(proc.stdout.readline().strip())
        assert cli_main(["gc", "--temp", "--dir", str(tmp_path)]) == 0
        assert killed_root.exists()  # its process is still alive
        proc.kill()
        proc.wait(timeout=30)
        assert killed_root.exists()
        assert cli_main(["gc", "--temp", "--dir", str(tmp_path)]) == 0
        assert not killed_root.exists()
        assert live.root.exists()
