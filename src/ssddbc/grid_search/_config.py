"""The run configuration (``config.json``) and the run's identity.

A :class:`RunConfig` is everything that defines a run; ``--resume`` reads it back instead of
the command line. Its :attr:`RunConfig.identity` records a fingerprint of every input that
determines the rows of ``results.csv``: per superclass the features (knncache's content
fingerprint), targets, known and labelled masks, train size and evaluation mask; for the
run the grid, the algorithm parameters, the metric, the search plan, the neighbour-graph
engine (``knn``: method and parameters), the evaluation split and the algorithm's version.
Where the knncache stores live (``knn_cache_dir``, ``knn_max_bytes``) and the environment
(package versions, Python, host, start and end time) are recorded too, but are not part of
the identity: they never change a row. ``--resume`` recomputes the identity from the files as
they are now and refuses, naming the first component that differs, whenever anything changed:
rows computed from different inputs are never mixed in one journal.
"""

from __future__ import annotations

import datetime
import importlib
import json
import numbers
import os
import platform
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ssddbc import __version__
from ssddbc._errors import RunFolderError, SsddbcError
from ssddbc._metric import METRICS
from ssddbc.grid_search._inputs import check_knn
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.ssddbc._params import AlgorithmParams

__all__ = [
    "ALGORITHM_VERSION",
    "CONFIG_VERSION",
    "RunConfig",
    "compute_identity",
    "describe",
    "difference",
    "environment",
    "now",
]

#: Packages whose versions config.json records (module names; absent ones are skipped).
_PACKAGES = ("knncache", "ssddbc", "numpy", "faiss", "sklearn", "scipy")


