"""Numerical validity, pins, lock-free arrays, temp stores across PID namespaces, read-only
stores, file modes and maps of closed stores: real processes, mounts and files."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import knncache
from knncache import (
    CorruptEntryError,
    EphemeralStore,
    InvalidFeaturesError,
    KnnCacheWarning,
    PersistentStore,
    StoreWriteError,
    compute_knn,
    fingerprint,
)
from knncache.cli import main as cli_main
from tests.knncache import kc_workers
from tests.knncache.kc_reference import array_names, snapshot

SPAWN = multiprocessing.get_context("spawn")
F32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------- numerical validity
def _reference(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force in float64 after an exact power-of-two rescale (no overflow)."""
    x = np.asarray(X, dtype=np.float64)
    _, e = np.frexp(np.max(np.abs(x)))
    xs = np.ldexp(x, -int(e))
    d = np.sqrt(((xs[:, None, :] - xs[None, :, :]) ** 2).sum(-1))
    with np.errstate(over="ignore"):
        d = np.ldexp(d, int(e))
    np.fill_diagonal(d, np.inf)
    with np.errstate(over="ignore"):
        d32 = d.astype(np.float32)
    n = len(x)
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), d32), axis=-1)[:, :k]
    return order, np.take_along_axis(d32, order, axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e19, 1e30, 1e36, 0.25, 0.5])
def test_overflowing_features_exact_or_named(dtype: type, scale: float) -> None:
    rng = np.random.default_rng(5)
    fmax = float(np.finfo(dtype).max)
    s = scale if scale > 1 else fmax * scale  # fractions of the dtype's maximum
    X = (rng.uniform(-1, 1, (80, 6)) * s).astype(dtype)
    assert np.isfinite(X).all()
    nb_ref, ds_ref = _reference(X, 5)
    bad_rows = np.flatnonzero(~np.isfinite(ds_ref).all(axis=1))
    if bad_rows.size:
        with pytest.raises(InvalidFeaturesError) as info:
            compute_knn(X, 5)
        assert info.value.reason == "overflow" and info.value.row == bad_rows[0]
        assert f"row {bad_rows[0]}" in str(info.value)
    else:
        g = compute_knn(X, 5)
        assert np.array_equal(g.neighbors, nb_ref)
        assert g.distances.tobytes() == ds_ref.tobytes()
        assert (g.neighbors >= 0).all() and np.isfinite(g.distances).all()


def test_overflow_refused_before_any_write(tmp_path: Path) -> None:
    X = np.array([[F32_MAX, 0.0], [-F32_MAX, 0.0]], dtype=np.float32)  # 2 * max: inf
    store = PersistentStore(tmp_path / "s")
    with pytest.raises(InvalidFeaturesError, match="row 0"):
        store.ensure(X, 1)
    # Refused before anything was written: at most the (empty) lock file exists.
    assert [p for p, size in snapshot(store.root) if not p.endswith(".lock")] == []
    assert store.entries() == [] and store.stats["misses"] == 1


def test_cosine_of_huge_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((50, 4)) * 1e300
    Y = X / 1e300
    assert np.array_equal(
        compute_knn(X, 4, "cosine").neighbors, compute_knn(Y, 4, "cosine").neighbors
    )


