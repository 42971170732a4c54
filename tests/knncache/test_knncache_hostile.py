"""Hostile stores: real links, FIFOs, devices and bad files planted in an entry.

For every planted object, every operation (``ensure``, ``get``, ``verify``, ``ls``, ``info``,
``clear``, ``gc``) must return (pytest-timeout catches a hang), touch nothing outside the
root (a bait directory and file outside it are compared byte for byte) and report the entry.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knncache import KnnCacheWarning, PersistentStore, compute_knn, fingerprint
from knncache.cli import main as cli_main
from tests.knncache.kc_reference import snapshot

pytestmark = pytest.mark.timeout(60)


def _bait(tmp_path: Path) -> Path:
    bait = tmp_path / "outside"
    bait.mkdir()
    (bait / "precious.txt").write_text("do not touch\n")
    np.save(bait / "k5_neighbors.npy", np.arange(10))
    return bait


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # like /dev/zero


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    make(path)


def _plant(kind: str, root: Path, fp: str, bait: Path) -> None:
    entry = root / fp
    if kind == "entry_symlink":
        import shutil

        shutil.rmtree(entry)
        entry.symlink_to(bait, target_is_directory=True)
    elif kind.startswith("symlink:"):
        name = kind.split(":", 1)[1]
        target = bait / ("k5_neighbors.npy" if name.endswith(".npy") else "precious.txt")
        _replace(entry / name, lambda p: p.symlink_to(target))
    elif kind == "lock_symlink":
        _replace(root / f"{fp}.lock", lambda p: p.symlink_to(bait / "precious.txt"))
    elif kind == "pin_symlink":
        _replace(root / f"{fp}.pin", lambda p: p.symlink_to(bait / "precious.txt"))
    elif kind.startswith("fifo:"):
        _replace(entry / kind.split(":", 1)[1], _fifo)
    elif kind.startswith("device:"):
        _replace(entry / kind.split(":", 1)[1], _device)
    elif kind.startswith("dir:"):
        _replace(entry / kind.split(":", 1)[1], lambda p: p.mkdir())
    elif kind == "meta_zero_link":
        _replace(entry / "meta.json", lambda p: p.symlink_to("/dev/zero"))
    elif kind == "meta_oversized":
        meta = json.loads((entry / "meta.json").read_text())
        meta["padding"] = "x" * (2 << 20)
        (entry / "meta.json").write_text(json.dumps(meta))
    elif kind == "meta_shapes_disagree":
        meta = json.loads((entry / "meta.json").read_text())
        meta["files"]["k5_distances.npy"]["shape"] = [meta["n"] + 3, 5]
        (entry / "meta.json").write_text(json.dumps(meta))
    else:  # pragma: no cover
        raise AssertionError(kind)


ENTRY_FILES = ["meta.json", "features.npy", "k5_neighbors.npy", "k5_distances.npy"]
ENTRY_FILES += ["array_pd.npy", "array_pd.json"]
KINDS = (
    ["entry_symlink", "lock_symlink", "pin_symlink", "meta_zero_link"]
    + [f"symlink:{n}" for n in ENTRY_FILES]
    + [f"{how}:{n}" for how in ("fifo", "device", "dir") for n in ("meta.json", "array_pd.npy")]
    + ["meta_oversized", "meta_shapes_disagree"]
)


@pytest.fixture
def hostile(tmp_path: Path, X: np.ndarray, request: pytest.FixtureRequest) -> tuple:
    kind = request.param
    root = tmp_path / "store"
    store = PersistentStore(root)
    ref = store.ensure(X, 5)
    store.ensure_array(ref, "pd", lambda f: np.asarray(f, dtype=np.float64) * 2)
    bait = _bait(tmp_path)
    _plant(kind, root, ref.fingerprint, bait)
    return kind, root, ref.fingerprint, bait, snapshot(bait)


def _reported(kind: str, fp: str, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify, ls and info all name the entry (or its lock/pin file)."""
    store = PersistentStore(root)
    bad = store.verify()
    assert fp in [b.fingerprint for b in bad], (kind, bad)
    for argv in (["verify", str(root)], ["ls", str(root)], ["info", str(root)]):
        capsys.readouterr()
        code = cli_main(argv)
        out = capsys.readouterr()
        assert fp in out.out + out.err, (argv, out)
        assert code == (1 if argv[0] == "verify" else 0), (argv, out)
    capsys.readouterr()
    assert cli_main(["info", str(root), fp]) in (0, 1)
    out = capsys.readouterr()
    assert fp in out.out + out.err


@pytest.mark.parametrize("hostile", KINDS, indirect=True)
def test_every_operation_survives_and_stays_inside(
    hostile: tuple, X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, root, fp, bait, before = hostile
    _reported(kind, fp, root, capsys)
    assert snapshot(bait) == before

    # A write into a size-bounded store lists every entry (LRU eviction): no hang there.
    bounded = PersistentStore(root, max_bytes=1 << 30)
    other = bounded.ensure(X * 2, 3)
    assert np.array_equal(other.load().neighbors, compute_knn(X * 2, 3).neighbors)
    assert snapshot(bait) == before
    store = PersistentStore(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KnnCacheWarning)
        store.get(fp)  # None or a ref: never a hang, never an exception
        try:
            ref = store.ensure(X, 5)
        except OSError as exc:  # a foreign lock/pin file: refused, named
            assert kind in ("lock_symlink",), (kind, exc)
            assert fp in str(exc)
        else:
            g = compute_knn(X, 5)
            nb, ds = ref.load()
            assert np.array_equal(nb, g.neighbors) and ds.tobytes() == g.distances.tobytes()
            assert not (root / fp).is_symlink()
            store.ensure_array(ref, "pd", lambda f: np.asarray(f, dtype=np.float64) * 2)
            assert np.array_equal(ref.array("pd"), X.astype(np.float64) * 2)
            # The rebuild left nothing foreign in the entry (a planted lock or pin file stays
            # reported until clear/gc removes it).
            assert [b for b in store.verify() if b.path == str(root / fp)] == []
    assert snapshot(bait) == before
    assert cli_main(["gc", str(root), "--max-bytes", "0"]) == 0
    assert snapshot(bait) == before
    assert cli_main(["clear", str(root)]) == 0
    assert snapshot(bait) == before
    # Housekeeping removed the entry and every foreign object at its names.
    assert [p for p, _ in snapshot(root) if p.startswith(fp)] == []
    assert (bait / "precious.txt").read_text() == "do not touch\n"


@pytest.mark.parametrize("hostile", ["lock_symlink"], indirect=True)
def test_a_planted_lock_link_is_never_truncated(hostile: tuple, X: np.ndarray) -> None:
    _kind, root, fp, bait, before = hostile
    store = PersistentStore(root)
    (root / fp / "meta.json").unlink()  # force the locked path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KnnCacheWarning)
        with pytest.raises(OSError, match="symbolic link"):
            store.ensure(X, 5)
    assert snapshot(bait) == before


def test_symlinked_entry_is_rebuilt_in_place_not_through(tmp_path: Path, X: np.ndarray) -> None:
    root = tmp_path / "store"
    bait = _bait(tmp_path)
    before = snapshot(bait)
    root.mkdir()
    (root / fingerprint(X)).symlink_to(bait, target_is_directory=True)
    store = PersistentStore(root)
    with pytest.warns(KnnCacheWarning, match="symbolic link"):
        ref = store.ensure(X, 5)
    assert (root / ref.fingerprint).is_dir() and not (root / ref.fingerprint).is_symlink()
    assert snapshot(bait) == before
    assert store.verify() == []
