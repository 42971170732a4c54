"""``knncache gc ROOT --unused-for DURATION``, ``gc ROOT`` alone and ``drop_unused``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from knncache import InvalidParameterError, KnnCacheWarning, PersistentStore
from knncache.cli import main, parse_duration

DAY = 86400


def _age(entry: Path, seconds: float) -> None:
    """Set an entry's last use (the recorded time and every file's mtime) ``seconds`` back."""
    then = time.time() - seconds
    meta_path = entry / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["created"] = meta["last_used"] = then
    meta_path.write_text(json.dumps(meta))
    for f in entry.iterdir():
        os.utime(f, (then, then))


@pytest.fixture
def aged(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three entries last used 40 days, 10 days and 1 hour ago (in that order)."""
    rng = np.random.default_rng(1)
    store = PersistentStore(tmp_path / "store")
    fps = []
    for age in (40 * DAY, 10 * DAY, 3600):
        ref = store.ensure(rng.standard_normal((30, 3)).astype(np.float32), 4)
        _age(ref.path, age)
        fps.append(ref.fingerprint)
        store.release(ref)
    return store.root, fps


def _left(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir()}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_unused_for_removes_only_what_was_unused_that_long(
    aged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, (old, mid, new) = aged
    code, out, err = run(capsys, "gc", str(root), "--unused-for", "30d")
    assert (code, err) == (0, "")
    assert f"removed {old}" in out and "removed 1 entries unused for 30d" in out
    assert _left(root) == {mid, new}
    code, out, _ = run(capsys, "gc", str(root), "--unused-for", "168h", "--json")
    data = json.loads(out)
    assert code == 0 and data["removed"] == [mid] and data["unused_for_seconds"] == 7 * DAY
    assert _left(root) == {new}
    code, out, _ = run(capsys, "gc", str(root), "--unused-for", "2w")
    assert code == 0 and "removed 0 entries" in out and _left(root) == {new}


def test_a_hit_refreshes_the_last_use(
    aged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, (old, _mid, _new) = aged
    store = PersistentStore(root)
    first = np.random.default_rng(1).standard_normal((30, 3)).astype(np.float32)
    ref = store.ensure(first, 4)  # a hit: meta.json's mtime is now
    assert ref.fingerprint == old and store.stats["hits"] == 1
    store.release(ref)
    code, _, _ = run(capsys, "gc", str(root), "--unused-for", "1d")
    assert code == 0 and old in _left(root)


def test_a_pinned_entry_is_never_removed(
    aged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, (old, _mid, new) = aged
    with PersistentStore(root).pin(old):
        code, out, _ = run(capsys, "gc", str(root), "--unused-for", "1d")
        assert code == 0 and f"skipped pinned entry {old}" in out and "skipped 1 pinned" in out
        assert _left(root) == {old, new}
    code, _, _ = run(capsys, "gc", str(root), "--unused-for", "1d")
    assert code == 0 and _left(root) == {new}


def test_gc_root_alone_removes_nothing_and_names_every_action(
    aged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, fps = aged
    code, out, err = run(capsys, "gc", str(root))
    assert (code, err) == (0, "")
    for action in ("--unused-for DURATION", "--max-bytes SIZE", "--break-locks", "--temp"):
        assert action in out
    assert "1 unused for 30d" in out and "2 unused for 7d" in out and "2 unused for 1d" in out
    assert _left(root) == set(fps)
    code, out, _ = run(capsys, "gc", str(root), "--json")
    data = json.loads(out)
    assert code == 0 and data["entries"] == 3
    assert {age: u["entries"] for age, u in data["unused"].items()} == {
        "1d": 2,
        "7d": 2,
        "30d": 1,
    }
    assert _left(root) == set(fps)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("3600s", 3600), ("2w", 14 * DAY)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "1.5d", "-1d", "30 d", "30D", "d", "3y", "30dd"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(").replace(".", r"\.")):
        parse_duration(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["gc", "ROOT", "--unused-for", "30"],
        ["gc", "ROOT", "--unused-for", "1.5d"],
        ["gc", "ROOT", "--unused-for", "30d", "--max-bytes", "1G"],
        ["gc", "ROOT", "--unused-for", "30d", "--break-locks"],
        ["gc", "--temp", "--unused-for", "30d"],
        ["gc", "ROOT", "--unused-for", "30d", "--older-than", "5"],
    ],
)
def test_bad_gc_usage_is_one_line_and_removes_nothing(
    argv: list[str], aged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, fps = aged
    code, out, err = run(capsys, *[str(root) if a == "ROOT" else a for a in argv])
    assert code == 2 and out == ""
    assert err.startswith("knncache: error: ") and err.count("\n") == 1
    if "--unused-for" in argv and argv[argv.index("--unused-for") + 1] in ("30", "1.5d"):
        assert repr(argv[argv.index("--unused-for") + 1]) in err
    assert _left(root) == set(fps)


def test_drop_unused_spares_what_this_process_uses(aged: tuple[Path, list[str]]) -> None:
    root, (old, mid, new) = aged
    store = PersistentStore(root)
    assert store.get(mid) is not None  # in use by this process (and refreshed)
    _age(root / mid, 20 * DAY)  # unused on disk, but this process still uses it
    assert store.drop_unused(DAY) == [old]
    assert _left(root) == {mid, new}
    store.release(mid)
    assert store.drop_unused(DAY) == [mid]
    with pytest.warns(KnnCacheWarning, match="pinned"), store.pin(new):
        _age(root / new, 2 * DAY)
        assert store.drop_unused(0) == []


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "30d"])
def test_drop_unused_refuses_bad_ages(aged: tuple[Path, list[str]], bad: object) -> None:
    root, fps = aged
    with pytest.raises(InvalidParameterError, match="older_than"):
        PersistentStore(root).drop_unused(bad)  # type: ignore[arg-type]
    assert _left(root) == set(fps)


@pytest.mark.slow
def test_gc_in_a_subprocess_spares_an_entry_another_process_pins(
    aged: tuple[Path, list[str]],
) -> None:
    root, (old, mid, new) = aged
    with PersistentStore(root).pin(mid):
        proc = subprocess.run(
            [sys.executable, "-m", "knncache", "gc", str(root), "--unused-for", "1d"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert f"removed {old}" in proc.stdout and f"skipped pinned entry {mid}" in proc.stdout
    assert _left(root) == {mid, new}
    proc = subprocess.run(
        [sys.executable, "-m", "knncache", "gc", str(root), "--unused-for", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == "" and "'30'" in proc.stderr
    assert proc.stderr.count("\n") == 1 and _left(root) == {mid, new}
