"""Search methods' parameters: defaults, the limits faiss accepts, and their validation.

Limits (checked before faiss sees a value, ``InvalidParameterError`` naming it): every
parameter within :data:`ENGINE_LIMITS` (what faiss accepts: ``M >= 2``, C ``int`` values),
and, once the features' shape is known, an approximate index whose estimated size
(:func:`index_bytes`) exceeds the machine's physical memory (:func:`memory_bound`) is
refused rather than left to end in ``std::bad_alloc``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import faiss

from knncache._entry import ENGINE_KEYED_PARAMS
from knncache._errors import InvalidParameterError

__all__ = [
    "C_INT_MAX",
    "ENGINE_DEFAULTS",
    "ENGINE_LIMITS",
    "MAX_THREADS",
    "METHODS",
    "check_engine",
    "check_memory",
    "index_bytes",
    "memory_bound",
    "positive_int",
    "resolve_params",
    "resolve_threads",
]

METHODS: tuple[str, ...] = tuple(ENGINE_KEYED_PARAMS)

#: Parameters of each method and their defaults (``ivf``'s ``nlist="auto"`` is resolved from
#: N). ``exact`` takes parameters only with an executor: ``blocks`` (number of query blocks,
#: default twice the executor's workers), ``scratch_dir`` (where the temporary ``.npy`` copy
#: for the workers goes, default the temp directory) and ``features_npy`` (an existing
#: ``.npy`` file holding exactly ``X``, mapped by the workers instead of a copy; a regular
#: file: a link or FIFO at that name is refused with ``ForeignObjectError``, not followed).
#: ``"hnsw"`` and ``"ivf"`` also take ``threads``: how many threads faiss builds and searches
#: with (default ``None``: ``faiss.omp_get_max_threads()`` when the call is made, i.e. every
#: core ``OMP_NUM_THREADS`` or ``faiss.omp_set_num_threads`` allows; ``1``: the deterministic
#: build). It is not keyed: the entry is the same at any thread count.
ENGINE_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "exact": MappingProxyType({"blocks": None, "scratch_dir": None, "features_npy": None}),
        "hnsw": MappingProxyType({"M": 32, "efConstruction": 80, "efSearch": 96, "threads": None}),
        "ivf": MappingProxyType({"nlist": "auto", "nprobe": 24, "threads": None}),
    }
)

#: The most threads an approximate build or search may be asked to run on.
MAX_THREADS = 4096

#: The largest C ``int`` (faiss takes ``M``, ``efConstruction``, ``efSearch`` and the k-means
#: cluster count ``nlist`` as one).
C_INT_MAX = 2**31 - 1

#: The range of each approximate parameter, checked before faiss sees it. ``M >= 2``: faiss
#: draws HNSW levels with probabilities built from ``1 / log(M)``, which ``M = 1`` makes
#: empty, and the build then crashes the process (SIGSEGV). ``M <= 65536``: far beyond any
#: useful graph degree, each node's neighbour count (a C ``int`` of ``3 * M``) far from
#: overflow. ``threads`` in ``[1, 4096]``. The rest: at most :data:`C_INT_MAX`.
ENGINE_LIMITS: Mapping[str, Mapping[str, tuple[int, int]]] = MappingProxyType(
    {
        "exact": MappingProxyType({"blocks": (1, C_INT_MAX)}),
        "hnsw": MappingProxyType(
            {
                "M": (2, 65536),
                "efConstruction": (1, C_INT_MAX),
                "efSearch": (1, C_INT_MAX),
                "threads": (1, MAX_THREADS),
            }
        ),
        "ivf": MappingProxyType(
            {"nlist": (1, C_INT_MAX), "nprobe": (1, C_INT_MAX), "threads": (1, MAX_THREADS)}
        ),
    }
)


def memory_bound() -> int:
    """The most bytes an approximate index may be estimated to take: the physical memory.

    An index estimated (:func:`index_bytes`) beyond the machine's physical memory could only
    end in a ``MemoryError`` (``std::bad_alloc``) inside faiss, or in swapping, so it is
    refused first. Where the size is unknown (no ``sysconf``), ``2**63 - 1``.
    """
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 2**63 - 1
    if pages <= 0 or size <= 0:  # pragma: no cover - unknown
        return 2**63 - 1
    return int(pages) * int(size)


def index_bytes(method: str, params: Mapping[str, Any], n: int, dim: int) -> int:
    """Estimated peak bytes of the faiss index of ``method`` on ``n`` points of ``dim``.

    ``"hnsw"``: the float32 vectors (``4 n d``), the neighbour lists (``2 M`` C ``int``
    slots per point at level 0 and ``M`` per higher level, ``M / (M - 1)`` higher levels
    expected), their offsets and levels (12 bytes a point), and, for each of the ``threads``
    faiss builds and searches with (:func:`resolve_threads`), a visited table (``n`` bytes)
    and the larger of the ``efSearch`` and ``efConstruction`` candidate heaps (16 bytes a
    slot, at most ``n`` slots). ``"ivf"``: the vectors and their ids (``4 n d + 8 n``), the
    ``nlist`` centroids, and k-means' assignment of every point (16 bytes). ``"exact"``: the
    float32 vectors. Parameters are the resolved ones (:data:`ENGINE_DEFAULTS` filled in).
    """
    vectors = 4 * n * dim
    if method == "hnsw":
        m = int(params["M"])
        slots = 2 * m + m / (m - 1)
        graph = n * (4 * slots + 12)
        threads = resolve_threads(params.get("threads"))
        heap = max(int(params["efSearch"]), min(int(params["efConstruction"]), n))
        return int(vectors + graph + threads * (n + 16 * heap))
    if method == "ivf":
        return vectors + 8 * n + 4 * int(params["nlist"]) * dim + 16 * n
    return vectors


def resolve_threads(threads: int | None) -> int:
    """The thread count an approximate engine runs faiss with: ``threads`` itself, or for
    ``None`` faiss's current ``omp_get_max_threads()`` (at least 1)."""
    if threads is None:
        return max(1, int(faiss.omp_get_max_threads()))
    return int(threads)


