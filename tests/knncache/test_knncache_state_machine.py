"""Rule-based state machines driving the stores against a plain dict model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from knncache import (
    EntryNotFoundError,
    EphemeralStore,
    InvalidKError,
    KnnStore,
    PersistentStore,
    StoreClosedError,
    compute_knn,
    fingerprint,
)
from tests.knncache.kc_reference import array_names, entry_dirs, read_meta

N = 12
_RNG = np.random.default_rng(99)
FEATURES = [_RNG.standard_normal((N, 3)).astype(np.float32) for _ in range(3)]
FEATURES.append(np.repeat(FEATURES[0][:4], 3, axis=0))  # duplicates
METRICS = ["euclidean", "cosine"]
KEYS = {(i, m): fingerprint(FEATURES[i], m) for i in range(len(FEATURES)) for m in METRICS}
EXPECTED = {(i, m): compute_knn(FEATURES[i], N - 1, m) for (i, m) in KEYS}

feature_ids = st.integers(0, len(FEATURES) - 1)
metrics = st.sampled_from(METRICS)
ks = st.integers(1, N - 1)


class StoreMachine(RuleBasedStateMachine):
    """Model: fingerprint -> (stored k, has features, extra arrays); plus what is pinned."""

    persistent = True

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kc_sm_"))
        self.store: KnnStore = self._make()
        self.model: dict[str, dict[str, object]] = {}
        self.refs: dict[str, object] = {}

    def _make(self) -> KnnStore:
        if self.persistent:
            return PersistentStore(self.tmp / "store")
        return EphemeralStore(dir=self.tmp)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(i=feature_ids, metric=metrics, k=ks, store_features=st.booleans())
    def ensure(self, i: int, metric: str, k: int, store_features: bool) -> None:
        fp = KEYS[(i, metric)]
        searches = self.store.stats["searches"]
        ref = self.store.ensure(FEATURES[i], k, metric, store_features=store_features)
        old = self.model.get(fp)
        old_k = int(old["k"]) if old else 0  # type: ignore[call-overload]
        expected_k = max(old_k, k)
        assert ref.k == expected_k
        assert self.store.stats["searches"] == searches + (1 if k > old_k else 0)
        had = bool(old and old["features"])
        self.model[fp] = {
            "k": expected_k,
            "features": had or store_features,
            "arrays": set(old["arrays"]) if old else set(),  # type: ignore[call-overload]
            "key": (i, metric),
        }
        self.refs[fp] = ref

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def load(self, data: st.DataObject) -> None:
        fp = data.draw(st.sampled_from(sorted(self.model)))
        ref = self.store.get(fp)
        assert ref is not None
        k = data.draw(st.integers(1, int(self.model[fp]["k"])))  # type: ignore[call-overload]
        nb, ds = ref.load(k)
        exp = EXPECTED[self.model[fp]["key"]]  # type: ignore[index]
        assert np.array_equal(nb, exp.neighbors[:, :k])
        assert ds.tobytes() == exp.distances[:, :k].tobytes()
        try:
            ref.load(ref.k + 1)
        except InvalidKError:
            pass
        else:
            raise AssertionError("load beyond the stored k must raise")
        # An older ref (smaller k) still loads after replacements.
        old = self.refs[fp]
        nb2, _ = old.load()  # type: ignore[attr-defined]
        assert np.array_equal(nb2, exp.neighbors[:, : old.k])  # type: ignore[attr-defined]

    @precondition(lambda self: any(m["features"] for m in self.model.values()))
    @rule(data=st.data())
    def ensure_array(self, data: st.DataObject) -> None:
        fp = data.draw(st.sampled_from(sorted(f for f, m in self.model.items() if m["features"])))
        name = data.draw(st.sampled_from(["sq", "mean"]))
        ref = self.store.get(fp)
        assert ref is not None
        computes = self.store.stats["array_computes"]
        funcs = {"sq": lambda f: np.asarray(f) ** 2, "mean": lambda f: np.asarray(f).mean(0)}
        self.store.ensure_array(ref, name, funcs[name])
        arrays = self.model[fp]["arrays"]
        assert self.store.stats["array_computes"] == computes + (name not in arrays)  # type: ignore[operator]
        arrays.add(name)  # type: ignore[attr-defined]
        feats = FEATURES[self.model[fp]["key"][0]]  # type: ignore[index]
        np.testing.assert_array_equal(ref.array(name), funcs[name](feats))

    @rule()
    def clear(self) -> None:
        removed = self.store.clear()
        assert sorted(removed) == sorted(self.model)
        for fp, ref in self.refs.items():
            if fp in self.model:
                try:
                    ref.load()  # type: ignore[attr-defined]
                except EntryNotFoundError:
                    pass
                else:
                    raise AssertionError("a cleared entry must not load")
        self.model.clear()

    @invariant()
    def disk_matches_model(self) -> None:
        root = self.store.root
        assert entry_dirs(root) == sorted(self.model)
        for fp, m in self.model.items():
            meta = read_meta(root, fp)
            assert meta["k"] == m["k"]
            assert ("features.npy" in meta["files"]) == m["features"]
            assert array_names(root, fp) == m["arrays"]
        assert {e.fingerprint: e.k for e in self.store.entries()} == {
            fp: m["k"] for fp, m in self.model.items()
        }

    @invariant()
    def nothing_corrupt(self) -> None:
        assert self.store.verify() == []


class PersistentMachine(StoreMachine):
    persistent = True

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def evict(self, data: st.DataObject) -> None:
        """Release a subset, evict to zero: exactly the released entries go."""
        assert isinstance(self.store, PersistentStore)
        released = data.draw(st.sets(st.sampled_from(sorted(self.model))))
        for fp in released:
            self.store.release(fp)
        evicted = self.store.evict(0)
        assert sorted(evicted) == sorted(released)
        for fp in released:
            del self.model[fp]

    @rule()
    def reopen(self) -> None:
        """A new store object on the same root sees the same entries."""
        self.store.close()
        self.store = PersistentStore(self.tmp / "store")


class EphemeralMachine(StoreMachine):
    persistent = False

    def teardown(self) -> None:
        root = self.store.root
        refs = list(self.refs.values())
        super().teardown()
        assert not root.exists()
        for ref in refs:
            try:
                ref.load()  # type: ignore[attr-defined]
            except StoreClosedError:
                pass
            else:
                raise AssertionError("a ref into a closed ephemeral store must not load")


SETTINGS = settings(max_examples=20, stateful_step_count=12, deadline=None)
TestPersistentStoreMachine = SETTINGS(PersistentMachine).TestCase
TestEphemeralStoreMachine = SETTINGS(EphemeralMachine).TestCase
