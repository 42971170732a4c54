"""The original's ``features.pkl`` loads without a flag; a pickle that names code never runs.

Every hostile payload below creates a marker file if it is ever executed; after each refusal
the marker must not exist. One payload is also loaded with ``allow_pickle=True`` to show the
marker mechanism is real (that flag unpickles anything, by design).
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssddbc import FeatureCacheError, SsddbcError, UnsafePickleError
from ssddbc.data import FeatureLoader, load_superclass, load_superclass_file
from ssddbc.data._safe_pickle import ALLOWED_GLOBALS, SafeUnpickler, safe_load


def _original_dict(n: int = 12, train: int = 9) -> dict[str, Any]:
    """A cache in the original's layout: arrays, numpy scalars, strings, containers."""
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n, 4)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    targets = np.array([0, 1, 2] * (n // 3), dtype=np.int64)
    known = targets < 2
    labeled = known & (np.arange(n) < train) & (np.arange(n) % 2 == 0)
    idx = np.arange(n, dtype=np.int64) + 100
    out: dict[str, Any] = {}
    for name, arr in (
        ("features", feats),
        ("targets", targets),
        ("known_mask", known),
        ("labeled_mask", labeled),
        ("indices", idx),
    ):
        out[f"all_{name}"] = arr
        out[f"train_{name}"] = arr[:train]
        out[f"test_{name}"] = arr[train:]
    out.update(
        superclass_name="small",
        train_size=train,
        test_size=n - train,
        total_size=n,
        feat_dim=np.int64(4),
        known_classes=[47, 52],
        unknown_classes=(96,),
        known_classes_mapped={0, 1},
        label_mapping={47: 0, 52: 1, 96: 2},
        model_path=None,
        prop_train_labels=0.8,
        use_l2=np.bool_(True),
    )
    return out


def _write(root: Path, name: str, payload: bytes) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "features.pkl"
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_original_layout_loads_without_a_flag(tmp_path: Path, protocol: int) -> None:
    d = _original_dict()
    path = _write(tmp_path, "small", pickle.dumps(d, protocol=protocol))
    data = load_superclass(tmp_path, "small")  # no allow_pickle
    assert data.source == path and data.train_size == 9
    np.testing.assert_array_equal(data.features, d["all_features"])
    np.testing.assert_array_equal(data.labeled_mask, d["all_labeled_mask"])
    np.testing.assert_array_equal(data.indices, d["all_indices"])
    assert data.metadata["label_mapping"] == {"47": 0, "52": 1, "96": 2}
    assert data.same_content(load_superclass(tmp_path, "small", allow_pickle=True))
    # The original's loader class reads it the same way.
    loaded = FeatureLoader(tmp_path).load("small")
    assert loaded is not None
    np.testing.assert_array_equal(loaded["test_targets"], d["test_targets"])


def test_numpy_1_spelling_of_the_array_globals(tmp_path: Path) -> None:
    """Caches written by numpy 1.x name ``numpy.core.multiarray``; numpy 2 ``numpy._core``."""
    raw = pickle.dumps(_original_dict(), protocol=0)
    assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
    old = raw.replace(b"numpy._core.", b"numpy.core.")
    _write(tmp_path, "small", old)
    assert load_superclass(tmp_path, "small").n == 12


def test_allow_list_is_exactly_arrays_dtypes_and_builtins() -> None:
    modules = {m for m, _ in ALLOWED_GLOBALS}
    assert modules == {
        "numpy",
        "numpy.core.multiarray",
        "numpy._core.multiarray",
        "numpy.core.numeric",
        "numpy._core.numeric",
        "builtins",
        "_codecs",
    }
    builtins = {n for m, n in ALLOWED_GLOBALS if m == "builtins"}
    assert not builtins & {"eval", "exec", "open", "getattr", "__import__", "compile"}
    assert issubclass(SafeUnpickler, pickle.Unpickler)


class _Payload:
    """Writes the marker when unpickled unrestricted (via ``__reduce__``)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (_touch, (self.marker,))


def _touch(path: str) -> None:
    Path(path).write_text("ran")


class _Reducer:
    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


def _global_pickle(module: str, name: str, arg: str) -> bytes:
    """Protocol-0 pickle of ``{'all_features': module.name(arg)}``, naming the global as given."""
    return (
        b"(dp0\nVall_features\np1\nc" + module.encode() + b"\n" + name.encode() + b"\n"
        b"(V" + arg.encode() + b"\ntp2\nRp3\ns."
    )


def _payloads(marker: Path) -> dict[str, tuple[bytes, str]]:
    m = str(marker)
    with_dict = _original_dict()
    with_dict["extra"] = _Payload(m)
    hidden = _original_dict()
    hidden["objects"] = np.array([_Payload(m)], dtype=object)
    return {
        "os.system": (_global_pickle("os", "system", f"touch {m}"), "os.system"),
        "posix.system": (
            pickle.dumps({"all_features": _Reducer(os.system, (f"touch {m}",))}, protocol=4),
            f"{os.system.__module__}.system",
        ),
        "builtins.eval": (
            pickle.dumps(
                {"all_features": _Reducer(eval, (f"open({m!r}, 'w').close()",))}, protocol=2
            ),
            "builtins.eval",
        ),
        "subprocess.Popen": (
            pickle.dumps({"all_features": _Reducer(subprocess.Popen, (["touch", m],))}),
            "subprocess.Popen",
        ),
        "custom class": (pickle.dumps(with_dict, protocol=4), f"{__name__}._touch"),
        "custom class in an object array": (pickle.dumps(hidden, protocol=5), f"{__name__}._touch"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "os.system",
        "posix.system",
        "builtins.eval",
        "subprocess.Popen",
        "custom class",
        "custom class in an object array",
    ],
)
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path: Path, case: str) -> None:
    marker = tmp_path / "marker"
    payload, global_name = _payloads(marker)[case]
    path = _write(tmp_path, "evil", payload)
    with pytest.raises(UnsafePickleError) as info:
        load_superclass(tmp_path, "evil")
    err = info.value
    assert isinstance(err, FeatureCacheError) and isinstance(err, SsddbcError)
    assert f"{err.module}.{err.name}" == global_name and global_name in str(err)
    assert err.path == str(path) and "nothing was run" in str(err)
    assert pickle.loads(pickle.dumps(err)).module == err.module
    with pytest.raises(UnsafePickleError):
        load_superclass_file(path)
    with pytest.raises(UnsafePickleError):
        FeatureLoader(tmp_path).load("evil")
    with pytest.raises(UnsafePickleError):
        safe_load(io.BytesIO(payload))
    assert not marker.exists()


def test_the_marker_is_real_with_allow_pickle(tmp_path: Path) -> None:
    """allow_pickle=True is the opt-in to unrestricted unpickling: the payload does run."""
    marker = tmp_path / "marker"
    payload, _ = _payloads(marker)["custom class"]
    _write(tmp_path, "evil", payload)
    load_superclass(tmp_path, "evil", allow_pickle=True)
    assert marker.read_text() == "ran"


def test_command_line_refusal_is_exit_2(tmp_path: Path) -> None:
    from ssddbc.testing.test_superclass import main

    marker = tmp_path / "marker"
    _write(tmp_path, "evil", _payloads(marker)["os.system"][0])
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = main(["--feature_cache_dir", str(tmp_path), "--superclass", "evil"])
    assert code == 2 and "os.system" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1
    assert not marker.exists()


def test_malformed_pickle_is_a_feature_cache_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad", pickle.dumps(_original_dict())[:-40])
    with pytest.raises(FeatureCacheError) as info:
        load_superclass(tmp_path, "bad")
    assert not isinstance(info.value, UnsafePickleError) and info.value.path == str(path)


@pytest.mark.slow
def test_batch_runner_refuses_with_exit_2_and_runs_nothing(tmp_path: Path) -> None:
    import sys

    marker = tmp_path / "marker"
    _write(tmp_path / "cache", "evil", _payloads(marker)["os.system"][0])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssddbc.grid_search.batch_runner",
            "--feature_cache_dir",
            str(tmp_path / "cache"),
            "--output_dir",
            str(tmp_path / "runs"),
            "--no_parallel",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2 and "os.system" in proc.stderr
    assert not marker.exists()
