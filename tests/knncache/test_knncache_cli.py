"""The ``knncache`` command, through ``main([...])`` and once as ``python -m knncache``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knncache import PersistentStore
from knncache.cli import format_size, main, parse_size
from tests.knncache.kc_reference import entry_dirs


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, list[str]]:
    rng = np.random.default_rng(0)
    store = PersistentStore(tmp_path / "store")
    fps = []
    for i in range(3):
        ref = store.ensure(rng.standard_normal((40, 4)).astype(np.float32), 3 + i)
        os.utime(ref.path / "meta.json", (1000 + i, 1000 + i))
        fps.append(ref.fingerprint)
    for fp in fps:
        store.release(fp)
    return store.root, fps


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls(populated: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, fps = populated
    code, out, _ = run(capsys, "ls", str(root))
    assert code == 0
    assert all(fp in out for fp in fps) and "3 entries" in out and "KiB" in out
    code, out, _ = run(capsys, "ls", str(root), "--json")
    data = json.loads(out)
    assert code == 0 and [d["fingerprint"] for d in data] == fps[::-1]  # most recent first
    assert {d["k"] for d in data} == {3, 4, 5}


def test_info(populated: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, fps = populated
    code, out, _ = run(capsys, "info", str(root), "--json")
    assert code == 0 and json.loads(out)["entries"] == 3
    code, out, _ = run(capsys, "info", str(root), fps[0])
    assert code == 0 and "k=3" in out and "features.npy" in out
    code, out, _ = run(capsys, "info", str(root), fps[0], "--json")
    meta = json.loads(out)
    assert meta["fingerprint"] == fps[0] and meta["bytes"] > 0
    code, _, err = run(capsys, "info", str(root), "0" * 32)
    assert code == 1 and err.count("\n") == 1
    code, _, err = run(capsys, "info", str(root), "../../etc")
    assert code == 2 and "invalid fingerprint" in err and err.count("\n") == 1


def test_verify(populated: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, fps = populated
    code, out, _ = run(capsys, "verify", str(root))
    assert code == 0 and "3 entries checked, 0 corrupt" in out
    p = root / fps[1] / "k4_distances.npy"
    p.write_bytes(p.read_bytes()[:-8])
    code, out, _ = run(capsys, "verify", str(root))
    assert code == 1 and f"CORRUPT {fps[1]}" in out
    code, out, _ = run(capsys, "verify", str(root), "--json")
    data = json.loads(out)
    assert code == 1 and [c["fingerprint"] for c in data["corrupt"]] == [fps[1]]


def test_gc_max_bytes(
    populated: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, fps = populated
    sizes = {e.fingerprint: e.bytes for e in PersistentStore(root).entries()}
    budget = sizes[fps[1]] + sizes[fps[2]]
    code, out, _ = run(capsys, "gc", str(root), "--max-bytes", str(budget), "--json")
    data = json.loads(out)
    assert code == 0 and data["evicted"] == [fps[0]]  # the least recently used
    assert entry_dirs(root) == sorted(fps[1:])
    code, out, _ = run(capsys, "gc", str(root), "--max-bytes", "0K")
    assert code == 0 and "evicted 2 entries" in out and entry_dirs(root) == []


def test_clear(populated: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = populated
    code, out, _ = run(capsys, "clear", str(root))
    assert code == 0 and "removed 3 entries" in out and entry_dirs(root) == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["ls"],
        ["ls", "/definitely/not/here"],
        ["gc"],
        ["gc", "ROOT", "--max-bytes", "lots"],
        ["gc", "--temp", "ROOT"],
        ["gc", "--temp", "--dir", "/definitely/not/here"],
        ["verify", "FILE"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "FILE").write_text("x")
    argv = [
        str(tmp_path) if a == "ROOT" else str(tmp_path / "FILE") if a == "FILE" else a for a in argv
    ]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("knncache: error: ") and err.count("\n") == 1


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "verify" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "knncache" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("500M", 500 * 2**20),
        ("2G", 2 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("10kb", 10240),
        ("0", 0),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1X", "M", "1.2.3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 * 2**30) == "3.0 GiB"


def test_python_dash_m(populated: tuple[Path, list[str]]) -> None:
    root, fps = populated
    proc = subprocess.run(
        [sys.executable, "-m", "knncache", "ls", str(root), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(d["fingerprint"] for d in json.loads(proc.stdout)) == sorted(fps)
    proc = subprocess.run(
        [sys.executable, "-m", "knncache", "verify", str(root / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
