"""Where the engines (approximate methods, the exact search on an executor) meet the store's
safety rules: overflowing features, the engine fields of ``meta.json`` validated like the
rest of it, and the features shipped to workers (written atomically, held while in use,
cleaned by ``clear``/``gc`` only when orphaned, nothing followed, nothing shipped for a
read-only store). Real files, FIFOs, links and processes."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import (
    ForeignObjectError,
    InvalidFeaturesError,
    KnnCacheWarning,
    PersistentStore,
    StoreWriteError,
    compute_knn,
)
from knncache.cli import main as cli_main
from tests.knncache.kc_reference import snapshot
from tests.knncache.test_knncache_engines import latent_mixture

F32_MAX = float(np.finfo(np.float32).max)
SHIP = ".knncache-ship-" + "ab" * 16 + ".npy"
SHIP_TMP = "." + SHIP + ".0123456789abcdef.tmp"
DAY = 86_400.0


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def _route(route: str, pool: ThreadPoolExecutor, scratch: Path) -> dict[str, Any]:
    if route == "executor":
        return {"executor": pool, "blocks": 3, "scratch_dir": scratch}
    return {"method": route}


class WatchingPool(ThreadPoolExecutor):
    """A thread pool that runs ``on_submit(args)`` before each task is submitted."""

    def __init__(self, workers: int, on_submit: Any = None) -> None:
        super().__init__(workers)
        self.submitted = 0
        self.on_submit = on_submit

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        if self.on_submit is not None:
            self.on_submit(args)
        return super().submit(fn, *args, **kwargs)


# ---------------------------------------------------------------------- overflow
@pytest.mark.parametrize("route", ["hnsw", "ivf", "executor"])
def test_huge_features_are_rescaled_by_every_engine(route: str, tmp_path: Path) -> None:
    Y = latent_mixture(600, 8, seed=3).astype(np.float64)
    X = Y * 2.0**100  # squared norms overflow float32: the search rescales by a power of two
    with ThreadPoolExecutor(2) as pool:
        gy = compute_knn(Y, 6, **_route(route, pool, tmp_path))
        gx = compute_knn(X, 6, **_route(route, pool, tmp_path))
    assert (gx.neighbors >= 0).all() and np.isfinite(gx.distances).all()
    # Scaling by a power of two is exact: the same neighbours, distances times 2**100.
    assert _bits(gx.neighbors) == _bits(gy.neighbors)
    want = (gy.distances.astype(np.float64) * 2.0**100).astype(np.float32)
    assert _bits(gx.distances) == _bits(want)
    if route == "executor":  # and the blocks agree with the local search bit for bit
        local = compute_knn(X, 6)
        assert _bits(gx.neighbors) == _bits(local.neighbors)
        assert _bits(gx.distances) == _bits(local.distances)


def _overflowing() -> np.ndarray:
    """40 rows in two far groups: every row's 25 neighbours include the other group, at a
    distance (2 * float32 max) that float32 cannot hold."""
    rng = np.random.default_rng(4)
    X = np.zeros((40, 2), dtype=np.float32)
    X[:20, 0], X[20:, 0] = F32_MAX, -F32_MAX
    X[:, 1] = rng.uniform(-1, 1, 40)
    return X


@pytest.mark.parametrize("route", ["hnsw", "ivf", "executor"])
def test_overflow_is_refused_by_every_engine_before_any_write(route: str, tmp_path: Path) -> None:
    X = _overflowing()
    with ThreadPoolExecutor(2) as pool:
        with pytest.raises(InvalidFeaturesError) as info:
            compute_knn(X, 25, **_route(route, pool, tmp_path))
        assert info.value.reason == "overflow" and info.value.row == 0
        assert "row 0" in str(info.value)
        store = PersistentStore(tmp_path / "s")
        kwargs: dict[str, Any] = {"executor": pool} if route == "executor" else {"method": route}
        with pytest.raises(InvalidFeaturesError, match="row 0"):
            store.ensure(X, 25, **kwargs)
    # Nothing written but the (empty) lock file; no shipped copy left behind.
    assert [p for p, _ in snapshot(store.root) if not p.endswith(".lock")] == []
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


# ---------------------------------------------------------------------- engine meta
def _hnsw_entry(tmp_path: Path) -> tuple[PersistentStore, Any, np.ndarray]:
    X = latent_mixture(400, 8, seed=11)
    store = PersistentStore(tmp_path / "s")
    return store, store.ensure(X, 6, method="hnsw", params={"threads": 1}), X


def test_ls_and_info_show_the_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, ref, X = _hnsw_entry(tmp_path)
    exact = store.ensure(X, 6)
    assert store.verify() == []
    assert {e.fingerprint: e.method for e in store.entries()} == {
        ref.fingerprint: "hnsw",
        exact.fingerprint: "exact",
    }
    assert cli_main(["ls", "--json", str(store.root)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["fingerprint"]: r["method"] for r in rows} == {
        ref.fingerprint: "hnsw",
        exact.fingerprint: "exact",
    }
    assert cli_main(["ls", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "METHOD" in out.splitlines()[0]
    assert next(x for x in out.splitlines() if x.startswith(ref.fingerprint)).split()[5] == "hnsw"


_BAD_ENGINE_FIELDS = {
    "unknown method": lambda m: m.update(method="annoy"),
    "exact recorded": lambda m: m.update(method="exact"),
    "method not a string": lambda m: m.update(method=["hnsw"]),
    "recall missing": lambda m: m.pop("recall"),
    "only a method": lambda m: (m.pop("recall"), m.pop("params")),
    "unknown param": lambda m: m["params"].update(nprobe=3),
    "param missing": lambda m: m["params"].pop("M"),
    "param zero": lambda m: m["params"].update(efSearch=0),
    "param a float": lambda m: m["params"].update(M=32.0),
    "param a bool": lambda m: m["params"].update(M=True),
    "recall above 1": lambda m: m["recall"].update(value=1.5),
    "recall negative": lambda m: m["recall"].update(value=-0.1),
    "recall a string": lambda m: m["recall"].update(value="0.99"),
    "recall k beyond the graph": lambda m: m["recall"].update(k=7),
    "recall sample beyond n": lambda m: m["recall"].update(sample=401),
    "recall extra key": lambda m: m["recall"].update(note="x"),
    "recall not an object": lambda m: m.update(recall=0.99),
}


@pytest.mark.parametrize("bad", sorted(_BAD_ENGINE_FIELDS))
def test_invalid_engine_fields_are_corrupt_and_rebuilt(
    tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store, ref, X = _hnsw_entry(tmp_path)
    meta_path = ref.path / "meta.json"
    meta = json.loads(meta_path.read_text())
    good = json.loads(meta_path.read_text())
    _BAD_ENGINE_FIELDS[bad](meta)
    meta_path.write_text(json.dumps(meta))
    problems = store.verify()
    assert [p.fingerprint for p in problems] == [ref.fingerprint]
    assert "meta.json" in problems[0].reason
    assert store.entries() == []  # never listed as a good entry
    assert cli_main(["info", str(store.root), ref.fingerprint]) == 1
    assert ref.fingerprint in capsys.readouterr().err
    with pytest.warns(KnnCacheWarning, match="corrupt entry"):
        again = store.ensure(X, 6, method="hnsw", params={"threads": 1})
    assert again.fingerprint == ref.fingerprint and store.verify() == []
    assert json.loads(meta_path.read_text())["params"] == good["params"]
    one = compute_knn(X, 6, method="hnsw", threads=1)
    assert _bits(again.load().neighbors) == _bits(one.neighbors)


# ---------------------------------------------------------------------- shipped features
def _lock_state(path: str) -> str:
    """``"held"`` if some other open file description holds a flock on ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held"
    finally:
        os.close(fd)
    return "free"


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_shipped_features_are_held_while_in_use_and_removed(tmp_path: Path, umask: int) -> None:
    X = latent_mixture(500, 8, seed=12)
    root = tmp_path / "s"
    seen: list[dict[str, Any]] = []

    def on_submit(args: tuple[Any, ...]) -> None:
        path = args[0]
        if seen:
            return
        st = os.lstat(path)
        os.utime(path, (time.time() - DAY, time.time() - DAY))  # far past any grace period
        # Another process clears the store meanwhile: the shipped copy is in use, so kept.
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from knncache.cli import main; main(['clear', {str(root)!r}])",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        seen.append(
            {
                "path": path,
                "mode": stat.S_IMODE(st.st_mode),
                "regular": stat.S_ISREG(st.st_mode),
                "lock": _lock_state(path),
                "survived": os.path.exists(path),
                "clear": proc.returncode,
            }
        )

    old = os.umask(umask)
    try:
        with WatchingPool(2, on_submit) as pool:
            ref = PersistentStore(root).ensure(X, 5, executor=pool, params={"blocks": 4})
    finally:
        os.umask(old)
    assert len(seen) == 1 and seen[0]["clear"] == 0
    ship = Path(seen[0]["path"])
    assert ship.parent == root and ship.name.startswith(".knncache-ship-")
    assert seen[0]["regular"] and seen[0]["mode"] == 0o666 & ~umask
    assert seen[0]["lock"] == "held" and seen[0]["survived"]
    assert not ship.exists()  # removed once the search is done
    assert not [p for p in os.listdir(root) if "knncache-ship" in p]
    assert _bits(ref.load().neighbors) == _bits(compute_knn(X, 5).neighbors)


