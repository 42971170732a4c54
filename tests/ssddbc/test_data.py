"""Feature-cache format, validation, conversion, splits and built-in data."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssddbc import FeatureCacheError, InvalidInputError, SsddbcWarning
from ssddbc.data import (
    DIGITS_SUPERCLASSES,
    SUPERCLASSES,
    SuperclassData,
    build_digits_feature_cache,
    convert_feature_cache,
    list_superclasses,
    load_digits_superclass,
    load_superclass,
    make_gcd_split,
    make_synthetic_superclass,
    write_superclass,
)
from ssddbc.data.convert import main as convert_main
from tests.golden import GOLDEN_DIR

GOLDEN = GOLDEN_DIR / "original_lowdigits.npz"

# --- the superclass table -----------------------------------------------------------------

DOC_COUNTS = {
    "trees": (4, 1),
    "flowers": (3, 2),
    "fruits_vegetables": (4, 1),
    "mammals": (20, 3),
    "marine_animals": (8, 2),
    "insects_arthropods": (7, 1),
    "reptiles": (3, 1),
    "humans": (4, 1),
    "furniture": (3, 2),
    "containers": (5, 0),
    "vehicles": (5, 4),
    "electronic_devices": (4, 2),
    "buildings": (4, 0),
    "terrain": (5, 0),
    "weather_phenomena": (1, 0),
}


def test_superclass_table_matches_the_doc() -> None:
    assert list(SUPERCLASSES) == list(DOC_COUNTS)
    for name, (n_known, n_novel) in DOC_COUNTS.items():
        sc = SUPERCLASSES[name]
        assert (sc.n_known, sc.n_novel) == (n_known, n_novel), name
        assert all(c < 80 for c in sc.known_classes) and all(c >= 80 for c in sc.novel_classes)
        mapping = sc.label_mapping
        # ascending renumbering puts the known classes first
        assert sorted(mapping[c] for c in sc.known_classes) == list(range(n_known))
    every = [c for sc in SUPERCLASSES.values() for c in sc.classes]
    assert len(every) == len(set(every)) == 100


# --- digits -------------------------------------------------------------------------------


def test_digits_low_is_the_golden_split() -> None:
    d = load_digits_superclass("digits_low")
    with np.load(GOLDEN) as z:
        assert d.train_size == int(z["train_size"])
        assert np.array_equal(d.features, z["features"])  # bit for bit
        assert np.array_equal(d.targets, z["targets"])
        assert np.array_equal(d.known_mask, z["known_mask"])
        assert np.array_equal(d.labeled_mask, z["labeled_mask"])
        assert np.array_equal(d.indices, z["digits_index"])


@pytest.mark.parametrize(("name", "n", "n_test"), [("digits_low", 901, 150),
                                                   ("digits_high", 896, 149)])  # fmt: skip
def test_digits_superclass_counts(name: str, n: int, n_test: int) -> None:
    d = load_digits_superclass(name)
    digits, known = DIGITS_SUPERCLASSES[name]
    assert d.metadata["all_classes_sorted"] == list(digits)
    assert (d.n, d.d, d.train_size, int(d.test_mask.sum())) == (n, 64, n - n_test, n_test)
    assert d.features.dtype == np.float32
    assert np.allclose(np.linalg.norm(d.features, axis=1), 1.0, atol=1e-6)
    assert sorted(np.unique(d.targets)) == [0, 1, 2, 3, 4]
    assert sorted(np.unique(d.targets[d.known_mask])) == [0, 1, 2]
    known_train = d.known_mask & d.train_mask
    assert d.labeled_mask.sum() == int(0.8 * known_train.sum())
    assert not (d.labeled_mask & ~known_train).any()  # test and novel samples unlabelled
    assert d.metadata["known_classes_orig"] == list(known)
    assert np.array_equal(np.sort(np.unique(d.indices)), np.sort(d.indices))  # no duplicate


def test_digits_cache_builder_is_idempotent(tmp_path: Path) -> None:
    names = build_digits_feature_cache(tmp_path)
    assert names == list_superclasses(tmp_path) == ["digits_high", "digits_low"]
    stats = {n: os.stat(tmp_path / n / "features.npz") for n in names}
    assert build_digits_feature_cache(tmp_path) == names
    for n in names:
        after = os.stat(tmp_path / n / "features.npz")
        assert (after.st_mtime_ns, after.st_ino) == (stats[n].st_mtime_ns, stats[n].st_ino)
    assert not [p for p in (tmp_path / "digits_low").iterdir() if p.name != "features.npz"]
    loaded = load_superclass(tmp_path, "digits_low")
    assert loaded.same_content(load_digits_superclass("digits_low"))
    assert loaded.source == tmp_path / "digits_low" / "features.npz"
    # Another seed is another split: rewritten.
    build_digits_feature_cache(tmp_path, seed=1)
    assert not load_superclass(tmp_path, "digits_low").same_content(loaded)


# --- npz round trip and the original's pickle ----------------------------------------------


def _small(n: int = 12, d: int = 3, train: int = 9) -> SuperclassData:
    rng = np.random.default_rng(0)
    targets = np.arange(n) % 3
    known = targets < 2
    labeled = known & (np.arange(n) < train) & (rng.random(n) < 0.7)
    return SuperclassData(
        name="small",
        features=rng.normal(size=(n, d)).astype(np.float32),
        targets=targets,
        known_mask=known,
        labeled_mask=labeled,
        train_size=train,
        metadata={"superclass_name": "small", "note": "x"},
        indices=np.arange(100, 100 + n),
    )


def _original_dict(data: SuperclassData) -> dict[str, Any]:
    """The dict the original cache script pickles (targets and masks as it builds them)."""
    ts = data.train_size
    out: dict[str, Any] = {}
    for prefix, sl in (("all", slice(None)), ("train", slice(0, ts)), ("test", slice(ts, None))):
        out[f"{prefix}_features"] = data.features[sl]
        # the original accumulates with np.append: float targets and float 0/1 masks
        out[f"{prefix}_targets"] = data.targets[sl].astype(float)
        out[f"{prefix}_known_mask"] = data.known_mask[sl].astype(float)
        out[f"{prefix}_labeled_mask"] = data.labeled_mask[sl].astype(float)
        out[f"{prefix}_indices"] = data.indices[sl]  # type: ignore[index]
    out.update(
        superclass_name=data.name,
        known_classes_mapped={0, 1},
        unknown_classes_mapped={2},
        label_mapping={47: 0, 52: 1, 96: 2},
        train_size=ts,
        test_size=data.n - ts,
        total_size=data.n,
        model_path="/ckpt/model.pt",
        feat_dim=data.d,
        image_size=224,
    )
    return out


def _write_pkl(root: Path, name: str, obj: object) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "features.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def test_npz_round_trip(tmp_path: Path) -> None:
    data = _small()
    path = write_superclass(tmp_path, data)
    assert path == tmp_path / "small" / "features.npz"
    back = load_superclass(tmp_path, "small")
    assert back.same_content(data)
    assert (back.n, back.d, back.train_size) == (12, 3, 9)
    assert back.test_mask.tolist() == [False] * 9 + [True] * 3
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        meta = json.loads(str(z["metadata_json"][()]))
    for prefix in ("all", "train", "test"):
        for f in ("features", "targets", "known_mask", "labeled_mask", "indices"):
            assert f"{prefix}_{f}" in keys
    assert meta["format"] == "ssddbc.feature_cache"
    assert meta["metadata"]["train_size"] == 9


def test_original_pickle_reads_without_the_flag_and_converts(tmp_path: Path) -> None:
    data = _small()
    pkl = _write_pkl(tmp_path, "small", _original_dict(data))
    safe = load_superclass(tmp_path, "small")  # the restricted unpickler: no flag needed
    via_pickle = load_superclass(tmp_path, "small", allow_pickle=True)
    assert safe.same_content(via_pickle) and safe.source == pkl
    assert via_pickle.source == pkl
    assert np.array_equal(via_pickle.features, data.features)
    assert via_pickle.targets.dtype == np.int64 and via_pickle.known_mask.dtype == bool
    assert via_pickle.metadata["known_classes_mapped"] == [0, 1]
    assert via_pickle.metadata["label_mapping"] == {"47": 0, "52": 1, "96": 2}

    out = tmp_path / "converted"
    written = convert_feature_cache(tmp_path, out)
    assert written == [out / "small" / "features.npz"]
    converted = load_superclass(out, "small")
    assert converted.same_content(via_pickle)
    # Converted in place, the npz is preferred and no flag is needed.
    convert_feature_cache(tmp_path)
    assert load_superclass(tmp_path, "small").source == tmp_path / "small" / "features.npz"


def test_convert_cli(tmp_path: Path) -> None:
    _write_pkl(tmp_path, "small", _original_dict(_small()))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert convert_main([str(tmp_path), "--dst", str(tmp_path / "o")]) == 0
    assert out.getvalue().strip() == str(tmp_path / "o" / "small" / "features.npz")
    with redirect_stdout(out), redirect_stderr(err):
        assert convert_main([str(tmp_path / "missing")]) == 2
        assert convert_main([str(tmp_path), "--superclasses", "nope"]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)


def test_single_split_pickle_is_all_test(tmp_path: Path) -> None:
    """The original's extractor can store train_* = None: everything is test data."""
    data = _small()
    d = _original_dict(data)
    for f in ("features", "targets", "known_mask", "labeled_mask", "indices"):
        d[f"train_{f}"] = None
    d.pop("train_size")
    d["all_labeled_mask"] = np.zeros(data.n)
    d["test_labeled_mask"] = np.zeros(data.n)
    for f in ("features", "targets", "known_mask", "indices"):
        d[f"test_{f}"] = d[f"all_{f}"]
    _write_pkl(tmp_path, "single", d)
    got = load_superclass(tmp_path, "single", allow_pickle=True)
    assert got.train_size == 0 and got.test_mask.all()