@pytest.mark.parametrize("bad", ["neg_index", "big_index", "nan", "inf"])
def test_verify_flags_an_invalid_graph_written_by_hand(
    tmp_path: Path, X: np.ndarray, bad: str
) -> None:
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 5)
    entry = ref.path
    nb, ds = np.load(entry / "k5_neighbors.npy"), np.load(entry / "k5_distances.npy")
    if bad == "neg_index":
        nb[7, 2] = -1
    elif bad == "big_index":
        nb[7, 2] = 60
    else:
        ds[7, 2] = np.nan if bad == "nan" else np.inf
    meta = json.loads((entry / "meta.json").read_text())
    for name, arr in (("k5_neighbors.npy", nb), ("k5_distances.npy", ds)):
        np.save(entry / name, arr)
        data = (entry / name).read_bytes()
        import xxhash

        meta["files"][name]["xxh3_128"] = xxhash.xxh3_128(data).hexdigest()
        meta["files"][name]["bytes"] = len(data)
    (entry / "meta.json").write_text(json.dumps(meta))  # checksums agree: only values are bad
    [problem] = store.verify()
    assert problem.fingerprint == ref.fingerprint and "row 7" in problem.reason
    with pytest.warns(KnnCacheWarning):
        assert store.get(ref.fingerprint) is None
    with pytest.warns(KnnCacheWarning, match="row 7"):
        ref2 = store.ensure(X, 5)  # never served: rebuilt
    assert np.array_equal(ref2.load().neighbors, compute_knn(X, 5).neighbors)