_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def _plant(root: Path, outside: Path) -> dict[str, Path]:
    """Ship-named objects in ``root``: orphaned, fresh, held, partial, a link and a FIFO."""
    old = time.time() - DAY
    names = {
        "orphan": SHIP,
        "fresh": ".knncache-ship-" + "cd" * 16 + ".npy",
        "held": ".knncache-ship-" + "ef" * 16 + ".npy",
        "partial": SHIP_TMP,
        "link": ".knncache-ship-" + "01" * 16 + ".npy",
        "fifo": ".knncache-ship-" + "23" * 16 + ".npy",
    }
    paths = {key: root / name for key, name in names.items()}
    for key in ("orphan", "fresh", "held"):
        np.save(paths[key], np.arange(4.0))  # the names end in .npy: saved as they are
    paths["partial"].write_bytes(b"\x93NUMPY half written")
    for key in ("orphan", "held", "partial"):
        os.utime(paths[key], (old, old))
    outside.write_bytes(b"keep me")
    os.symlink(outside, paths["link"])
    os.mkfifo(paths["fifo"])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("command", ["clear", "gc"])
def test_orphaned_shipped_features_are_housekept(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    store = PersistentStore(root)
    store.ensure(latent_mixture(100, 4, seed=1), 3)
    paths = _plant(root, tmp_path / "outside.bin")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(paths["held"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        argv = [command, "--json", str(root)] + (["--max-bytes", "1G"] if command == "gc" else [])
        assert cli_main(argv) == 0
        payload = json.loads(capsys.readouterr().out)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        assert holder.stdout is not None
        holder.stdout.close()
    gone = {key for key, p in paths.items() if not os.path.lexists(p)}
    assert gone == {"orphan", "partial", "link", "fifo"}
    assert sorted(payload["temp_removed"]) == sorted([str(paths["orphan"]), str(paths["partial"])])
    assert sorted(payload["foreign_removed"]) == sorted([str(paths["link"]), str(paths["fifo"])])
    assert (tmp_path / "outside.bin").read_bytes() == b"keep me"  # the link was not followed
    assert np.load(paths["held"]).tolist() == [0.0, 1.0, 2.0, 3.0]
    # Once its holder is gone, the old one goes too; the fresh one waits for the grace period.
    assert cli_main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["temp_removed"] == [str(paths["held"])]
    assert paths["fresh"].exists()


def test_read_only_store_refuses_a_miss_before_shipping(tmp_path: Path) -> None:
    X = latent_mixture(300, 6, seed=13)
    root = tmp_path / "s"
    PersistentStore(root).ensure(X[:150], 4)  # a warm store, but not of X
    before = snapshot(root)
    with WatchingPool(2) as pool:
        ro = PersistentStore(root, read_only=True)
        with pytest.raises(StoreWriteError, match=r"read-only|not stored"):
            ro.ensure(X, 4, executor=pool)
        assert pool.submitted == 0
        hit = ro.ensure(X[:150], 4, executor=pool)  # a hit needs no search
        assert pool.submitted == 0 and hit.k == 4
    assert snapshot(root) == before


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_workers_never_follow_or_open_a_foreign_features_file(tmp_path: Path, kind: str) -> None:
    X = latent_mixture(200, 4, seed=14)
    real = tmp_path / "x.npy"
    np.save(real, X)
    bad = tmp_path / "bad.npy"
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        os.symlink(real, bad)
    with ThreadPoolExecutor(2) as pool, pytest.raises(ForeignObjectError, match=r"bad\.npy"):
        compute_knn(X, 4, executor=pool, features_npy=bad)