# --- malformed files ----------------------------------------------------------------------


def _npz_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    path = write_superclass(tmp_path, _small())
    with np.load(path, allow_pickle=False) as z:
        content = {k: z[k] for k in z.files}
    change(content)
    with open(path, "wb") as handle:
        np.savez(handle, **content)
    return path


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda c: c.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(c: dict[str, Any]) -> None:
        c[key] = value(c) if callable(value) else value

    return change


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "missing features": (_drop("all_features"), "all_features"),
    "missing targets": (_drop("all_targets"), "all_targets"),
    "missing known": (_drop("all_known_mask"), "all_known_mask"),
    "missing labeled": (_drop("all_labeled_mask"), "all_labeled_mask"),
    "1-D features": (_set("all_features", lambda c: c["all_features"][:, 0]), "all_features"),
    "nan features": (
        _set("all_features", lambda c: np.where(np.eye(12, 3) > 0, np.nan, c["all_features"])),
        "all_features",
    ),
    "inf features": (
        _set("all_features", lambda c: c["all_features"] * np.float32(np.inf)),
        "all_features",
    ),
    "string features": (_set("all_features", np.full((12, 3), "a")), "all_features"),
    "short targets": (_set("all_targets", lambda c: c["all_targets"][:-1]), "all_targets"),
    "fractional targets": (_set("all_targets", np.linspace(0, 1, 12)), "all_targets"),
    "mask with 2": (_set("all_known_mask", np.full(12, 2)), "all_known_mask"),
    "short mask": (_set("all_labeled_mask", np.zeros(5, dtype=bool)), "all_labeled_mask"),
    "mixed known class": (
        # row 9 is an unlabelled test sample of known class 0
        _set(
            "all_known_mask",
            lambda c: np.r_[c["all_known_mask"][:9], False, c["all_known_mask"][10:]],
        ),
        "all_known_mask",
    ),
    "train plus test != all": (
        _set("test_features", lambda c: c["test_features"][:1]),
        "train_features",
    ),
    "train disagrees": (_set("train_targets", lambda c: c["train_targets"] + 1), "train_targets"),
    "short indices": (_set("all_indices", np.arange(3)), "all_indices"),
    "bad json": (_set("metadata_json", np.array("{not json")), "metadata_json"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_npz_names_file_and_key(tmp_path: Path, case: str) -> None:
    change, key = MALFORMED[case]
    path = _npz_with(tmp_path, change)
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)
    assert repr(key) in err.value.message, err.value.message


