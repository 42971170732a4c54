"""A ``features.npz`` written by someone else: its metadata and member headers are not trusted.

Every malformed file below is a real zip on disk. Headers that claim more data than the member
holds are refused before the claimed size is allocated (checked with :mod:`tracemalloc`, which
sees numpy's allocations).
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import FeatureCacheError
from ssddbc.data import SuperclassData, load_superclass, write_superclass


def _small() -> SuperclassData:
    rng = np.random.default_rng(0)
    targets = np.arange(12) % 3
    known = targets < 2
    return SuperclassData(
        name="small",
        features=rng.normal(size=(12, 3)).astype(np.float32),
        targets=targets,
        known_mask=known,
        labeled_mask=known & (np.arange(12) < 6),
        train_size=9,
        metadata={"superclass_name": "small"},
    )


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _rewrite(path: Path, replace: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    members = {**_members(path), **replace}
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version 1.0 ``.npy`` header, written by hand (numpy's own writer is not used)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def _npy(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, arr, allow_pickle=False)
    return out.getvalue()


def _with_metadata(tmp_path: Path, **fields: Any) -> Path:
    path = write_superclass(tmp_path, _small())
    with np.load(path, allow_pickle=False) as z:
        wrapper = json.loads(str(z["metadata_json"][()]))
    wrapper.update(fields)
    _rewrite(path, {"metadata_json.npy": _npy(np.array(json.dumps(wrapper)))})
    return path


@pytest.mark.parametrize("version", ["1", 1.5, 1.0, True, None, 0, -1, [1]])
def test_npz_format_version_must_be_a_positive_integer(tmp_path: Path, version: Any) -> None:
    path = _with_metadata(tmp_path, format_version=version)
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)
    msg = err.value.message
    assert "'metadata_json'" in msg and "format_version" in msg and repr(version) in msg, msg


def test_npz_newer_format_version_is_still_refused(tmp_path: Path) -> None:
    path = _with_metadata(tmp_path, format_version=2)
    with pytest.raises(FeatureCacheError, match="newer format version") as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)


def test_npz_header_claiming_a_huge_shape_is_refused(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    data = np.ascontiguousarray(_small().features).tobytes()
    _rewrite(path, {"all_features.npy": _npy_header((10**12, 768)) + data})
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)
    msg = err.value.message
    assert "'all_features'" in msg and "(1000000000000, 768)" in msg, msg


@pytest.mark.parametrize("case", ["short data", "negative dim", "object dtype", "bad magic"])
def test_npz_member_headers_that_lie_name_the_key(tmp_path: Path, case: str) -> None:
    path = write_superclass(tmp_path, _small())
    member = {
        "short data": _npy_header((12, 3)) + b"\x00" * 20,
        "negative dim": _npy_header((-12, 3)) + b"\x00" * 144,
        "object dtype": _npy_header((12,), "|O") + b"\x00" * 96,
        "bad magic": b"\x93NUMPX\x01\x00" + b"\x00" * 200,
    }[case]
    _rewrite(path, {"all_features.npy": member})
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)
    assert "'all_features'" in err.value.message, err.value.message


def _peak_while_loading(root: Path) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(FeatureCacheError):
            load_superclass(root, "small")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


CLAIM = (20_000, 768)  # 122,880,000 bytes of float64
CLAIM_BYTES = 20_000 * 768 * 8


def test_stored_member_claim_is_never_allocated(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    _rewrite(path, {"all_features.npy": _npy_header(CLAIM, "<f8") + b"\x00" * 4096})
    assert _peak_while_loading(tmp_path) < CLAIM_BYTES // 8


def _patch_file_size(path: Path, name: str, file_size: int) -> None:
    """Make the zip directory claim ``file_size`` uncompressed bytes for member ``name``."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw[info.header_offset + 22 : info.header_offset + 26] = struct.pack("<I", file_size)
    start = 0
    while True:  # find this member's central directory record
        central = raw.find(b"PK\x01\x02", start)
        assert central >= 0
        name_len = struct.unpack("<H", raw[central + 28 : central + 30])[0]
        if raw[central + 46 : central + 46 + name_len] == name.encode():
            break
        start = central + 4
    raw[central + 24 : central + 28] = struct.pack("<I", file_size)
    path.write_bytes(bytes(raw))


def test_deflated_member_claim_is_never_allocated(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    header = _npy_header(CLAIM, "<f8")
    _rewrite(path, {"all_features.npy": header + b"\x00" * 4096}, zipfile.ZIP_DEFLATED)
    # The directory now agrees with the header; the compressed data cannot hold that much.
    _patch_file_size(path, "all_features.npy", len(header) + CLAIM_BYTES)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("all_features.npy").file_size == len(header) + CLAIM_BYTES
    assert _peak_while_loading(tmp_path) < CLAIM_BYTES // 8


def test_savez_compressed_cache_still_loads(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    _rewrite(path, {}, zipfile.ZIP_DEFLATED)
    back = load_superclass(tmp_path, "small")
    np.testing.assert_array_equal(back.features, _small().features)


def test_rewriting_over_a_lying_file_replaces_it(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    _rewrite(path, {"all_features.npy": _npy_header((10**12, 768)) + b"\x00" * 144})
    assert write_superclass(tmp_path, _small()) == path
    np.testing.assert_array_equal(load_superclass(tmp_path, "small").features, _small().features)
