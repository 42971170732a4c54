"""The KnnStore contract, run against every backend.

``StoreContract`` holds the tests; one subclass per backend supplies ``make_store``. Helpers
from ``kc_reference`` read the directory directly, so the store is what gets tested.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import pytest

import knncache
import knncache._atomic as atomic_mod
from knncache import (
    ArrayNotFoundError,
    CorruptEntryError,
    EntryNotFoundError,
    EphemeralStore,
    FeaturesNotStoredError,
    InvalidFeaturesError,
    InvalidKError,
    InvalidNameError,
    KnnCacheWarning,
    KnnRef,
    KnnStore,
    PersistentStore,
    StoreClosedError,
    StoreWriteError,
    UnknownMetricError,
    compute_knn,
    fingerprint,
)
from tests.knncache.kc_reference import (
    array_names,
    entry_dirs,
    read_array_marker,
    read_meta,
    snapshot,
    tmp_files,
)

MakeStore = Callable[..., KnnStore]


def pdist(f: np.ndarray) -> np.ndarray:
    x = np.asarray(f, dtype=np.float64)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)).astype(np.float32)


def corrupt_truncate(entry: Path, meta: dict[str, Any]) -> None:
    p = entry / f"k{meta['k']}_neighbors.npy"
    p.write_bytes(p.read_bytes()[:-40])


def corrupt_flip_byte(entry: Path, meta: dict[str, Any]) -> None:
    p = entry / f"k{meta['k']}_distances.npy"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0xFF
    p.write_bytes(bytes(data))


def corrupt_flip_feature_byte(entry: Path, meta: dict[str, Any]) -> None:
    p = entry / "features.npy"
    data = bytearray(p.read_bytes())
    data[200] ^= 0x01
    p.write_bytes(bytes(data))


def corrupt_delete_meta(entry: Path, meta: dict[str, Any]) -> None:
    (entry / "meta.json").unlink()


def corrupt_garbage_meta(entry: Path, meta: dict[str, Any]) -> None:
    (entry / "meta.json").write_bytes(b"{not json\x00\xff")


def corrupt_meta_shape(entry: Path, meta: dict[str, Any]) -> None:
    meta["files"][f"k{meta['k']}_neighbors.npy"]["shape"] = [meta["n"], meta["k"] + 1]
    (entry / "meta.json").write_text(json.dumps(meta))


def corrupt_meta_n(entry: Path, meta: dict[str, Any]) -> None:
    meta["n"] += 1
    (entry / "meta.json").write_text(json.dumps(meta))


def corrupt_missing_kfile(entry: Path, meta: dict[str, Any]) -> None:
    (entry / f"k{meta['k']}_distances.npy").unlink()


def corrupt_replaced_file(entry: Path, meta: dict[str, Any]) -> None:
    # Same size, valid header, other content: only the checksum catches it.
    p = entry / f"k{meta['k']}_neighbors.npy"
    arr = np.load(p)
    np.save(p, arr[::-1].copy())


CORRUPTIONS = [
    corrupt_truncate,
    corrupt_flip_byte,
    corrupt_flip_feature_byte,
    corrupt_delete_meta,
    corrupt_garbage_meta,
    corrupt_meta_shape,
    corrupt_meta_n,
    corrupt_missing_kfile,
    corrupt_replaced_file,
]


def ensure_in_threads(store: KnnStore, X: np.ndarray, k: int, n: int = 4) -> list[KnnRef]:
    """``n`` threads call ``store.ensure(X, k)`` at the same moment; their refs."""
    import threading

    barrier = threading.Barrier(n)
    refs: list[KnnRef] = []

    def work() -> None:
        barrier.wait(timeout=30)
        refs.append(store.ensure(X, k))

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return refs


class StoreContract:
    """Tests every backend must pass."""

    expected_persistent: bool

    @pytest.fixture
    def make_store(self) -> Iterator[MakeStore]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    @pytest.fixture
    def store(self, make_store: MakeStore) -> KnnStore:
        return make_store()

    # ------------------------------------------------------------------ basics
    def test_capability_and_root(self, store: KnnStore) -> None:
        assert store.is_persistent is self.expected_persistent
        assert isinstance(store.root, Path)
        assert set(store.stats) >= {"hits", "misses", "searches"}
        with pytest.raises(TypeError):
            store.stats["hits"] = 5  # type: ignore[index]

    def test_ensure_writes_the_documented_layout(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 7)
        fp = fingerprint(X)
        assert ref.fingerprint == fp
        assert (ref.n, ref.d, ref.k, ref.metric) == (60, 5, 7, "euclidean")
        assert ref.persistent is self.expected_persistent
        assert ref.path == store.root / fp
        assert entry_dirs(store.root) == [fp]
        assert sorted(os.listdir(store.root / fp)) == [
            "features.npy",
            "k7_distances.npy",
            "k7_neighbors.npy",
            "meta.json",
        ]
        meta = read_meta(store.root, fp)
        assert meta["format_version"] == knncache.FORMAT_VERSION
        assert (meta["n"], meta["d"], meta["k"], meta["metric"]) == (60, 5, 7, "euclidean")
        assert meta["files"]["k7_neighbors.npy"]["shape"] == [60, 7]
        assert meta["files"]["k7_neighbors.npy"]["dtype"] == "<i8"
        assert meta["files"]["k7_distances.npy"]["dtype"] == "<f4"
        assert len(meta["files"]["features.npy"]["xxh3_128"]) == 32
        assert meta["created"] <= meta["last_used"]
        nb = np.load(store.root / fp / "k7_neighbors.npy")
        assert np.array_equal(nb, compute_knn(X, 7).neighbors)
        assert tmp_files(store.root) == []

    def test_load_is_read_only_sliced_and_exact(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 9)
        expected = compute_knn(X, 9)
        for k in (None, 9, 4, 1):
            nb, ds = ref.load(k)
            kk = 9 if k is None else k
            assert nb.shape == ds.shape == (60, kk)
            assert np.array_equal(nb, expected.neighbors[:, :kk])
            assert ds.tobytes() == expected.distances[:, :kk].tobytes()
            assert not nb.flags.writeable and not ds.flags.writeable
            with pytest.raises(ValueError):
                nb[0, 0] = 1
        for bad in (0, 10, -1, 2.0, True):
            with pytest.raises(InvalidKError):
                ref.load(bad)  # type: ignore[arg-type]
        feats = ref.features()
        assert np.array_equal(feats, X) and feats.dtype == X.dtype
        assert not feats.flags.writeable
        assert fingerprint(feats) == ref.fingerprint

    def test_hit_does_not_search(self, store: KnnStore, X: np.ndarray) -> None:
        ref1 = store.ensure(X, 5)
        ref2 = store.ensure(X.copy(), 5)
        ref3 = store.ensure(X, 3)
        assert ref1 == ref2 and ref3.k == 5
        assert dict(store.stats)["searches"] == 1
        assert store.stats["hits"] == 2 and store.stats["misses"] == 1

    def test_threads_compute_once(self, store: KnnStore, X: np.ndarray) -> None:
        refs = ensure_in_threads(store, X, 6)
        assert len(refs) == 4 and len(set(refs)) == 1
        assert store.stats["searches"] == 1 and store.stats["hits"] == 3

    def test_larger_k_replaces_entry_without_disturbing_readers(
        self, store: KnnStore, X: np.ndarray
    ) -> None:
        old_ref = store.ensure(X, 4)
        old_nb, _old_ds = old_ref.load()
        old_copy = np.array(old_nb)
        new_ref = store.ensure(X, 11)
        assert new_ref.k == 11 and store.stats["searches"] == 2
        names = sorted(os.listdir(new_ref.path))
        assert "k4_neighbors.npy" not in names and "k11_neighbors.npy" in names
        # The reader's memmap is intact (file unlinked, not overwritten).
        assert np.array_equal(old_nb, old_copy)
        # An old ref follows the meta to the new files.
        nb, _ = old_ref.load()
        assert nb.shape == (60, 4) and np.array_equal(nb, old_copy)
        assert np.array_equal(new_ref.load(4).neighbors, old_copy)

    def test_store_features_false_then_true(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5, store_features=False)
        assert "features.npy" not in os.listdir(ref.path)
        with pytest.raises(FeaturesNotStoredError):
            ref.features()
        with pytest.raises(FeaturesNotStoredError):
            store.ensure_array(ref, "pd", pdist)
        ref2 = store.ensure(X, 5, store_features=True)
        assert store.stats["searches"] == 1  # features added, no new search
        assert np.array_equal(ref2.features(), X)
        # An entry that holds features keeps them when asked without.
        store.ensure(X, 6, store_features=False)
        assert np.array_equal(ref2.features(), X)

    def test_changed_features_are_a_new_entry(self, store: KnnStore, X: np.ndarray) -> None:
        ref_old = store.ensure(X, 5)
        Y = X.copy()
        Y[30, 2] += 1.0
        ref_new = store.ensure(Y, 5)
        assert ref_new.fingerprint != ref_old.fingerprint
        assert store.stats["searches"] == 2
        assert np.array_equal(ref_new.load().neighbors, compute_knn(Y, 5).neighbors)
        assert np.array_equal(ref_new.features(), Y)
        assert sorted(entry_dirs(store.root)) == sorted([ref_old.fingerprint, ref_new.fingerprint])

    def test_memmap_and_copy_share_the_entry(
        self, store: KnnStore, X: np.ndarray, tmp_path: Path
    ) -> None:
        np.save(tmp_path / "feats.npy", X)
        mm = np.load(tmp_path / "feats.npy", mmap_mode="r")
        ref = store.ensure(mm, 5)
        assert store.ensure(np.array(X, order="F"), 5) == ref
        assert store.stats["searches"] == 1 and store.stats["hits"] == 1

    def test_metric_is_part_of_the_key(self, store: KnnStore, X: np.ndarray) -> None:
        a = store.ensure(X, 5, "euclidean")
        b = store.ensure(X, 5, "cosine")
        assert a.fingerprint != b.fingerprint and b.metric == "cosine"
        np.testing.assert_array_equal(b.load().neighbors, compute_knn(X, 5, "cosine").neighbors)

    @pytest.mark.parametrize(
        ("features", "k", "metric", "store_features", "error"),
        [
            (np.zeros(5, np.float32), 1, "euclidean", True, InvalidFeaturesError),
            (np.zeros((0, 4), np.float32), 1, "euclidean", True, InvalidFeaturesError),
            (np.array([[1.0, np.nan], [1.0, 2.0]]), 1, "euclidean", True, InvalidFeaturesError),
            (np.array([["a"], ["b"]]), 1, "euclidean", True, InvalidFeaturesError),
            (np.eye(4, dtype=np.float32), 4, "euclidean", True, InvalidKError),
            (np.eye(4, dtype=np.float32), 0, "euclidean", True, InvalidKError),
            (np.eye(4, dtype=np.float32), 2, "l1", True, UnknownMetricError),
            (np.zeros((4, 2), np.float32), 2, "cosine", True, InvalidFeaturesError),
            (np.eye(4, dtype=np.float32), 2, "euclidean", "yes", TypeError),
        ],
    )
    def test_bad_input_fails_before_any_write(
        self,
        store: KnnStore,
        features: np.ndarray,
        k: int,
        metric: str,
        store_features: Any,
        error: type[Exception],
    ) -> None:
        before = snapshot(store.root)
        with pytest.raises(error):
            store.ensure(features, k, metric, store_features=store_features)
        assert snapshot(store.root) == before
        assert dict(store.stats) == dict.fromkeys(store.stats, 0)

    def test_ref_is_small_and_pickles(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5)
        data = pickle.dumps(ref)
        assert len(data) < 1024
        back = pickle.loads(data)
        assert back == ref
        assert np.array_equal(back.load().neighbors, ref.load().neighbors)
        with pytest.raises(AttributeError):
            ref.k = 3  # type: ignore[misc]

    @pytest.mark.parametrize(
        "bad_fp", ["../etc", "A" * 32, "0" * 31, "0" * 33, "/" + "0" * 31, "0" * 30 + "/.", 7]
    )
    def test_fingerprints_are_validated(self, store: KnnStore, X: np.ndarray, bad_fp: Any) -> None:
        ref = store.ensure(X, 5)
        with pytest.raises(InvalidNameError):
            KnnRef(str(store.root), bad_fp, 60, 5, 5, "euclidean", True)
        with pytest.raises(InvalidNameError):
            store.get(bad_fp)
        # A ref tampered with after construction (unpickling skips __post_init__).
        forged = pickle.loads(pickle.dumps(ref))
        object.__setattr__(forged, "fingerprint", bad_fp)
        for call in (forged.load, forged.features, lambda: forged.path):
            with pytest.raises(InvalidNameError):
                call()

    def test_get(self, store: KnnStore, X: np.ndarray) -> None:
        fp = fingerprint(X)
        assert store.get(fp) is None
        ref = store.ensure(X, 5)
        assert store.get(fp) == ref

    def test_entries_and_clear(self, store: KnnStore, X: np.ndarray) -> None:
        assert store.entries() == []
        a = store.ensure(X, 5)
        b = store.ensure(X * 2, 3, "cosine", store_features=False)
        infos = {e.fingerprint: e for e in store.entries()}
        assert set(infos) == {a.fingerprint, b.fingerprint}
        ia = infos[a.fingerprint]
        assert (ia.n, ia.d, ia.k, ia.metric, ia.has_features) == (60, 5, 5, "euclidean", True)
        assert ia.bytes == sum(p.stat().st_size for p in a.path.iterdir())
        assert not infos[b.fingerprint].has_features
        removed = store.clear()
        assert sorted(removed) == sorted([a.fingerprint, b.fingerprint])
        assert entry_dirs(store.root) == [] and store.entries() == []
        with pytest.raises(EntryNotFoundError) as info:
            a.load()
        assert isinstance(info.value, FileNotFoundError)
        assert store.ensure(X, 5) == a  # rebuilt

    def test_clear_skips_an_entry_being_written(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5)
        lock = filelock.FileLock(str(store.root / f"{ref.fingerprint}.lock"))
        with lock:
            assert store.clear() == []
        assert store.clear() == [ref.fingerprint]

    @pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
    def test_corruption_is_reported_and_rebuilt(
        self, store: KnnStore, X: np.ndarray, corrupt: Callable[[Path, dict[str, Any]], None]
    ) -> None:
        ref = store.ensure(X, 6)
        assert store.verify() == []
        corrupt(ref.path, read_meta(store.root, ref.fingerprint))
        bad = store.verify()
        assert [b.fingerprint for b in bad] == [ref.fingerprint]
        assert bad[0].reason and bad[0].path == str(ref.path)
        with pytest.warns(KnnCacheWarning, match="corrupt entry"):
            assert store.get(ref.fingerprint) is None
        with pytest.warns(KnnCacheWarning, match="corrupt entry"):
            ref2 = store.ensure(X, 6)
        assert store.stats["corrupt_rebuilds"] == 1 and store.stats["searches"] == 2
        expected = compute_knn(X, 6)
        assert np.array_equal(ref2.load().neighbors, expected.neighbors)
        assert ref2.load().distances.tobytes() == expected.distances.tobytes()
        assert np.array_equal(ref2.features(), X)
        assert store.verify() == []

    def test_load_detects_truncation_cheaply(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 6)
        corrupt_truncate(ref.path, read_meta(store.root, ref.fingerprint))
        with pytest.raises(CorruptEntryError):
            ref.load()

    def test_load_checks_header_against_ref(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 6)
        np.save(ref.path / "k6_neighbors.npy", np.zeros((60, 6), np.int32))
        with pytest.raises(CorruptEntryError):
            ref.load()

    # ------------------------------------------------------------------ ensure_array
    def test_ensure_array(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5)
        calls = []

        def compute(f: np.ndarray) -> np.ndarray:
            calls.append(1)
            assert not f.flags.writeable
            return pdist(f)

        with pytest.raises(ArrayNotFoundError) as info:
            ref.array("pd")
        assert isinstance(info.value, KeyError)
        store.ensure_array(ref, "pd", compute)
        store.ensure_array(ref, "pd", compute)
        assert len(calls) == 1
        assert store.stats["array_computes"] == 1 and store.stats["array_hits"] == 1
        arr = ref.array("pd")
        assert np.array_equal(arr, pdist(X)) and not arr.flags.writeable
        assert read_array_marker(store.root, ref.fingerprint, "pd")["shape"] == [60, 60]
        assert "arrays" not in read_meta(store.root, ref.fingerprint)
        # Survives a replacement of the entry at a larger k.
        store.ensure(X, 9)
        assert np.array_equal(ref.array("pd"), pdist(X))
        assert "pd" in array_names(store.root, ref.fingerprint)
        info_ = {e.fingerprint: e for e in store.entries()}[ref.fingerprint]
        assert info_.arrays == ("pd",)
        # Counted in the entry size.
        assert info_.bytes >= 60 * 60 * 4
        for bad in ("PD", "../x", "", "a" * 65, "a-b"):
            with pytest.raises(InvalidNameError):
                store.ensure_array(ref, bad, compute)
            with pytest.raises(InvalidNameError):
                ref.array(bad)

    def test_ensure_array_corrupt_is_recomputed(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5)
        store.ensure_array(ref, "pd", pdist)
        p = ref.path / "array_pd.npy"
        data = bytearray(p.read_bytes())
        data[-1] ^= 0xFF
        p.write_bytes(bytes(data))
        assert [b.fingerprint for b in store.verify()] == [ref.fingerprint]
        with pytest.warns(KnnCacheWarning, match="checksum"):
            store.ensure_array(ref, "pd", pdist)
        assert store.stats["array_computes"] == 2
        assert np.array_equal(ref.array("pd"), pdist(X))
        assert store.verify() == []

    def test_ensure_array_rejects_objects_and_foreign_refs(
        self, store: KnnStore, make_store: MakeStore, X: np.ndarray
    ) -> None:
        ref = store.ensure(X, 5)
        with pytest.raises(InvalidFeaturesError):
            store.ensure_array(ref, "obj", lambda f: np.array([object()] * 3))
        assert "array_obj.npy" not in os.listdir(ref.path)
        other = make_store()
        with pytest.raises(EntryNotFoundError):
            other.ensure_array(ref, "pd", pdist)

    # ------------------------------------------------------------------ write failures
    def test_disk_full_leaves_nothing_partial(
        self, store: KnnStore, X: np.ndarray, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_write = atomic_mod.HashingWriter.write
        budget = {"bytes": 3000}  # features (1328 B) fit, the neighbours do not

        def failing_write(self: Any, data: Any) -> int:
            n = memoryview(data).nbytes
            budget["bytes"] -= n
            if budget["bytes"] < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(self, data)

        monkeypatch.setattr(atomic_mod.HashingWriter, "write", failing_write)
        before = snapshot(store.root)
        with pytest.raises(StoreWriteError) as info:
            store.ensure(X, 5)
        assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
        assert "No space left" in str(info.value)
        after = [p for p in snapshot(store.root) if not p[0].endswith(".lock")]
        assert after == [p for p in before if not p[0].endswith(".lock")]
        monkeypatch.undo()
        ref = store.ensure(X, 5)
        assert np.array_equal(ref.load().neighbors, compute_knn(X, 5).neighbors)

    def test_failed_meta_replace_keeps_old_entry(
        self, store: KnnStore, X: np.ndarray, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ref = store.ensure(X, 4)
        real_replace = os.replace

        def failing_replace(src: str, dst: Any, **kwargs: Any) -> None:
            if str(dst).endswith("meta.json"):
                raise OSError(errno.EROFS, "Read-only file system")
            real_replace(src, dst, **kwargs)

        monkeypatch.setattr(atomic_mod.os, "replace", failing_replace)
        with pytest.raises(StoreWriteError):
            store.ensure(X, 8)
        monkeypatch.undo()
        assert sorted(os.listdir(ref.path)) == [
            "features.npy",
            "k4_distances.npy",
            "k4_neighbors.npy",
            "meta.json",
        ]
        assert store.verify() == []
        assert store.ensure(X, 4) == ref

    # ------------------------------------------------------------------ closing
    def test_use_after_close(self, store: KnnStore, X: np.ndarray) -> None:
        ref = store.ensure(X, 5)
        store.close()
        store.close()  # idempotent
        assert store.closed
        for call in (
            lambda: store.ensure(X, 5),
            lambda: store.get(ref.fingerprint),
            store.entries,
            store.clear,
            store.verify,
            lambda: store.ensure_array(ref, "pd", pdist),
        ):
            with pytest.raises(StoreClosedError):
                call()


class TestPersistentStore(StoreContract):
    expected_persistent = True

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[MakeStore]:
        stores: list[KnnStore] = []

        def make(**kwargs: Any) -> KnnStore:
            store = PersistentStore(tmp_path / f"store{len(stores)}", **kwargs)
            stores.append(store)
            return store

        yield make
        for s in stores:
            s.close()

    def test_root_created_lazily(self, tmp_path: Path, X: np.ndarray) -> None:
        store = PersistentStore(tmp_path / "a" / "b")
        assert not store.root.exists()
        assert store.entries() == [] and store.verify() == [] and store.clear() == []
        store.ensure(X, 3)
        assert store.root.is_dir()

    def test_root_that_is_a_file(self, tmp_path: Path) -> None:
        f = tmp_path / "file"
        f.write_text("x")
        with pytest.raises(StoreWriteError) as info:
            PersistentStore(f)
        assert info.value.path == str(f)
        # Under a file: mkdir fails, nothing written.
        store = PersistentStore(f / "sub")
        with pytest.raises(StoreWriteError):
            store.ensure(np.eye(4, dtype=np.float32), 2)
        assert f.read_text() == "x"

    def test_survives_a_new_store_object(self, tmp_path: Path, X: np.ndarray) -> None:
        ref = PersistentStore(tmp_path / "s").ensure(X, 5)
        again = PersistentStore(tmp_path / "s")
        assert again.ensure(X, 5) == ref
        assert again.stats["searches"] == 0 and again.stats["hits"] == 1

    def test_lru_eviction(self, tmp_path: Path, rng: np.random.Generator) -> None:
        feats = [rng.standard_normal((50, 4)).astype(np.float32) for _ in range(4)]
        probe = PersistentStore(tmp_path / "probe")
        size = probe.entries()[0].bytes if probe.ensure(feats[0], 5) else 0
        store = PersistentStore(tmp_path / "s", max_bytes=int(2.5 * size))
        refs = []
        for i, f in enumerate(feats):
            refs.append(store.ensure(f, 5))
            os.utime(refs[-1].path / "meta.json", (1000 + i, 1000 + i))
            if i == 1:
                store.release(refs[0])
        # refs[0] was released: it is the only one this process let go of -> evicted.
        assert store.stats["evictions"] == 1
        assert entry_dirs(store.root) == sorted(r.fingerprint for r in refs[1:])
        # Release everything: evict() now honours the budget, oldest first.
        for r in refs:
            store.release(r)
        evicted = store.evict()
        assert evicted == [refs[1].fingerprint]
        assert store.total_bytes() <= store.max_bytes  # type: ignore[operator]
        with pytest.raises(EntryNotFoundError):
            refs[1].load()

    def test_eviction_never_removes_what_was_just_written(
        self, tmp_path: Path, X: np.ndarray
    ) -> None:
        store = PersistentStore(tmp_path / "s", max_bytes=1)
        ref = store.ensure(X, 5)
        assert entry_dirs(store.root) == [ref.fingerprint]
        store.release(ref)
        assert store.evict() == [ref.fingerprint]

    def test_eviction_skips_entries_loaded_by_this_process(
        self, tmp_path: Path, X: np.ndarray
    ) -> None:
        ref = PersistentStore(tmp_path / "s").ensure(X, 5)
        other = PersistentStore(tmp_path / "s")
        other.release(ref)
        ref.load()  # loading pins it again
        assert other.evict(0) == []
        other.release(ref)
        assert other.evict(0) == [ref.fingerprint]

    def test_lock_timeout(self, tmp_path: Path, X: np.ndarray) -> None:
        store = PersistentStore(tmp_path / "s", lock_timeout=0.2)
        store.root.mkdir()
        lock = filelock.FileLock(str(store.root / f"{fingerprint(X)}.lock"))
        with lock, pytest.raises(knncache.LockTimeoutError) as info:
            store.ensure(X, 3)
        assert info.value.timeout == 0.2 and isinstance(info.value, TimeoutError)

    def test_verify_ignores_foreign_files_and_lock_files(
        self, tmp_path: Path, X: np.ndarray
    ) -> None:
        store = PersistentStore(tmp_path / "s")
        store.ensure(X, 3)
        (store.root / "README").write_text("hi")
        (store.root / "not-an-entry").mkdir()
        assert store.verify() == [] and len(store.entries()) == 1


class TestEphemeralStore(StoreContract):
    expected_persistent = False

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[MakeStore]:
        stores: list[KnnStore] = []

        def make(**kwargs: Any) -> KnnStore:
            store = EphemeralStore(dir=tmp_path, **kwargs)
            stores.append(store)
            return store

        yield make
        for s in stores:
            s.close()
        assert not any(s.root.exists() for s in stores)

    def test_private_dir_named_with_pid(self, tmp_path: Path) -> None:
        with EphemeralStore(dir=tmp_path, prefix="abc_") as store:
            assert store.root.parent == tmp_path
            assert store.root.name.startswith(f"abc_pid{os.getpid()}_")
            assert (store.root.stat().st_mode & 0o777) == 0o700

    def test_not_picklable(self, tmp_path: Path) -> None:
        with EphemeralStore(dir=tmp_path) as store, pytest.raises(TypeError, match="KnnRef"):
            pickle.dumps(store)

    def test_removed_after_normal_exit(self, tmp_path: Path, X: np.ndarray) -> None:
        with EphemeralStore(dir=tmp_path) as store:
            ref = store.ensure(X, 3)
        assert not store.root.exists() and os.listdir(tmp_path) == []
        with pytest.raises(StoreClosedError):
            ref.load()
        with pytest.raises(StoreClosedError):
            ref.features()
        with pytest.raises(StoreClosedError):
            store.ensure(X, 3)

    @pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
    def test_removed_after_exception(
        self, tmp_path: Path, X: np.ndarray, exc: type[BaseException]
    ) -> None:
        with pytest.raises(exc), EphemeralStore(dir=tmp_path) as store:
            store.ensure(X, 3)
            raise exc()
        assert os.listdir(tmp_path) == []

    def test_removed_at_garbage_collection(self, tmp_path: Path, X: np.ndarray) -> None:
        import gc

        store = EphemeralStore(dir=tmp_path)
        ref = store.ensure(X, 3)
        del store
        gc.collect()
        assert os.listdir(tmp_path) == []
        with pytest.raises(StoreClosedError):
            ref.load()

    def test_ref_into_vanished_root_is_store_closed(self, tmp_path: Path, X: np.ndarray) -> None:
        # What a worker process sees: it never saw the close, only the missing directory.
        import shutil

        store = EphemeralStore(dir=tmp_path)
        ref = store.ensure(X, 3)
        shutil.rmtree(store.root)
        with pytest.raises(StoreClosedError):
            ref.load()
        store.close()