# ---------------------------------------------------------------------- pins
@pytest.mark.slow
@pytest.mark.parametrize("how", ["clear", "gc"])
def test_clear_and_gc_skip_an_entry_pinned_by_another_process(
    tmp_path: Path, X: np.ndarray, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    ref = PersistentStore(root).ensure(X, 5)
    other = PersistentStore(root).ensure(X * 3, 5)
    for r in (ref, other):  # this process lets go: only the other process's pin protects
        PersistentStore(root).release(r)
    ready, go, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    p = SPAWN.Process(
        target=kc_workers.pin_and_read, args=(str(root), ref.fingerprint, ready, go, out)
    )
    p.start()
    try:
        assert ready.wait(timeout=120)
        argv = ["clear", str(root)] if how == "clear" else ["gc", str(root), "--max-bytes", "0"]
        capsys.readouterr()
        assert cli_main([*argv, "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["pinned"] == [ref.fingerprint]
        removed = payload["removed" if how == "clear" else "evicted"]
        assert removed == [other.fingerprint]
        with pytest.warns(KnnCacheWarning, match="pinned"):
            assert PersistentStore(root).clear() == []
        go.set()
        nb_sum, ds_sum, arr_sum = out.get(timeout=120)
    finally:
        go.set()
        p.join(timeout=60)
    assert p.exitcode == 0
    g = compute_knn(X, 5)
    assert nb_sum == int(g.neighbors.sum()) and ds_sum == float(g.distances.sum())
    assert arr_sum == float(np.asarray(X).sum(axis=1).sum())
    # The pin died with the process: now the entry goes, and its lock and pin files too.
    assert PersistentStore(root).clear() == [ref.fingerprint]
    assert sorted(os.listdir(root)) == []


def test_pins_nest_and_end(tmp_path: Path, X: np.ndarray) -> None:
    store = PersistentStore(tmp_path / "s")
    fp = fingerprint(X)
    with store.pin(fp):  # before the entry exists
        ref = store.ensure(X, 5)
        with store.pin(ref), store.pin(ref), pytest.warns(KnnCacheWarning, match="pinned"):
            assert store.clear() == []
        with pytest.warns(KnnCacheWarning, match="pinned"):
            assert store.evict(0) == []
        store.ensure_array(ref, "pd", lambda f: np.asarray(f) * 2)
    assert store.clear() == [ref.fingerprint]
    assert os.listdir(store.root) == []  # lock and pin files of the absent entry removed


def test_lock_files_of_absent_entries_are_housekept(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    store = PersistentStore(tmp_path / "s", max_bytes=1)
    for _ in range(6):  # every ensure evicts the previous entry (max_bytes=1)
        ref = store.ensure(rng.standard_normal((20, 3)).astype(np.float32), 3)
        store.release(ref)
    locks = [n for n in os.listdir(store.root) if n.endswith((".lock", ".pin"))]
    assert len(locks) <= 1
    store.clear()
    assert os.listdir(store.root) == []


# ---------------------------------------------------------------------- lock="none" arrays
@pytest.mark.slow
def test_four_lock_free_writers_of_different_arrays(tmp_path: Path) -> None:
    X = np.random.default_rng(9).standard_normal((300, 6)).astype(np.float32)
    x_path = tmp_path / "x.npy"
    np.save(x_path, X)
    root = tmp_path / "s"
    PersistentStore(root, lock="none").ensure(X, 5)
    names = ["a", "bb", "ccc", "dddd"]
    barrier, out = SPAWN.Barrier(4), SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=kc_workers.ensure_array_none, args=(str(root), str(x_path), n, barrier, out)
        )
        for n in names
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(stats["array_computes"] == 1 for _, stats in results)
    fp = fingerprint(X)
    assert array_names(root, fp) == set(names)
    store = PersistentStore(root, lock="none")
    ref = store.get(fp)
    assert ref is not None
    for n in names:
        assert np.array_equal(ref.array(n), X.astype(np.float64) * len(n))
    assert store.verify() == []
    assert set(store.entries()[0].arrays) == set(names)


# ---------------------------------------------------------------------- gc --temp
def test_gc_temp_from_a_child_in_a_new_pid_namespace(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not available")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {probe.stderr.decode().strip()}")
    code = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from knncache import EphemeralStore
        s = EphemeralStore(dir={str(tmp_path)!r})
        s.ensure(np.eye(5, dtype=np.float32), 2)
        print(s.root, flush=True)
        time.sleep(600)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        root = Path(proc.stdout.readline().strip())
        owner = json.loads((root / ".knncache-owner.json").read_text())
        assert owner["pidns"] != os.readlink("/proc/self/ns/pid")
        # Live, in another PID namespace: its pid means nothing here; kept.
        assert cli_main(["gc", "--temp", "--dir", str(tmp_path)]) == 0
        assert root.exists()
        proc.kill()
        proc.wait(timeout=30)
    # Dead now, but this namespace cannot prove it: still kept without --older-than.
    assert cli_main(["gc", "--temp", "--dir", str(tmp_path)]) == 0
    assert root.exists()
    assert cli_main(["gc", "--temp", "--dir", str(tmp_path), "--older-than", "3600"]) == 0
    assert root.exists()
    assert cli_main(["gc", "--temp", "--dir", str(tmp_path), "--older-than", "0"]) == 0
    assert not root.exists()


# ---------------------------------------------------------------------- read-only stores
_RO_CHECK = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from knncache import PersistentStore, StoreWriteError
    root, x_path = sys.argv[1], sys.argv[2]
    X = np.load(x_path)
    before = sorted(os.listdir(root)) + sorted(os.listdir(os.path.join(root, os.listdir(root)[0])))
    for store in (PersistentStore(root), PersistentStore(root, read_only=True)):
        assert store.read_only
        ref = store.ensure(X, 5)
        store.ensure_array(ref, "pd", lambda f: 1 / 0)  # a hit: never computed
        with store.pin(ref):
            nb, ds = ref.load()
            pd = ref.array("pd")
        try:
            store.ensure(X, 7)
        except StoreWriteError as exc:
            assert "read-only" in str(exc), exc
        else:
            raise AssertionError("a miss must raise StoreWriteError")
        try:
            store.ensure_array(ref, "other", lambda f: f)
        except StoreWriteError as exc:
            assert "read-only" in str(exc), exc
        else:
            raise AssertionError("an array miss must raise StoreWriteError")
        assert store.stats["hits"] == 1 and store.stats["array_hits"] == 1, store.stats
        assert store.stats["searches"] == 0
    after = sorted(os.listdir(root)) + sorted(os.listdir(os.path.join(root, os.listdir(root)[0])))
    assert before == after, (before, after)
    print(json.dumps({"nb": int(nb.sum()), "pd": float(pd.sum())}))
    """
)


def test_read_only_store_serves_warm_hits_and_creates_nothing(
    tmp_path: Path, X: np.ndarray
) -> None:
    src = tmp_path / "warm"
    store = PersistentStore(src)
    ref = store.ensure(X, 5)
    store.ensure_array(ref, "pd", lambda f: np.asarray(f, dtype=np.float64) * 2)
    for name in os.listdir(src):  # a warm store without any lock or pin file
        if name.endswith((".lock", ".pin")):
            os.unlink(src / name)
    x_path = tmp_path / "x.npy"
    np.save(x_path, X)
    script = tmp_path / "check.py"
    script.write_text(_RO_CHECK)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or shutil.which("mount") is None:
            pytest.skip("a read-only bind mount needs unshare(1) and mount(8)")
        ro = tmp_path / "ro"
        ro.mkdir()
        cmd = (
            f"mount --bind {src} {ro} && mount -o remount,ro,bind {ro} && "
            f"{sys.executable} {script} {ro} {x_path}"
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd]
    else:
        for dirpath, _, _ in os.walk(src):
            os.chmod(dirpath, 0o555)
        argv = [sys.executable, str(script), str(src), str(x_path)]
    before = snapshot(src)
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if os.geteuid() != 0:
        for dirpath, _, _ in os.walk(src):
            os.chmod(dirpath, 0o755)
    if proc.returncode != 0 and "mount" in proc.stderr and "permission" in proc.stderr.lower():
        pytest.skip(f"cannot mount here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["nb"] == int(compute_knn(X, 5).neighbors.sum())
    assert got["pd"] == float((X.astype(np.float64) * 2).sum())
    assert snapshot(src) == before


# ---------------------------------------------------------------------- file modes
def _modes(root: Path) -> dict[str, tuple[int, bool]]:
    """``{relative path: (permission bits, is a directory)}`` of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            out[rel] = (stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))
    return out


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_file_modes_follow_the_umask(tmp_path: Path, X: np.ndarray, umask: int) -> None:
    from ssddbc.data import write_superclass
    from ssddbc.data.synthetic import make_synthetic_superclass

    old = os.umask(umask)
    try:
        store = PersistentStore(tmp_path / "s", lock="hard")
        ref = store.ensure(X, 5)
        store.ensure_array(ref, "pd", lambda f: np.asarray(f) * 2)
        with store.pin(ref):
            pass
        soft = PersistentStore(tmp_path / "soft", lock="soft")
        soft.ensure(X, 3)
        with soft._lock(fingerprint(X * 2)):  # the soft-lock marker while it is held
            marker = soft.root / f"{fingerprint(X * 2)}.softlock"
            marker_mode = stat.S_IMODE(os.stat(marker).st_mode)
        (tmp_path / "eph_parent").mkdir()
        eph = EphemeralStore(dir=tmp_path / "eph_parent")
        eref = eph.ensure(X, 4)
        eph.ensure_array(eref, "pd", lambda f: np.asarray(f) * 2)
        eph_modes = _modes(eph.root)
        eph_root_mode = stat.S_IMODE(os.stat(eph.root).st_mode)
        eph.close()
        digest, _ = knncache.atomic_write(tmp_path / "plain.bin", lambda f: f.write(b"abc"))
        path = write_superclass(tmp_path / "fc", make_synthetic_superclass())
    finally:
        os.umask(old)
    files = 0o666 & ~umask
    dirs = 0o777 & ~umask
    modes = {**_modes(tmp_path / "s"), **_modes(tmp_path / "soft")}
    assert any(p.endswith(".lock") for p in modes) and any(p.endswith(".pin") for p in modes)
    for name, (mode, is_dir) in modes.items():
        assert mode == (dirs if is_dir else files), (name, oct(mode))
    assert marker_mode == files
    assert eph_root_mode == 0o700  # private by design, whatever the umask
    assert ".knncache-owner.json" in eph_modes
    for name, (mode, is_dir) in eph_modes.items():
        assert mode == (dirs if is_dir else files), (name, oct(mode))
    assert stat.S_IMODE(os.stat(tmp_path / "plain.bin").st_mode) == files
    assert stat.S_IMODE(os.stat(path).st_mode) == files
    assert len(digest) == 32


def test_atomic_write_removes_its_temp_on_keyboard_interrupt(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")

    def boom(f: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        knncache.atomic_write(tmp_path / "a", boom)
    assert os.listdir(tmp_path) == ["a"] and (tmp_path / "a").read_bytes() == b"old"


# ---------------------------------------------------------------------- maps of closed stores
def _mapped_under(root: Path) -> list[str]:
    with open("/proc/self/maps") as f:
        return [line for line in f if str(root) in line]


def test_no_map_of_a_closed_ephemeral_store(tmp_path: Path, X: np.ndarray) -> None:
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no /proc/self/maps")
    dropped: list[str] = []
    cache: dict[str, object] = {}
    with EphemeralStore(dir=tmp_path) as store:
        ref = store.ensure(X, 5)
        store.ensure_array(ref, "pd", lambda f: np.asarray(f) * 2)
        store.ensure_array(ref, "view", lambda f: f[:, :2])  # a view of the features map
        assert store.get(ref.fingerprint) == ref and store.verify() == []
        store.ensure(X, 5)  # a hit: checksums and values read through maps
        gc.collect()
        assert _mapped_under(store.root) == []  # knncache itself keeps no map
        cache["graph"] = ref.load()  # a per-process cache of maps, dropped by the hook
        cache["array"] = ref.array("pd")
        cache["features"] = ref.features()
        store.add_close_callback(lambda s: (cache.clear(), dropped.append(str(s.root))))
        assert _mapped_under(store.root)
        root = store.root
    gc.collect()
    assert dropped == [str(root)]
    assert _mapped_under(root) == []
    late: list[bool] = []
    store.add_close_callback(lambda s: late.append(s.closed))
    assert late == [True]


def test_corrupt_graph_is_never_served_by_load_of_foreign_file(
    tmp_path: Path, X: np.ndarray
) -> None:
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 5)
    target = tmp_path / "elsewhere.npy"
    shutil.copy(ref.path / "k5_neighbors.npy", target)
    (ref.path / "k5_neighbors.npy").unlink()
    (ref.path / "k5_neighbors.npy").symlink_to(target)
    with pytest.raises(CorruptEntryError, match="symbolic link"):
        ref.load()
    assert StoreWriteError  # the public name stays importable


# ---------------------------------------------------------------------- older format
def test_entries_of_format_1_are_misses_not_errors(tmp_path: Path, X: np.ndarray) -> None:
    store = PersistentStore(tmp_path / "s")
    ref = store.ensure(X, 5)
    old_fp = "0" * 32  # what a format-1 key looks like on disk: another directory
    old = store.root / old_fp
    shutil.copytree(ref.path, old)
    meta = json.loads((old / "meta.json").read_text())
    meta.update(format_version=1, fingerprint=old_fp, arrays={})
    (old / "meta.json").write_text(json.dumps(meta))
    assert store.verify() == []  # not corrupt
    assert [e.fingerprint for e in store.entries()] == [ref.fingerprint]
    assert store.get(old_fp) is None  # a miss, without a warning (filterwarnings=error)
    shutil.copytree(old, store.root / ("1" * 32))
    json_path = store.root / ("1" * 32) / "meta.json"
    json_path.write_text(json_path.read_text().replace(old_fp, "1" * 32))
    assert store.evict(1 << 40) == [old_fp, "1" * 32]  # unreachable: evicted first
    assert store.entries()[0].fingerprint == ref.fingerprint
    shutil.copytree(ref.path, old)
    (old / "meta.json").write_text(json.dumps(meta))
    assert sorted(store.clear()) == sorted([ref.fingerprint, old_fp])
    assert os.listdir(store.root) == []