def test_labelled_novel_samples_are_read_with_a_warning(tmp_path: Path) -> None:
    # The original research code accepted labelled samples outside the known classes.
    good = _small()
    with pytest.warns(SsddbcWarning, match="not of a known class"):
        stray = SuperclassData(**{**good.__dict__, "labeled_mask": np.ones(12, dtype=bool)})
        write_superclass(tmp_path, stray)
    with pytest.warns(SsddbcWarning, match="not of a known class"):
        data = load_superclass(tmp_path, "small")
    assert data.labeled_mask.all() and not data.known_mask.all()


@pytest.mark.parametrize("case", ["garbage", "truncated", "object array", "not zip"])
def test_unreadable_npz(tmp_path: Path, case: str) -> None:
    path = write_superclass(tmp_path, _small())
    if case == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif case == "not zip":
        path.write_text("hello")
    else:
        with open(path, "wb") as handle:
            np.savez(handle, all_features=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)


@pytest.mark.parametrize("case", ["garbage", "list", "missing key"])
def test_malformed_pickle(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    path = folder / "features.pkl"
    if case == "garbage":
        path.write_bytes(b"definitely not a pickle")
    elif case == "list":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    else:
        d = _original_dict(_small())
        d.pop("all_targets")
        path.write_bytes(pickle.dumps(d))
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small", allow_pickle=True)
    assert err.value.path == str(path)
    with pytest.raises(FeatureCacheError):
        convert_feature_cache(tmp_path)
    assert not (folder / "features.npz").exists()


def test_missing_things(tmp_path: Path) -> None:
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path / "nope", "x")
    assert err.value.path == str(tmp_path / "nope")
    with pytest.raises(FeatureCacheError) as err:
        list_superclasses(tmp_path / "nope")
    write_superclass(tmp_path, _small())
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "trees")
    assert err.value.path == str(tmp_path / "trees") and "small" in err.value.message
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "empty")
    assert err.value.path == str(tmp_path / "empty")
    assert list_superclasses(tmp_path) == ["small"]
    for bad in ("../small", "a/b", "", ".."):
        with pytest.raises(InvalidInputError):
            load_superclass(tmp_path, bad)