def now() -> str:
    """The current time as an ISO 8601 string with the UTC offset (seconds)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def environment() -> dict[str, Any]:
    """What ran the search: package versions, Python, host and the start time.

    ``finished`` is filled in (and rewritten on every resumed invocation) when a run ends.
    """
    uts = os.uname()
    versions: dict[str, str | None] = {}
    for module in _PACKAGES:
        try:
            versions[module] = str(getattr(importlib.import_module(module), "__version__", "?"))
        except ImportError:
            versions[module] = None
    return {
        "packages": versions,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        # os.uname, not platform.platform(): that one starts a `uname -p` child process.
        "platform": f"{uts.sysname} {uts.release} {uts.machine}",
        "host": socket.gethostname(),
        "started": now(),
        "finished": None,
    }


#: Format of config.json. Version 1 (before run identities) cannot be resumed.
CONFIG_VERSION = 2
#: Changes whenever the same inputs could give other rows.
ALGORITHM_VERSION = f"ssddbc {__version__}"


def _digest(array: Any) -> str:
    arr = np.ascontiguousarray(array)
    h = xxhash.xxh3_128()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json`` and reused by ``--resume``.

    Attributes
    ----------
    feature_cache_dir : str
        Absolute path of the feature cache.
    superclasses : list of str
    k_values, density_values : list of int
        The grid, as explicit values (the command line's half-open ranges resolved).
    params : AlgorithmParams
    plan : SearchPlan
    eval_split : {"test", "unlabelled"}
    allow_pickle : bool
    knn_method : str
        The neighbour-graph engine (``"exact"``, the default, or ``"hnsw"``/``"ivf"``).
    knn_params : dict
        The engine's parameters as given (empty for exact).
    identity : dict
        See :func:`compute_identity` (empty until the inputs were loaded).
    metric : {"euclidean", "cosine"}
    knn_cache_dir : str or None
        Where the per-superclass stores live (None: ``<superclass>/knn_cache/`` in the
        feature cache).
    knn_max_bytes : int or None
        Size cap of each store (LRU eviction); None: no limit.
    environment : dict
        Package versions, Python, host, start and end time (:func:`environment`).
    """

    feature_cache_dir: str
    superclasses: list[str]
    k_values: list[int]
    density_values: list[int]
    params: AlgorithmParams
    plan: SearchPlan
    eval_split: str
    allow_pickle: bool
    identity: dict[str, Any] = field(default_factory=dict)
    metric: str = "euclidean"
    knn_cache_dir: str | None = None
    knn_max_bytes: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    knn_method: str = "exact"
    knn_params: dict[str, Any] = field(default_factory=dict)

    def knn(self) -> dict[str, Any]:
        """The neighbour-graph engine as recorded in ``config.json`` and the identity."""
        return {"method": self.knn_method, "params": dict(self.knn_params)}

    def cells(self) -> list[tuple[str, int, int]]:
        """Every (superclass, k, density percentile) in grid order."""
        return [
            (s, k, dp)
            for s in self.superclasses
            for k in self.k_values
            for dp in self.density_values
        ]

    def to_json(self, command: list[str]) -> dict[str, Any]:
        """The ``config.json`` payload."""
        return {
            "version": CONFIG_VERSION,
            "feature_cache_dir": self.feature_cache_dir,
            "superclasses": list(self.superclasses),
            "k_values": list(self.k_values),
            "density_values": list(self.density_values),
            "params": self.params.as_dict(),
            "plan": self.plan.as_dict(),
            "eval_split": self.eval_split,
            "metric": self.metric,
            "allow_pickle": self.allow_pickle,
            "knn_cache_dir": self.knn_cache_dir,
            "knn_max_bytes": self.knn_max_bytes,
            "knn": self.knn(),
            "identity": self.identity,
            "environment": self.environment,
            "command": command,
        }

    @classmethod
    def from_json(cls, path: Path, raw: Any) -> RunConfig:
        """Rebuild from :meth:`to_json` output, checking every field.

        Raises
        ------
        RunFolderError
            A missing or wrongly typed field (naming it), or an older format.
        """

        def bad(name: str, what: str) -> RunFolderError:
            return RunFolderError(str(path), f"field {name!r} {what}")

        if not isinstance(raw, dict):
            raise RunFolderError(str(path), "is not a JSON object")
        version = raw.get("version")
        if version != CONFIG_VERSION:
            raise RunFolderError(
                str(path),
                f"format version {version!r}, this ssddbc-search reads {CONFIG_VERSION}; "
                "start a new run",
            )

        def strings(name: str) -> list[str]:
            value = raw.get(name)
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise bad(name, f"must be a non-empty list of strings, got {value!r}")
            return value

        def ints(name: str) -> list[int]:
            value = raw.get(name)
            if (
                not isinstance(value, list)
                or not value
                or not all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
                )
            ):
                raise bad(name, f"must be a non-empty list of integers, got {value!r}")
            return [int(v) for v in value]

        superclasses = strings("superclasses")
        if len(set(superclasses)) != len(superclasses):
            raise bad("superclasses", f"names a superclass twice: {superclasses!r}")
        fcd = raw.get("feature_cache_dir")
        if not isinstance(fcd, str) or not fcd:
            raise bad("feature_cache_dir", f"must be a path, got {fcd!r}")
        if raw.get("eval_split") not in ("test", "unlabelled"):
            raise bad(
                "eval_split", f"must be 'test' or 'unlabelled', got {raw.get('eval_split')!r}"
            )
        if not isinstance(raw.get("allow_pickle"), bool):
            raise bad("allow_pickle", f"must be true or false, got {raw.get('allow_pickle')!r}")
        identity = raw.get("identity")
        if not isinstance(identity, dict) or not identity:
            raise bad("identity", "is missing or empty")
        # Runs from before the metric was a choice were all Euclidean.
        metric = raw.get("metric", "euclidean")
        if metric not in METRICS:
            raise bad("metric", f"must be one of {list(METRICS)!r}, got {metric!r}")
        if "metric" not in raw:
            identity = {**identity, "metric": "euclidean"}
        knn_dir = raw.get("knn_cache_dir")
        if knn_dir is not None and (not isinstance(knn_dir, str) or not knn_dir):
            raise bad("knn_cache_dir", f"must be a path or null, got {knn_dir!r}")
        cap = raw.get("knn_max_bytes")
        if cap is not None and (
            isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 0
        ):
            raise bad("knn_max_bytes", f"must be a byte count or null, got {cap!r}")
        env = raw.get("environment", {})
        if not isinstance(env, dict):
            raise bad("environment", f"must be an object, got {env!r}")
        try:
            params = AlgorithmParams.from_dict(raw.get("params"))
        except SsddbcError as exc:
            raise bad("params", f"is invalid ({exc})") from None
        plan_raw = raw.get("plan")
        try:
            if not isinstance(plan_raw, dict):
                raise TypeError(f"expected an object, got {plan_raw!r}")
            plan = SearchPlan(**plan_raw)
        except (TypeError, SsddbcError) as exc:
            raise bad("plan", f"is invalid ({exc})") from None
        knn_raw = raw.get("knn", {"method": "exact", "params": {}})
        try:
            if not isinstance(knn_raw, dict) or set(knn_raw) != {"method", "params"}:
                raise TypeError(f"expected {{'method': ..., 'params': ...}}, got {knn_raw!r}")
            knn_method, knn_params = check_knn(knn_raw["method"], knn_raw["params"])
        except (TypeError, SsddbcError) as exc:
            raise bad("knn", f"is invalid ({exc})") from None
        return cls(
            feature_cache_dir=fcd,
            superclasses=superclasses,
            k_values=ints("k_values"),
            density_values=ints("density_values"),
            params=params,
            plan=plan,
            eval_split=raw["eval_split"],
            allow_pickle=raw["allow_pickle"],
            identity=identity,
            metric=metric,
            knn_cache_dir=knn_dir,
            knn_max_bytes=None if cap is None else int(cap),
            environment=env,
            knn_method=knn_method,
            knn_params=knn_params,
        )

    @classmethod
    def read(cls, run_dir: Path) -> RunConfig:
        """Read ``run_dir/config.json`` (one-line :class:`RunFolderError` on any problem)."""
        path = run_dir / "config.json"
        if not path.is_file():
            raise RunFolderError(str(run_dir), "no config.json (not a run folder)")
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunFolderError(str(path), f"unreadable run configuration ({exc})") from None
        return cls.from_json(path, raw)


