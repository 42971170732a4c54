"""Entries and markers a store cannot trust: planted metas, truncated arrays, skewed clocks.

Every case is a real file written into a real store (raw JSON text with ``NaN``,
``Infinity`` or ``true`` where a number belongs; a ``.npy`` cut short with its meta
rewritten to match; a soft-lock marker dated in the future), driven through the API and
the ``knncache`` command. One bad entry never hides the others.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import knncache
from knncache import (
    CorruptEntryError,
    KnnCacheWarning,
    PersistentStore,
    StoreWriteError,
    compute_knn,
)
from knncache._fingerprint import checksum_fd
from knncache.cli import main as cli_main
from tests.knncache.kc_reference import read_meta

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------------- helpers
def _two_entries(root: Path, X: np.ndarray) -> tuple[PersistentStore, str, str]:
    """A store with two entries; returns ``(store, fp_to_spoil, fp_kept_good)``."""
    store = PersistentStore(root)
    bad = store.ensure(X, 3).fingerprint
    good = store.ensure(X[:30], 3).fingerprint
    return store, bad, good


def _plant_raw(root: Path, fp: str, key: str, raw_value: str) -> None:
    """Rewrite ``key``'s value in ``meta.json`` as the raw JSON text ``raw_value``."""
    path = root / fp / "meta.json"
    text = path.read_text()
    new, count = re.subn(rf'("{key}":\s*)[^,\n}}]+', rf"\g<1>{raw_value}", text)
    assert count == 1, text
    path.write_text(new)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli_main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_listed_with_one_problem(
    root: Path, bad: str, good: str, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """Through the command line: ls, ls --json, info, verify, info FP."""
    rc, out, err = _run(["ls", str(root)], capsys)
    assert rc == 0 and err == ""
    assert good in out and f"PROBLEM {bad}: " in out and "1 entries" in out
    (problem,) = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    assert key in problem

    rc, out, err = _run(["ls", "--json", str(root)], capsys)
    assert rc == 0
    assert [e["fingerprint"] for e in json.loads(out)] == [good]
    assert f"problem {bad}" in err

    rc, out, err = _run(["info", str(root)], capsys)
    assert rc == 0 and "entries  1" in out and "problems 1" in out and f"PROBLEM {bad}" in out

    rc, out, err = _run(["info", "--json", str(root)], capsys)
    payload = json.loads(out)
    assert rc == 0 and payload["entries"] == 1
    assert [p["fingerprint"] for p in payload["problems"]] == [bad]

    rc, out, err = _run(["verify", str(root)], capsys)
    assert rc == 1 and f"CORRUPT {bad}" in out and "2 entries checked, 1 corrupt" in out

    rc, out, err = _run(["info", str(root), bad], capsys)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1 and bad in err


# ---------------------------------------------------------------------- meta.json fields
@pytest.mark.parametrize("key", ["last_used", "created"])
@pytest.mark.parametrize(
    "raw",
    ["Infinity", "-Infinity", "NaN", "true", "1e400", "1e300", "-5", "1" + "0" * 400],
    ids=lambda raw: raw if len(raw) < 10 else "int400",
)
def test_bad_time_in_meta_is_one_problem_not_a_crash(
    tmp_path: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str], key: str, raw: str
) -> None:
    root = tmp_path / "s"
    store, bad, good = _two_entries(root, X)
    _plant_raw(root, bad, key, raw)
    assert [e.fingerprint for e in store.entries()] == [good]
    (finding,) = store.verify()
    assert finding.fingerprint == bad and key in finding.reason
    _assert_listed_with_one_problem(root, bad, good, capsys, key)
    # The spoiled entry is rebuilt, never served.
    with pytest.warns(KnnCacheWarning, match="corrupt entry"):
        ref = store.ensure(X, 3)
    assert ref.fingerprint == bad and store.verify() == []
    assert isinstance(read_meta(root, bad)[key], float)


