"""Pseudo-labels of a selected configuration: the per-sample arrays and their ``.npz`` file.

The file (``<run>/<superclass>/pseudo_labels.npz`` in a batch run, or where
:meth:`~ssddbc.grid_search.api.ClusteringSearchResult.save_pseudo_labels` puts it) is a plain
``numpy.savez`` archive that ``np.load(path)`` reads without ``allow_pickle``:

================  ==========  =================================================================
key               dtype       per sample (shape ``(N,)``) unless said otherwise
================  ==========  =================================================================
``indices``       int64       its index in the feature cache (``all_indices``; ``0..N-1`` when
                              the cache has none, or what the API caller passed)
``labels``        int64       its assigned class (see below)
``clusters``      int64       its cluster id at the selected configuration, ``0..C-1``
``core_mask``     bool        True for the core points (the dense anchors of the clusters)
``densities``     float32     its absolute k-NN density
``labeled_mask``  bool        True where its label was used
``best_params_json``  str     0-d: JSON object, the selected ``k`` and ``density_percentile``
``metadata_json``     str     0-d: JSON object: ``format``, ``version``, ``n_samples``,
                              ``n_clusters``, ``cluster_to_class``, ``novel_clusters``,
                              ``novel_label_start``, the selected configuration's metrics, ...
================  ==========  =================================================================

**Assigned class.** A cluster with labelled members takes the class most of them carry (a tie
goes to the smallest class id); a cluster without labelled members is *novel* and gets a new
id: novel ids are consecutive, in increasing cluster order, from ``novel_label_start`` = one
past the largest class id among the labelled samples (0 with none). They name no known class
and are not the novel classes' true ids. Only labelled samples' classes are read.

The names ``indices``, ``labels``, ``core_mask`` and ``densities`` are those the original
research code's training script reads; its ``best_params``/``metadata`` (pickled dicts, which
it treats as optional) are deliberately absent, the same content is JSON under other names.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from knncache import atomic_write
from ssddbc._errors import InvalidInputError, RunFolderError
from ssddbc.grid_search._inputs import LABELED, TARGETS, SharedInputs
from ssddbc.grid_search._tasks import ConfigTask, run_configuration
from ssddbc.ssddbc._params import AlgorithmParams
from ssddbc.ssddbc._result import ClusteringResult

__all__ = [
    "FILE_NAME",
    "FORMAT",
    "VERSION",
    "PseudoLabels",
    "assign_classes",
    "build",
    "read_pseudo_labels",
    "rerun_selected",
    "write_pseudo_labels",
]

#: The file's name inside ``<run>/<superclass>/``.
FILE_NAME = "pseudo_labels.npz"
#: ``metadata_json["format"]`` and ``["version"]`` of this layout.
FORMAT = "ssddbc-pseudo-labels"
VERSION = 1

#: Array keys, their dtypes.
_ARRAYS: dict[str, Any] = {
    "indices": np.int64,
    "labels": np.int64,
    "clusters": np.int64,
    "core_mask": np.bool_,
    "densities": np.float32,
    "labeled_mask": np.bool_,
}
_JSON = ("best_params_json", "metadata_json")
#: A pseudo-labels file larger than this is refused unread (about 60 bytes a sample).
_MAX_BYTES = 1 << 34


def assign_classes(
    clusters: npt.ArrayLike, targets: npt.ArrayLike, labeled_mask: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], dict[int, int], list[int], int]:
    """Each sample's class from its cluster's labelled members (see the module docstring).

    Parameters
    ----------
    clusters : array of shape (N,)
        Cluster id of every sample.
    targets : array of shape (N,)
        Class ids; only the labelled samples' are read.
    labeled_mask : array of shape (N,)
        True where the label may be used.

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        The assigned class of every sample.
    cluster_to_class : dict
        Cluster id -> assigned class, every cluster.
    novel_clusters : list of int
        Sorted ids of the clusters without labelled members.
    novel_label_start : int
        The first novel id.
    """
    cl = np.asarray(clusters, dtype=np.int64)
    lab = np.asarray(labeled_mask, dtype=bool)
    tg = np.asarray(targets)
    known_t = tg[lab].astype(np.int64)
    start = int(known_t.max()) + 1 if known_t.size else 0
    ids = np.unique(cl)
    mapping: dict[int, int] = {}
    novel: list[int] = []
    lab_clusters = cl[lab]
    for cid in ids.tolist():
        members = known_t[lab_clusters == cid]
        if members.size == 0:
            novel.append(int(cid))
            continue
        values, counts = np.unique(members, return_counts=True)
        mapping[int(cid)] = int(values[int(np.argmax(counts))])  # ties: smallest class id
    for j, cid in enumerate(novel):
        mapping[cid] = start + j
    mapping = {c: mapping[c] for c in ids.tolist()}
    lookup = np.array([mapping[c] for c in ids.tolist()], dtype=np.int64)
    labels = lookup[np.searchsorted(ids, cl)] if cl.size else np.empty(0, np.int64)
    return labels, mapping, novel, start


@dataclass(frozen=True)
class PseudoLabels:
    """A selected configuration's per-sample result (the file's arrays).

    Attributes
    ----------
    indices, labels, clusters, core_mask, densities, labeled_mask : ndarray of shape (N,)
        As the module docstring's table.
    best_params : dict
        ``{"k": ..., "density_percentile": ...}``.
    metadata : dict
        JSON-able facts (see the table); ``cluster_to_class`` keys are strings there.
    """

    indices: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    clusters: npt.NDArray[np.int64]
    core_mask: npt.NDArray[np.bool_]
    densities: npt.NDArray[np.float32]
    labeled_mask: npt.NDArray[np.bool_]
    best_params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster_to_class(self) -> dict[int, int]:
        """Cluster id -> assigned class, every cluster."""
        ids, first = np.unique(self.clusters, return_index=True)
        return {int(c): int(self.labels[i]) for c, i in zip(ids, first, strict=True)}

    @property
    def novel_clusters(self) -> list[int]:
        """Sorted ids of the clusters without labelled members."""
        ids = np.unique(self.clusters)
        return [int(c) for c in ids[~np.isin(ids, self.clusters[self.labeled_mask])]]

    def with_indices(self, indices: npt.ArrayLike | None) -> PseudoLabels:
        """The same result with ``indices`` replaced (None keeps them).

        Raises
        ------
        InvalidInputError
            ``indices`` is not a 1-D integer array of length N.
        """
        if indices is None:
            return self
        idx = np.asarray(indices)
        n = self.labels.shape[0]
        if idx.shape != (n,) or (idx.size and idx.dtype.kind not in "iu"):
            raise InvalidInputError(
                "indices", f"expected {n} integers, got shape {idx.shape} dtype {idx.dtype}"
            )
        return PseudoLabels(
            idx.astype(np.int64),
            self.labels,
            self.clusters,
            self.core_mask,
            self.densities,
            self.labeled_mask,
            dict(self.best_params),
            dict(self.metadata),
        )


def build(
    out: ClusteringResult,
    targets: npt.ArrayLike,
    labeled_mask: npt.ArrayLike,
    *,
    best_params: Mapping[str, Any],
    indices: npt.ArrayLike | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> PseudoLabels:
    """:class:`PseudoLabels` of one clustering (``indices`` default ``0..N-1``)."""
    clusters = np.asarray(out.labels, dtype=np.int64)
    n = clusters.shape[0]
    lab = np.asarray(labeled_mask, dtype=bool)
    labels, mapping, novel, start = assign_classes(clusters, targets, lab)
    core = np.zeros(n, dtype=bool)
    for members in out.core_clusters:
        core[np.fromiter(members, dtype=np.int64, count=len(members))] = True
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "n_samples": int(n),
        "n_clusters": int(out.n_clusters),
        "n_core": int(core.sum()),
        "n_labeled": int(lab.sum()),
        "cluster_to_class": {str(c): v for c, v in mapping.items()},
        "novel_clusters": novel,
        "novel_label_start": start,
        **dict(metadata or {}),
    }
    result = PseudoLabels(
        np.arange(n, dtype=np.int64),
        labels,
        clusters,
        core,
        np.asarray(out.densities, dtype=np.float32),
        lab.copy(),
        {k: int(v) for k, v in best_params.items()},
        meta,
    )
    return result.with_indices(indices)


def rerun_selected(
    shared: SharedInputs,
    k: int,
    density_percentile: int,
    params: AlgorithmParams,
    *,
    indices: npt.ArrayLike | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[ClusteringResult, PseudoLabels]:
    """Rerun one configuration here and build its :class:`PseudoLabels`.

    The one route from a selected cell to its per-sample result, for the API and the batch
    run: results crossing the process boundary stay small, and the algorithm is
    deterministic, so the rerun gives the partition that was scored.
    """
    task = ConfigTask(shared=shared, k=k, density_percentile=density_percentile, params=params)
    out, res = run_configuration(task)
    split = res.split
    pseudo = build(
        out,
        split[TARGETS],
        split[LABELED].astype(bool),
        best_params={"k": k, "density_percentile": density_percentile},
        indices=indices,
        metadata=metadata,
    )
    return out, pseudo


def _finite(obj: Any) -> Any:
    """JSON-able: NaN and infinities become null (strict JSON has neither)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def write_pseudo_labels(path: str | os.PathLike[str], pseudo: PseudoLabels) -> Path:
    """Write ``pseudo`` to ``path`` atomically (temporary file, fsync, rename); return it."""
    payload: dict[str, Any] = {
        key: np.ascontiguousarray(getattr(pseudo, key), dtype=dtype)
        for key, dtype in _ARRAYS.items()
    }
    payload["best_params_json"] = np.array(json.dumps(pseudo.best_params, sort_keys=True))
    payload["metadata_json"] = np.array(json.dumps(_finite(pseudo.metadata), allow_nan=False))

    def write(handle: BinaryIO) -> None:
        np.savez(handle, **payload)

    target = Path(path)
    atomic_write(target, write)
    return target