def compute_identity(cfg: RunConfig, data: Mapping[str, tuple[Any, Any, str]]) -> dict[str, Any]:
    """The identity of a run: what determines its rows (see the module docstring).

    Parameters
    ----------
    cfg : RunConfig
    data : mapping
        ``{superclass: (SuperclassData, eval_mask, features_fingerprint)}``.
    """
    per = {}
    for name in cfg.superclasses:
        d, eval_mask, fp = data[name]
        per[name] = {
            "features": fp,
            "targets": _digest(np.asarray(d.targets, dtype=np.int64)),
            "known_mask": _digest(np.asarray(d.known_mask, dtype=bool)),
            "labeled_mask": _digest(np.asarray(d.labeled_mask, dtype=bool)),
            "train_size": int(d.train_size),
            "eval_mask": _digest(np.asarray(eval_mask, dtype=bool)),
        }
    return {
        "algorithm": ALGORITHM_VERSION,
        "grid": {"k_values": list(cfg.k_values), "density_values": list(cfg.density_values)},
        "params": cfg.params.as_dict(),
        "plan": cfg.plan.as_dict(),
        "knn": cfg.knn(),
        "eval_split": cfg.eval_split,
        "metric": cfg.metric,
        "superclasses": per,
    }


def difference(recorded: Any, current: Any, where: str = "") -> str | None:
    """The first component (``"superclasses.digits_low.labeled_mask"``) that differs, or None."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        for key in list(recorded) + [k for k in current if k not in recorded]:
            path = f"{where}.{key}" if where else str(key)
            if key not in recorded or key not in current:
                return path
            found = difference(recorded[key], current[key], path)
            if found is not None:
                return found
        return None
    return None if recorded == current else (where or "identity")


def describe(component: str) -> str:
    """A reader's phrase for a component path from :func:`difference`."""
    parts = component.split(".")
    if parts[0] == "superclasses" and len(parts) >= 3:
        return f"{parts[2]} of superclass {parts[1]!r}"
    if parts[0] == "superclasses" and len(parts) == 2:
        return f"the superclass set ({parts[1]!r})"
    names = {
        "algorithm": "the ssddbc version",
        "grid": "the grid",
        "params": "the algorithm parameters",
        "plan": "the search plan",
        "knn": "the neighbour-graph method (--knn_method/--knn_params)",
        "eval_split": "the evaluation split",
        "metric": "the metric",
    }
    return names.get(parts[0], component)