@pytest.mark.parametrize(
    ("key", "raw"),
    [
        ("n", "true"),
        ("n", "40.0"),
        ("d", "NaN"),
        ("k", "Infinity"),
        ("n", "123456789012345678901234567890"),
        ("metric", "[]"),
        ("features_dtype", '"|O"'),
        ("features_dtype", '"not a dtype"'),
        ("features_dtype", "3"),
        ("library", "7"),
        ("bytes", "NaN"),
        ("bytes", "-1"),
        ("bytes", "true"),
        ("xxh3_128", "Infinity"),
    ],
)
def test_every_meta_field_is_checked(
    tmp_path: Path,
    X: np.ndarray,
    capsys: pytest.CaptureFixture[str],
    key: str,
    raw: str,
) -> None:
    root = tmp_path / "s"
    store, bad, good = _two_entries(root, X)
    if key in ("bytes", "xxh3_128"):  # inside the record of the first listed file
        path = root / bad / "meta.json"
        text = path.read_text()
        path.write_text(re.sub(rf'("{key}":\s*)[^,\n}}]+', rf"\g<1>{raw}", text, count=1))
    else:
        _plant_raw(root, bad, key, raw)
    assert [e.fingerprint for e in store.entries()] == [good]
    (finding,) = store.verify()
    assert finding.fingerprint == bad
    rc, out, _ = _run(["ls", str(root)], capsys)
    assert rc == 0 and good in out and f"PROBLEM {bad}" in out
    rc, out, _ = _run(["verify", str(root)], capsys)
    assert rc == 1 and f"CORRUPT {bad}" in out


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A folder on tmpfs, whose timestamps go beyond year 9999 (ext4 stops at 2446)."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm (tmpfs)")
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="kc-trust-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_meta_mtime_beyond_the_calendar_does_not_crash_the_listing(
    shm_dir: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last-used time is also ``meta.json``'s mtime, which anyone can set."""
    root = shm_dir / "s"
    store, bad, good = _two_entries(root, X)
    far = 2.0**40  # year ~36812: a valid mtime on tmpfs, not a datetime
    os.utime(root / bad / "meta.json", (far, far))
    if os.stat(root / bad / "meta.json").st_mtime < 253402300800:
        pytest.skip("this file system clamps timestamps")
    infos = {e.fingerprint: e for e in store.entries()}
    assert set(infos) == {bad, good}
    assert infos[bad].last_used < 253402300800  # the out-of-range mtime is not believed
    for argv in (["ls", str(root)], ["ls", "--json", str(root)], ["info", str(root), bad]):
        rc, out, err = _run(argv, capsys)
        assert rc == 0 and bad in out, (argv, err)


# ---------------------------------------------------------------------- truncated arrays
def _truncate_consistently(root: Path, fp: str, name: str, cut: int = 8) -> None:
    """Cut ``cut`` bytes off ``name`` and rewrite its record (bytes, checksum) to match."""
    path = root / fp / name
    data = path.read_bytes()[:-cut]
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        digest = checksum_fd(fd)
    finally:
        os.close(fd)
    if name.startswith("array_"):
        marker = path.with_suffix(".json")
        rec = json.loads(marker.read_text())
        rec.update(bytes=len(data), xxh3_128=digest)
        marker.write_text(json.dumps(rec))
        return
    meta_path = root / fp / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][name].update(bytes=len(data), xxh3_128=digest)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("name", ["k3_neighbors.npy", "k3_distances.npy", "features.npy"])