def test_errors_pickle_across_processes(tmp_path: Path) -> None:
    err = FeatureCacheError(str(tmp_path), "key 'x': bad")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.message) == (err.path, err.message)


def test_write_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_superclass(tmp_path, _small())
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    changed = SuperclassData(**{**_small().__dict__, "metadata": {"note": "changed"}})
    with pytest.raises(OSError, match="disk full"):
        write_superclass(tmp_path, changed)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["features.npz"]


def test_superclass_data_validates_construction() -> None:
    good = _small()
    with pytest.raises(InvalidInputError) as err:
        SuperclassData(**{**good.__dict__, "train_size": 99})
    assert err.value.argument == "train_size"
    with pytest.raises(InvalidInputError) as err:
        SuperclassData(**{**good.__dict__, "labeled_mask": np.ones(5, dtype=bool)})
    assert err.value.argument == "all_labeled_mask"


def test_corrupted_member_is_reported(tmp_path: Path) -> None:
    path = write_superclass(tmp_path, _small())
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("all_features.npy")
    # flip a byte inside the stored array: the zip CRC check catches it
    pos = info.header_offset + 30 + len(info.filename) + 200
    raw[pos] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FeatureCacheError) as err:
        load_superclass(tmp_path, "small")
    assert err.value.path == str(path)