def read_pseudo_labels(path: str | os.PathLike[str]) -> PseudoLabels:
    """Read and check a pseudo-labels file, without unpickling anything.

    Raises
    ------
    RunFolderError
        Naming the file and what is wrong: not a regular file, not an ``.npz``, a missing
        key, a wrong dtype or shape, unparsable JSON.
    """
    where = str(path)

    def bad(message: str) -> RunFolderError:
        return RunFolderError(where, message)

    try:
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise bad(f"cannot open ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise bad("not a regular file")
        if info.st_size > _MAX_BYTES:
            raise bad(f"{info.st_size} bytes, more than a pseudo-labels file can be")
        try:
            with np.load(handle, allow_pickle=False) as data:
                missing = [k for k in (*_ARRAYS, *_JSON) if k not in data.files]
                if missing:
                    raise bad(f"key {missing[0]!r} missing (expected {[*_ARRAYS, *_JSON]})")
                arrays = {k: data[k] for k in (*_ARRAYS, *_JSON)}
        except RunFolderError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise bad(f"not a pseudo-labels .npz ({type(exc).__name__}: {exc})") from None
    n = arrays["labels"].shape[0] if arrays["labels"].ndim == 1 else -1
    for key, dtype in _ARRAYS.items():
        a = arrays[key]
        if a.dtype != np.dtype(dtype) or a.shape != (n,):
            raise bad(
                f"key {key!r}: expected {np.dtype(dtype)} of shape ({n},), got {a.dtype} "
                f"of shape {a.shape}"
            )
    parsed = {}
    for key in _JSON:
        a = arrays[key]
        if a.shape != () or a.dtype.kind != "U":
            raise bad(f"key {key!r}: expected a 0-d string array, got {a.dtype} {a.shape}")
        try:
            value = json.loads(str(a))
        except ValueError as exc:
            raise bad(f"key {key!r}: not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise bad(f"key {key!r}: expected a JSON object, got {type(value).__name__}")
        parsed[key] = value
    return PseudoLabels(
        arrays["indices"],
        arrays["labels"],
        arrays["clusters"],
        arrays["core_mask"],
        arrays["densities"],
        arrays["labeled_mask"],
        parsed["best_params_json"],
        parsed["metadata_json"],
    )