def test_truncated_file_under_a_consistent_meta_is_corrupt_and_rebuilt(
    tmp_path: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    root = tmp_path / "s"
    store = PersistentStore(root)
    first = store.ensure(X, 3)
    fp = first.fingerprint
    _truncate_consistently(root, fp, name)

    (finding,) = store.verify()
    assert finding.fingerprint == fp and name in finding.reason and "header" in finding.reason
    rc, out, _ = _run(["verify", str(root)], capsys)
    assert rc == 1 and f"CORRUPT {fp}: {name}" in out

    with pytest.warns(KnnCacheWarning, match=rf"corrupt entry {fp} ignored"):
        assert store.get(fp) is None  # never served

    with pytest.raises(CorruptEntryError, match=name):
        store.ensure_array(first, "sq", lambda f: np.asarray(f) ** 2)

    with pytest.warns(KnnCacheWarning, match=rf"corrupt entry {fp}.*{re.escape(name)}"):
        ref = store.ensure(X, 3)
    nb, ds = compute_knn(X, 3)
    graph = ref.load()
    np.testing.assert_array_equal(graph.neighbors, nb)
    np.testing.assert_array_equal(graph.distances, ds)
    assert store.verify() == []
    store.ensure_array(ref, "sq", lambda f: np.asarray(f, dtype=np.float64) ** 2)
    np.testing.assert_array_equal(ref.array("sq"), X.astype(np.float64) ** 2)


def test_truncated_extra_array_under_a_consistent_marker_is_recomputed(
    tmp_path: Path, X: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    store = PersistentStore(root)
    ref = store.ensure(X, 3)
    calls: list[int] = []

    def square(f: Any) -> np.ndarray:
        calls.append(1)
        return np.asarray(f, dtype=np.float64) ** 2

    store.ensure_array(ref, "sq", square)
    _truncate_consistently(root, ref.fingerprint, "array_sq.npy")
    (finding,) = store.verify()
    assert "array_sq.npy" in finding.reason and "header" in finding.reason
    with pytest.warns(KnnCacheWarning, match="recomputing array 'sq'"):
        store.ensure_array(ref, "sq", square)
    assert len(calls) == 2
    np.testing.assert_array_equal(ref.array("sq"), X.astype(np.float64) ** 2)
    assert store.verify() == []


def test_file_longer_than_its_header_is_corrupt(tmp_path: Path, X: np.ndarray) -> None:
    root = tmp_path / "s"
    store = PersistentStore(root)
    fp = store.ensure(X, 3).fingerprint
    path = root / fp / "k3_neighbors.npy"
    data = path.read_bytes() + b"\0" * 8
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        digest = checksum_fd(fd)
    finally:
        os.close(fd)
    meta = json.loads((root / fp / "meta.json").read_text())
    meta["files"]["k3_neighbors.npy"].update(bytes=len(data), xxh3_128=digest)
    (root / fp / "meta.json").write_text(json.dumps(meta))
    (finding,) = store.verify()
    assert "k3_neighbors.npy" in finding.reason and "header" in finding.reason


# ---------------------------------------------------------------------- skewed soft locks
def _foreign_marker(root: Path, fp: str, acquired: float) -> Path:
    """A marker of another host and boot: its holder cannot be probed from here."""
    record = {
        "format": "knncache-softlock/1",
        "host": f"not-{socket.gethostname()}.example",
        "pid": 4242,
        "acquired": acquired,
        "token": secrets.token_hex(16),
        "boot_id": "00000000-0000-0000-0000-000000000000",
        "pidns": 1,
        "start": 1,
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{fp}.softlock"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_future_dated_marker_ages_by_its_file_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    fp = "0123456789abcdef0123456789abcdef"
    now = time.time()
    path = _foreign_marker(root, fp, acquired=now + 7200)
    os.utime(path, (now - 7200, now - 7200))

    rc, out, _ = _run(["gc", str(root), "--break-locks", "--older-than", "0", "--json"], capsys)
    payload = json.loads(out)
    assert rc == 0 and [m["fingerprint"] for m in payload["broken"]] == [fp]
    (broken,) = payload["broken"]
    assert broken["age"] >= 7000 and broken["skew"] >= 7000
    assert not path.exists()


def test_fresh_future_dated_marker_is_kept_and_its_skew_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "s"
    fp = "0123456789abcdef0123456789abcdef"
    path = _foreign_marker(root, fp, acquired=time.time() + 7200)

    rc, out, _ = _run(["gc", str(root), "--break-locks", "--older-than", "3600"], capsys)
    assert rc == 0 and path.exists()
    (kept,) = [line for line in out.splitlines() if line.startswith("kept lock")]
    assert fp in kept and "ahead of this host's clock" in kept

    # Planted far in the future, file time included: the age still runs (the change time
    # is the file system's own clock, which no record can set).
    far = time.time() + 10**9
    path.unlink()
    _foreign_marker(root, fp, acquired=far)
    os.utime(path, (far, far))
    rc, out, _ = _run(["gc", str(root), "--break-locks", "--older-than", "0", "--json"], capsys)
    payload = json.loads(out)
    assert rc == 0 and [m["fingerprint"] for m in payload["broken"]] == [fp]
    assert not path.exists()


# ---------------------------------------------------------------------- write errors
def test_store_write_error_reads_once_as_an_os_error(tmp_path: Path) -> None:
    root = tmp_path / "not_a_dir"
    root.write_text("a file where the store should be\n")
    with pytest.raises(StoreWriteError) as info:
        PersistentStore(root)
    exc = info.value
    assert exc.filename == str(root) and exc.errno == errno.ENOTDIR
    assert exc.strerror == exc.reason and "cannot write" not in exc.strerror
    assert str(exc).count("cannot write") == 1 and str(root) in str(exc)
    # What any generic OSError handler prints ("cannot write FILE: STRERROR") reads once.
    generic = f"cannot write {exc.filename}: {exc.strerror}"
    assert generic.count("cannot write") == 1


@pytest.mark.slow
def test_batch_run_names_an_unwritable_store_once(tmp_path: Path) -> None:
    """``ssddbc-search`` with a file where a superclass's store belongs: one clear line."""
    src = str(Path(knncache.__file__).resolve().parents[1])  # this checkout, from any cwd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    fc = tmp_path / "fc"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ssddbc.data import build_digits_feature_cache as b; b(sys.argv[1])",
            str(fc),
        ],
        check=True,
        env=env,
        timeout=120,
    )
    kc = tmp_path / "kc"
    kc.mkdir()
    (kc / "digits_high").write_text("not a store\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(fc),
            "--output_dir",
            str(tmp_path / "out"),
            "--knn_cache_dir",
            str(kc),
            "--k_min",
            "20",
            "--k_max",
            "21",
            "--density_min",
            "40",
            "--density_max",
            "41",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    (line,) = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert line.count("cannot write") == 1 and str(kc / "digits_high") in line