def check_memory(method: str, params: Mapping[str, Any], n: int, dim: int) -> None:
    need = index_bytes(method, params, n, dim)
    bound = memory_bound()
    if need > bound:
        named = {key: params[key] for key in ENGINE_LIMITS[method] if key in params}
        raise InvalidParameterError(
            "params",
            named,
            f"the {method} index of {n} points of dimension {dim} would take about "
            f"{need / 2**30:.3g} GiB, more than this machine's {bound / 2**30:.3g} GiB of "
            "memory; lower the parameters (or the data)",
        )


def positive_int(method: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InvalidParameterError(
            name, value, f"{method} parameter {name} must be a positive integer"
        )
    return int(value)


def _bounded_int(method: str, name: str, value: object) -> int:
    """``value`` as an int within ``ENGINE_LIMITS[method][name]``, else raise."""
    low, high = ENGINE_LIMITS[method][name]
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not low <= int(value) <= high
    ):
        raise InvalidParameterError(
            name, value, f"{method} parameter {name} must be an integer in [{low}, {high}]"
        )
    return int(value)


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidParameterError("method", method, f"expected one of {METHODS!r}")
    return method


def _check_names(method: str, params: Mapping[str, Any]) -> None:
    defaults = ENGINE_DEFAULTS[method]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidParameterError(
            "params",
            dict(params),
            f"unknown {method} parameter(s) {unknown!r}; expected some of {sorted(defaults)!r}",
        )


def check_engine(method: object, params: object) -> tuple[str, dict[str, Any]]:
    """Validate a search method and its graph parameters, without data.

    The checks :func:`compute_knn` and ``KnnStore.ensure`` make of an approximate method's
    parameters before they look at the features; what depends on N (``nlist <= N``) is
    checked when the features come.

    Parameters
    ----------
    method : {"exact", "hnsw", "ivf"}
    params : mapping or None
        ``"exact"`` takes none here (its executor parameters belong to a call of
        :func:`compute_knn`); ``"hnsw"`` and ``"ivf"`` take some of their names in
        :data:`ENGINE_DEFAULTS`, each an integer in its range of :data:`ENGINE_LIMITS`
        (hnsw ``M`` in ``[2, 65536]``, the others in ``[1, 2**31 - 1]``; ivf's ``nlist``
        also ``"auto"``; ``threads`` in ``[1, 4096]`` or ``None``). ``None`` means no
        parameters.

    Returns
    -------
    (method, params)
        The method, and a new dict of the given parameters with integer values as ``int``
        (defaults are not filled in).

    Raises
    ------
    InvalidParameterError
        Naming the bad method, the unknown parameter names or the bad value.
    """
    name = _check_method(method)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise InvalidParameterError("params", params, "expected a mapping of names to values")
    out = dict(params)
    if name == "exact":
        if out:
            raise InvalidParameterError("params", out, "the exact method takes no parameters")
        return name, out
    _check_names(name, out)
    for key in ENGINE_DEFAULTS[name]:
        if key in out and not (
            (key == "nlist" and out[key] == "auto") or (key == "threads" and out[key] is None)
        ):
            out[key] = _bounded_int(name, key, out[key])
    return name, out


def resolve_params(
    method: object, params: Mapping[str, Any], n: int, executor: Any, dim: int | None
) -> dict[str, Any]:
    """Validate ``params`` for ``method`` and fill in the defaults (``nlist="auto"`` and
    ``threads=None`` too: :func:`resolve_threads`, now); with ``dim``, refuse an index
    beyond :func:`memory_bound`."""
    name = _check_method(method)
    _check_names(name, params)
    if name == "exact":
        out = {**ENGINE_DEFAULTS[name], **params}
        if executor is None and any(v is not None for v in params.values()):
            raise InvalidParameterError(
                "params", dict(params), "exact parameters apply only with an executor"
            )
        if out["blocks"] is not None:
            out["blocks"] = _bounded_int(name, "blocks", out["blocks"])
        for key in ("scratch_dir", "features_npy"):
            if out[key] is not None and not isinstance(out[key], (str, os.PathLike)):
                raise InvalidParameterError(key, out[key], "expected a path or None")
        return out
    if executor is not None:
        raise InvalidParameterError(
            "executor",
            type(executor).__name__,
            f"only the exact method runs on an executor, not {name!r}",
        )
    out = {**ENGINE_DEFAULTS[name], **check_engine(name, params)[1]}
    out["threads"] = resolve_threads(out["threads"])
    if name == "ivf":
        if out["nlist"] == "auto":
            out["nlist"] = max(1, min(round(math.sqrt(n)), n // 39))
        if out["nlist"] > n:
            raise InvalidParameterError("nlist", out["nlist"], f"ivf needs nlist <= N ({n} points)")
        out["nprobe"] = min(out["nprobe"], out["nlist"])
    if dim is not None:
        check_memory(name, out, n, dim)
    return out