# --- split helper and synthetic data ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=0, max_size=80),
    st.sets(st.integers(0, 6)),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31),
    st.booleans(),
)
def test_make_gcd_split_properties(
    targets: list, known: set, fraction: float, seed: int, use_train: bool
) -> None:
    t = np.array(targets, dtype=np.int64)
    train = (np.arange(t.size) % 3 != 0) if use_train else None
    known_mask, labeled = make_gcd_split(t, known, labeled_fraction=fraction, train_mask=train,
                                         seed=seed)  # fmt: skip
    assert np.array_equal(known_mask, np.isin(t, list(known)))
    eligible = known_mask & (train if train is not None else True)
    assert not (labeled & ~eligible).any()
    assert labeled.sum() == int(fraction * eligible.sum())
    again = make_gcd_split(t, known, labeled_fraction=fraction, train_mask=train, seed=seed)
    assert np.array_equal(again[1], labeled)


def test_make_gcd_split_bad_input() -> None:
    with pytest.raises(InvalidInputError) as err:
        make_gcd_split([0, 1], [0], labeled_fraction=1.5)
    assert err.value.argument == "labeled_fraction"
    with pytest.raises(InvalidInputError) as err:
        make_gcd_split([0.5, 1], [0])
    assert err.value.argument == "targets"
    with pytest.raises(InvalidInputError) as err:
        make_gcd_split([0, 1], [0], train_mask=[0, 2])
    assert err.value.argument == "train_mask"


def test_synthetic_superclass() -> None:
    s = make_synthetic_superclass()
    assert (s.n, s.d, s.train_size) == (3000, 768, 2500)
    assert s.features.dtype == np.float32 and s.targets.dtype == np.int64
    assert np.allclose(np.linalg.norm(s.features, axis=1), 1.0, atol=1e-5)
    assert np.bincount(s.targets).tolist() == [600] * 5
    assert sorted(np.unique(s.targets[s.known_mask])) == [0, 1, 2]
    assert s.labeled_mask.sum() == int(0.8 * (s.known_mask & s.train_mask).sum())
    assert not s.labeled_mask[s.train_size :].any()
    small = make_synthetic_superclass(n=60, d=8, seed=3)
    assert small.same_content(make_synthetic_superclass(n=60, d=8, seed=3))
    assert not small.same_content(make_synthetic_superclass(n=60, d=8, seed=4))
    with pytest.raises(InvalidInputError):
        make_synthetic_superclass(n_known=6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 2**31), st.data())
def test_npz_round_trip_property(n: int, d: int, seed: int, data: st.DataObject) -> None:
    import tempfile

    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 4, n)
    known = targets < 2
    train_size = data.draw(st.integers(0, n))
    labeled = known & (np.arange(n) < train_size) & (rng.random(n) < 0.5)
    original = SuperclassData(
        name="s",
        features=rng.normal(size=(n, d)).astype(np.float32),
        targets=targets,
        known_mask=known,
        labeled_mask=labeled,
        train_size=train_size,
        metadata={"note": data.draw(st.text(max_size=10)), "classes": {1, 0}},
        indices=None if data.draw(st.booleans()) else rng.permutation(n),
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_superclass(tmp, original)
        back = load_superclass(tmp, "s")
        if original.indices is None:  # written as arange(n)
            assert np.array_equal(back.indices, np.arange(n))
        else:
            assert back.same_content(original)
        assert back.metadata["classes"] == [0, 1]
        assert np.array_equal(back.features, original.features)
        # writing the original-layout dict gives the same file content
        write_superclass(Path(tmp) / "again", back.to_dict())
        assert load_superclass(Path(tmp) / "again", "s").same_content(back)
