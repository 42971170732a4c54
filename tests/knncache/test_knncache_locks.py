"""Lock modes of ``PersistentStore``: "hard" (fcntl/flock), "soft" (marker files), "none".

The race tests use real processes (spawn). ``lock="none"`` is there to prove that correctness
does not depend on the lock: racing writers must leave one valid entry and every process must
get the right graph; the lock only saves duplicate searches.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import knncache
from knncache import (
    KnnStore,
    LockTimeoutError,
    PersistentStore,
    compute_knn,
    fingerprint,
)
from knncache._locks import read_marker
from knncache._locks import remove_if_token as _remove_if_token
from knncache.cli import main as cli_main
from tests.knncache import kc_workers
from tests.knncache import test_knncache_store_contract as contract
from tests.knncache.kc_reference import entry_dirs, read_meta

SPAWN = multiprocessing.get_context("spawn")
MODES = ("hard", "soft", "none")


@pytest.fixture
def features_file(tmp_path: Path) -> tuple[np.ndarray, str]:
    X = np.random.default_rng(11).standard_normal((1500, 24)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, str(path)


def _markers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".softlock" in p.name)


def _proc_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _write_marker(
    root: Path, fp: str, *, host: str, pid: int, acquired: float, local: bool = False
) -> Path:
    """A marker written by hand in the documented format (one JSON object, one line)."""
    record: dict[str, Any] = {
        "format": "knncache-softlock/1",
        "host": host,
        "pid": pid,
        "acquired": acquired,
        "token": secrets.token_hex(16),
    }
    if local:
        record["boot_id"] = _proc_text("/proc/sys/kernel/random/boot_id")
        try:
            record["pidns"] = os.stat("/proc/self/ns/pid").st_ino
        except OSError:
            record["pidns"] = None
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{fp}.softlock"
    path.write_text(json.dumps(record) + "\n")
    return path


def _age(entry: Path, seconds: float = 100_000) -> None:
    """Backdate every file of an entry (beyond the lock-free sweep's grace period)."""
    then = time.time() - seconds
    for child in entry.iterdir():
        os.utime(child, (then, then))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def _same_graph(ref: knncache.KnnRef, X: np.ndarray, k: int) -> None:
    g = compute_knn(X, k)
    nb, ds = ref.load(k)
    assert np.array_equal(nb, g.neighbors) and ds.tobytes() == g.distances.tobytes()


# ---------------------------------------------------------------------- every mode
@pytest.mark.parametrize("lock", MODES)
def test_ensure_hit_load_in_every_mode(tmp_path: Path, X: np.ndarray, lock: str) -> None:
    store = PersistentStore(tmp_path / "s", lock=lock)
    assert store.lock == lock and store.lock_timeout == 600.0
    ref = store.ensure(X, 5)
    assert store.stats["misses"] == 1 and store.stats["searches"] == 1
    assert store.ensure(X, 3) == ref and store.stats["hits"] == 1
    _same_graph(ref, X, 3)
    ref8 = store.ensure(X, 8)
    assert ref8.k == 8 and store.stats["searches"] == 2
    _same_graph(ref8, X, 5)
    assert store.get(ref.fingerprint) == ref8
    assert store.verify() == [] and [e.k for e in store.entries()] == [8]
    assert _markers(store.root) == []  # a soft lock leaves no marker behind
    assert store.clear() == [ref.fingerprint] and entry_dirs(store.root) == []


def test_unknown_lock_mode_is_refused(tmp_path: Path) -> None:
    for bad in ("flock", "", None, True):
        with pytest.raises(ValueError, match="lock must be one of"):
            PersistentStore(tmp_path, lock=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lock_timeout"):
        PersistentStore(tmp_path, lock_timeout=-1)


class _ModeContract(contract.TestPersistentStore):
    """The whole store contract again, with another lock mode."""

    lock_mode: str

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[contract.MakeStore]:
        stores: list[KnnStore] = []

        def make(**kwargs: Any) -> KnnStore:
            kwargs.setdefault("lock", self.lock_mode)
            store = PersistentStore(tmp_path / f"store{len(stores)}", **kwargs)
            stores.append(store)
            return store

        yield make
        for s in stores:
            s.close()

    # Holds a hard (flock) lock by hand, so it does not apply here; the soft equivalent is
    # tested below. Setting the inherited test to None removes it from collection.
    test_clear_skips_an_entry_being_written = None  # type: ignore[assignment]

    def test_threads_compute_once(self, store: KnnStore, X: np.ndarray) -> None:
        if store.lock != "none":
            super().test_threads_compute_once(store, X)
            return
        # No lock, no "once": racing threads may each search, but all get the same entry.
        refs = contract.ensure_in_threads(store, X, 6)
        assert len(refs) == 4 and len(set(refs)) == 1
        assert 1 <= store.stats["searches"] <= 4
        assert store.verify() == []

    @pytest.mark.parametrize("corrupt", contract.CORRUPTIONS, ids=lambda f: f.__name__)
    def test_corruption_is_reported_and_rebuilt(
        self, store: KnnStore, X: np.ndarray, corrupt: Any
    ) -> None:
        # Without an exclusive lock, files without a meta that are younger than the grace
        # period may be a racing writer's: only older ones count as corrupt.
        def corrupt_and_age(entry: Path, meta: dict[str, Any]) -> None:
            corrupt(entry, meta)
            if not (entry / "meta.json").exists():
                _age(entry)

        super().test_corruption_is_reported_and_rebuilt(store, X, corrupt_and_age)

    def test_young_uncommitted_files_are_a_writer_in_flight(
        self, store: KnnStore, X: np.ndarray
    ) -> None:
        ref = store.ensure(X, 6)
        (ref.path / "meta.json").unlink()  # as seen while a racing writer is mid-write
        assert store.verify() == [] and store.get(ref.fingerprint) is None  # no warning
        assert store.ensure(X, 6) == ref and store.stats["corrupt_rebuilds"] == 0
        assert store.verify() == []

    def test_larger_k_replaces_entry_without_disturbing_readers(
        self, store: KnnStore, X: np.ndarray
    ) -> None:
        # Without an exclusive lock the superseded k-files are not unlinked at once (a racing
        # writer may be about to commit a meta naming them): a later write of the entry
        # removes them once they are older than the grace period.
        old_ref = store.ensure(X, 4)
        old_nb, _ = old_ref.load()
        old_copy = np.array(old_nb)
        new_ref = store.ensure(X, 11)
        assert new_ref.k == 11 and store.stats["searches"] == 2
        assert np.array_equal(old_nb, old_copy)
        assert np.array_equal(old_ref.load().neighbors, old_copy)
        assert np.array_equal(new_ref.load(4).neighbors, old_copy)
        names = sorted(os.listdir(new_ref.path))
        assert {"k4_neighbors.npy", "k11_neighbors.npy"} <= set(names)
        assert store.verify() == []
        _age(new_ref.path)
        store.ensure_array(new_ref, "pd", contract.pdist)  # a write: sweeps the entry
        names = sorted(os.listdir(new_ref.path))
        assert "k4_neighbors.npy" not in names and "k4_distances.npy" not in names
        assert "k11_neighbors.npy" in names  # old, but named by the meta
        assert store.verify() == []


class TestSoftLockContract(_ModeContract):
    lock_mode = "soft"


class TestNoLockContract(_ModeContract):
    lock_mode = "none"


def test_soft_clear_skips_an_entry_being_written(tmp_path: Path, X: np.ndarray) -> None:
    store = PersistentStore(tmp_path / "s", lock="soft")
    ref = store.ensure(X, 5)
    with store._lock(ref.fingerprint):  # held by this (live) process
        assert store.clear() == []
        assert _markers(store.root) == [f"{ref.fingerprint}.softlock"]
    assert store.clear() == [ref.fingerprint]


# ---------------------------------------------------------------------- lock="none"
def _race(root: str, x_path: str, ks: list[int], lock: str) -> list[Any]:
    barrier = SPAWN.Barrier(len(ks))
    out = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=kc_workers.race_ensure_mode, args=(root, x_path, k, lock, barrier, out)
        )
        for k in ks
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.mark.slow
def test_none_four_processes_same_moment(
    tmp_path: Path, features_file: tuple[np.ndarray, str], record_property: Any
) -> None:
    X, x_path = features_file
    root = tmp_path / "store"
    results = _race(str(root), x_path, [12] * 4, "none")
    searches = sum(r[1]["searches"] for r in results)
    record_property("searches", searches)
    print(f"lock='none', 4 processes at the same moment: {searches} searches")
    assert 1 <= searches <= 4
    assert len({r[2] for r in results}) == 1  # identical arrays everywhere
    assert len({r[3] for r in results}) == 1
    _same_graph(results[0][3], X, 12)
    store = PersistentStore(root, lock="none")
    assert store.verify() == []
    assert entry_dirs(root) == [fingerprint(X)] and read_meta(root, fingerprint(X))["k"] == 12
    assert store.ensure(X, 12) == results[0][3] and store.stats["searches"] == 0
    assert cli_main(["verify", str(root)]) == 0


@pytest.mark.slow
def test_none_k20_races_k30(tmp_path: Path, features_file: tuple[np.ndarray, str]) -> None:
    X, x_path = features_file
    root = tmp_path / "store"
    results = _race(str(root), x_path, [20, 30, 20, 30], "none")
    assert sorted(r[4] for r in results) == [20, 20, 30, 30]
    # Every process got the right graph at the k it asked for (in a valid entry).
    by_k = {20: compute_knn(X, 20), 30: compute_knn(X, 30)}
    for _pid, _stats, _digest, ref, k in results:
        assert ref.k in (20, 30) and ref.k >= k
        nb, ds = ref.load(k)
        assert np.array_equal(nb, by_k[k].neighbors)
        assert ds.tobytes() == by_k[k].distances.tobytes()
    store = PersistentStore(root, lock="none")
    assert store.verify() == []
    meta = read_meta(root, fingerprint(X))
    assert meta["k"] in (20, 30)
    final = store.get(fingerprint(X))
    assert final is not None and final.k == meta["k"]
    _same_graph(final, X, 20)
    assert store.ensure(X, 30).k == 30
    _same_graph(store.ensure(X, 30), X, 30)


@pytest.mark.parametrize("first", ["k20", "k30"])
def test_none_interleaved_commits_never_unlink_committed_files(
    tmp_path: Path, X: np.ndarray, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Deterministic interleaving: writer B commits while A sits between its files and meta.

    Both start from a committed k=4 entry, so both would sweep and unlink "superseded"
    files; without an exclusive lock neither may unlink what the other's meta names.
    """
    root = tmp_path / "s"
    a = PersistentStore(root, lock="none")
    b = PersistentStore(root, lock="none")
    a.ensure(X, 4)
    k_a, k_b = (20, 30) if first == "k20" else (30, 20)
    real_write_meta = KnnStore._write_meta
    state = {"interleaved": False}

    def write_meta(self: KnnStore, dfd: int, meta: dict[str, Any]) -> None:
        if self is a and not state["interleaved"]:
            state["interleaved"] = True
            b.ensure(X, k_b)  # B: inspect (sees k=4), search, sweep, write, commit
            assert b.verify() == []
        real_write_meta(self, dfd, meta)

    monkeypatch.setattr(KnnStore, "_write_meta", write_meta)
    ref_a = a.ensure(X, k_a)
    assert state["interleaved"]
    monkeypatch.undo()
    assert a.verify() == []
    ref = a.get(ref_a.fingerprint)
    assert ref is not None and ref.k in (20, 30)
    _same_graph(ref, X, 20)
    _same_graph(ref_a, X, k_a)


# ---------------------------------------------------------------------- lock="soft"
@pytest.mark.slow
def test_soft_four_processes_one_search(
    tmp_path: Path, features_file: tuple[np.ndarray, str]
) -> None:
    X, x_path = features_file
    root = tmp_path / "store"
    results = _race(str(root), x_path, [12] * 4, "soft")
    assert sum(r[1]["searches"] for r in results) == 1
    assert sum(r[1]["hits"] for r in results) == 3
    assert len({r[2] for r in results}) == 1
    _same_graph(results[0][3], X, 12)
    assert _markers(root) == []
    assert PersistentStore(root, lock="soft").verify() == []


def test_soft_stale_marker_of_a_dead_local_pid_is_broken(tmp_path: Path, X: np.ndarray) -> None:
    root = tmp_path / "s"
    pid = _dead_pid()
    marker = _write_marker(
        root, fingerprint(X), host=socket.gethostname(), pid=pid, acquired=time.time(), local=True
    )
    store = PersistentStore(root, lock="soft", lock_timeout=60)
    t0 = time.monotonic()
    ref = store.ensure(X, 5)
    assert time.monotonic() - t0 < 10  # broken at once, not after the 60 s timeout
    _same_graph(ref, X, 5)
    assert not marker.exists() and _markers(root) == []


@pytest.mark.slow
def test_soft_sigkilled_holder_then_gc_and_ensure(tmp_path: Path, X: np.ndarray) -> None:
    root = tmp_path / "s"
    fp = fingerprint(X)
    ready = SPAWN.Event()
    p = SPAWN.Process(target=kc_workers.hold_soft_lock, args=(str(root), fp, ready))
    p.start()
    try:
        assert ready.wait(timeout=60)
        store = PersistentStore(root, lock="soft", lock_timeout=0.3)
        # A live holder on this host: waited for, never broken, named in the error.
        with pytest.raises(LockTimeoutError) as info:
            store.ensure(X, 5)
        assert info.value.holder_pid == p.pid
        assert info.value.holder_host == socket.gethostname()
        assert cli_main(["gc", str(root), "--break-locks", "--older-than", "0"]) == 0
        assert _markers(root) == [f"{fp}.softlock"]  # alive on this host: kept
    finally:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL
    held = read_marker(root / f"{fp}.softlock")
    assert held is not None and held.pid == p.pid and held.holder_is_dead()
    ref = PersistentStore(root, lock="soft", lock_timeout=60).ensure(X, 5)
    _same_graph(ref, X, 5)
    assert _markers(root) == []


@pytest.mark.slow
def test_soft_writer_sigkilled_mid_write(
    tmp_path: Path, features_file: tuple[np.ndarray, str]
) -> None:
    """A holder dies between its files and its meta: the next ensure breaks and completes."""
    X, x_path = features_file
    root = tmp_path / "store"
    ready = SPAWN.Event()
    p = SPAWN.Process(
        target=kc_workers.write_then_hang_before_meta, args=(str(root), x_path, 8, ready, "soft")
    )
    p.start()
    try:
        assert ready.wait(timeout=120)
    finally:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
    fp = fingerprint(X)
    assert _markers(root) == [f"{fp}.softlock"]
    assert "meta.json" not in os.listdir(root / fp)
    store = PersistentStore(root, lock="soft", lock_timeout=60)
    assert store.entries() == [] and store.get(fp) is None  # nothing partial is served
    t0 = time.monotonic()
    ref = store.ensure(X, 8)
    assert time.monotonic() - t0 < 30
    _same_graph(ref, X, 8)
    assert store.verify() == [] and _markers(root) == []


@pytest.mark.parametrize("age", [3600.0, 0.0])
def test_soft_marker_of_another_host(
    tmp_path: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str], age: float
) -> None:
    root = tmp_path / "s"
    fp = fingerprint(X)
    host = "node17.cluster.example"
    _write_marker(root, fp, host=host, pid=4242, acquired=time.time() - age)
    store = PersistentStore(root, lock="soft", lock_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(LockTimeoutError) as info:
        store.ensure(X, 5)
    assert 0.3 <= time.monotonic() - t0 < 10
    err = info.value
    assert isinstance(err, TimeoutError) and isinstance(err, knncache.KnnCacheError)
    assert (err.holder_host, err.holder_pid) == (host, 4242)
    assert err.lock_age is not None and age <= err.lock_age < age + 30
    assert err.timeout == 0.3 and err.path == str(root / f"{fp}.softlock")
    assert host in str(err) and "4242" in str(err) and "--break-locks" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is LockTimeoutError and str(back) == str(err)
    assert (back.holder_host, back.holder_pid, back.lock_age, back.path, back.timeout) == (
        err.holder_host,
        err.holder_pid,
        err.lock_age,
        err.path,
        err.timeout,
    )
    assert store.entries() == [] and store.verify() == []

    # The default threshold is the lock timeout (600 s): only the old marker goes.
    capsys.readouterr()
    assert cli_main(["gc", str(root), "--break-locks", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    if age > 600:
        assert [(m["host"], m["pid"], m["fingerprint"]) for m in payload["broken"]] == [
            (host, 4242, fp)
        ]
        assert payload["broken"][0]["age"] >= age and payload["kept"] == []
        assert _markers(root) == []
    else:
        assert payload["broken"] == [] and [m["pid"] for m in payload["kept"]] == [4242]
        assert cli_main(["gc", str(root), "--break-locks", "--older-than", "0"]) == 0
        out = capsys.readouterr().out
        assert f"broke lock {fp}" in out and host in out and "4242" in out
        assert _markers(root) == []
    ref = store.ensure(X, 5)
    _same_graph(ref, X, 5)


def test_break_locks_api_and_cli_usage(
    tmp_path: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    fp = fingerprint(X)
    _write_marker(root, fp, host="elsewhere", pid=7, acquired=time.time() - 100)
    store = PersistentStore(root, lock="soft", lock_timeout=50)
    assert [m.pid for m in store.break_locks(dry_run=True)] == [7]
    assert _markers(root) == [f"{fp}.softlock"]
    assert store.break_locks(older_than=1000) == []
    (removed,) = store.break_locks()
    assert (removed.host, removed.pid, removed.fingerprint) == ("elsewhere", 7, fp)
    assert _markers(root) == []
    for argv in (
        ["gc", str(root), "--older-than", "5"],
        ["gc", str(root), "--break-locks", "--older-than", "soon"],
        ["gc", str(root), "--break-locks", "--older-than", "-1"],
        ["gc", str(root), "--break-locks", "--max-bytes", "1G"],
        ["gc", "--temp", "--break-locks"],
    ):
        assert cli_main(argv) == 2, argv
        assert capsys.readouterr().err.startswith("knncache: error:")


def test_break_checks_the_token_not_the_inode(tmp_path: Path) -> None:
    """GHSA-fq56-3cx3-fjxp: a live marker recreated on a reused inode number must survive.

    A waiter reads a marker and judges it stale; before it breaks it, the marker is replaced
    by a live one (here: removed and recreated, which on ext4/tmpfs usually reuses the inode
    number). The break must notice from the token and leave the live marker in place.
    """
    root = tmp_path
    fp = "0" * 32
    stale = _write_marker(root, fp, host="h", pid=1, acquired=time.time())
    seen = read_marker(stale)
    assert seen is not None and seen.token is not None
    ino = stale.stat().st_ino
    stale.unlink()
    live = _write_marker(root, fp, host="h", pid=2, acquired=time.time())
    content = live.read_bytes()
    print(f"inode reused: {live.stat().st_ino == ino}")
    assert _remove_if_token(live, seen.token) is False
    assert live.read_bytes() == content
    assert sorted(p.name for p in root.iterdir()) == [f"{fp}.softlock"]  # nothing left aside
    assert _remove_if_token(live, json.loads(content)["token"]) is True
    assert not live.exists()
