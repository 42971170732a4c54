"""The k-NN graph type and the validation of what a search takes (features, k, metric)."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from knncache._errors import (
    InvalidFeaturesError,
    InvalidKError,
    InvalidParameterError,
    MissingDependencyError,
    UnknownMetricError,
)

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "CSR_MODES",
    "METRICS",
    "KnnGraph",
    "as_graph",
    "check_graph",
    "check_k",
    "exact_distances",
    "graph_to_csr",
    "validate_features",
    "validate_k",
    "validate_metric",
    "with_self",
]

METRICS: tuple[str, ...] = ("cosine", "euclidean")
CSR_MODES: tuple[str, ...] = ("connectivity", "distance")


class KnnGraph(NamedTuple):
    """A k-nearest-neighbour graph; unpacks as ``neighbors, distances = graph``.

    Attributes
    ----------
    neighbors : numpy.ndarray
        ``int64`` array of shape ``(N, k)``: row ``i`` lists the neighbours of point ``i``,
        nearest first, ties broken by the smaller index.
    distances : numpy.ndarray
        ``float32`` array of shape ``(N, k)``: the matching distances (true Euclidean
        distances for ``"euclidean"``, ``1 - cos`` for ``"cosine"``), non-decreasing along
        each row.
    """

    neighbors: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]

    def to_csr(
        self,
        k: int | None = None,
        *,
        mode: str = "distance",
        include_self: bool = False,
        features: Any = None,
        metric: str = "euclidean",
    ) -> csr_matrix:
        """The graph as a ``scipy.sparse.csr_matrix`` in scikit-learn's sorted-graph form.

        The same matrix as ``sklearn.neighbors.kneighbors_graph(X, k, mode=mode,
        include_self=include_self)`` on the same data (up to the order of tied neighbours):
        ``N x N``, ``k`` stored values per row, each row's values non-decreasing
        (``sort_graph_by_row_values`` accepts it as is), and zero distances of duplicate
        points kept as explicit zeros, so estimators with ``metric="precomputed"`` (DBSCAN,
        HDBSCAN, Isomap, TSNE, SpectralClustering) see every neighbour. scipy is imported
        here, not by ``knncache``.

        Parameters
        ----------
        k : int, optional
            Neighbours per row, ``1 <= k <= graph width`` (``<= width + 1`` with
            ``include_self``); default: the graph's width (plus one with ``include_self``).
        mode : {"distance", "connectivity"}, keyword-only
            Stored values: the distances, or ones. The default differs from
            ``kneighbors_graph``'s, which is ``"connectivity"``: pass ``mode`` explicitly
            when switching from one to the other.
        include_self : bool, keyword-only
            Put each point first in its own row at distance 0, counted among the ``k``
            (scikit-learn's ``include_self=True``).
        features : array_like of shape (N, d), optional, keyword-only
            The data the graph was computed from. Given, the distances are recomputed in
            float64 from it (:func:`exact_distances`, ``O(N k d)``), as scikit-learn's;
            otherwise they are the graph's float32 values widened (relative error up to
            about 6e-8).
        metric : {"euclidean", "cosine"}, keyword-only
            The graph's metric, read only with ``features``.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``float64`` values (as scikit-learn's), ``int64`` or ``int32`` indices.

        Raises
        ------
        MissingDependencyError
            If scipy is not installed (``pip install scipy``).
        InvalidParameterError
            If ``mode`` or ``include_self`` is invalid, or ``features`` (with ``metric``)
            does not give the graph's distances: not the data or the metric it was
            computed with.
        InvalidKError
            If ``k`` is out of range.
        """
        return graph_to_csr(
            self, k, mode=mode, include_self=include_self, features=features, metric=metric
        )


def validate_metric(metric: object) -> str:
    """Return ``metric`` if it is a supported metric name, else raise.

    Raises
    ------
    UnknownMetricError
        If ``metric`` is not one of :data:`METRICS`.
    """
    if not isinstance(metric, str) or metric not in METRICS:
        raise UnknownMetricError(metric, METRICS)
    return metric


def validate_features(X: Any, metric: str = "euclidean") -> npt.NDArray[Any]:
    """Check that ``X`` is a searchable feature matrix and return it as an ndarray.

    The array is not copied (a memmap stays a memmap).

    Parameters
    ----------
    X : array_like
        Feature matrix of shape ``(N, d)`` with a real numeric dtype.
    metric : str
        ``"cosine"`` additionally refuses rows of norm zero.

    Returns
    -------
    numpy.ndarray
        ``X`` as an ndarray.

    Any finite magnitude is accepted (up to the dtype's maximum): ``compute_knn``
    rescales by a power of two where squared norms would overflow, and refuses only a graph
    whose distances do not fit in float32.

    Raises
    ------
    InvalidFeaturesError
        Not 2-D, empty, fewer than 2 rows, non-numeric dtype, a non-finite value (the first
        offending row is named), or (cosine) a zero row.
    UnknownMetricError
        If ``metric`` is unknown.
    """
    validate_metric(metric)
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    if arr.dtype.kind not in "iuf":
        raise InvalidFeaturesError(
            "dtype",
            f"features must be a 2-D real numeric (int or float) array, got shape {arr.shape} "
            f"dtype {arr.dtype}",
        )
    if arr.ndim != 2:
        raise InvalidFeaturesError(
            "not_2d", f"features must be a 2-D array, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise InvalidFeaturesError(
            "empty", f"features must be non-empty, got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.shape[0] < 2:
        raise InvalidFeaturesError(
            "too_few_rows", f"features need at least 2 rows for a neighbour graph, got {arr.shape}"
        )
    # Row blocks of ~16 MB, so that checking a large memmap needs no full-size temporary.
    step = max(1, (16 << 20) // max(1, arr.shape[1] * arr.dtype.itemsize))
    for start in range(0, arr.shape[0], step):
        block = arr[start : start + step]
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                row = start + int(np.flatnonzero(bad)[0])
                raise InvalidFeaturesError(
                    "non_finite",
                    f"features contain a non-finite value (nan or inf) in row {row}",
                    row=row,
                )
        if metric == "cosine":
            zero = ~(block != 0).any(axis=1)
            if zero.any():
                row = start + int(np.flatnonzero(zero)[0])
                raise InvalidFeaturesError(
                    "zero_norm",
                    f"cosine distance is undefined for a zero vector; row {row} is all zeros",
                    row=row,
                )
    return arr


def validate_k(k: object, n: int, *, exclude_self: bool = True) -> int:
    """Return ``k`` as an int if ``1 <= k < n`` (``<= n`` when self is kept), else raise.

    Raises
    ------
    InvalidKError
        If ``k`` is not an integer (``bool`` included) or out of range.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidKError(k, n, f"k must be an integer, got {k!r} ({type(k).__name__})")
    k_int = int(k)
    upper = n - 1 if exclude_self else n
    if not 1 <= k_int <= upper:
        raise InvalidKError(
            k_int,
            n,
            f"k must satisfy 1 <= k <= {upper} for {n} points "
            f"({'self excluded' if exclude_self else 'self included'}), got k={k_int}",
        )
    return k_int


def check_graph(graph: KnnGraph, n: int, features: npt.NDArray[Any] | None = None) -> None:
    """Refuse a graph that must never be written or served.

    With the ``features`` the graph was searched from, a distance overflow also names the
    magnitude of the features (the row's and the matrix's largest absolute value), which
    is what must come down.

    Raises
    ------
    InvalidFeaturesError
        ``"overflow"``: a row's distances are not finite (beyond the float32 range), or a
        neighbour index is outside ``[0, n)``; the first such row is named.
    """
    nb, ds = graph
    bad_ds = np.asarray(~np.isfinite(ds).all(axis=1))
    bad_nb = ((nb < 0) | (nb >= n)).any(axis=1)
    bad = bad_ds | bad_nb
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        why = (
            "its distances exceed the float32 range (about 3.4e38) in which graphs are stored"
            if bool(bad_ds[row])
            else "the search found no valid neighbour index for it"
        )
        if bool(bad_ds[row]) and features is not None:
            why += (
                f" (the row's largest magnitude is {_largest(features[row : row + 1]):.3g}, "
                f"the features' {_largest(features):.3g}: divide them by a constant)"
            )
        raise InvalidFeaturesError(
            "overflow", f"cannot build a valid graph for features row {row}: {why}", row=row
        )


def _largest(arr: npt.NDArray[Any]) -> float:
    """Largest absolute value of ``arr`` (float64), in row blocks of about 16 MB."""
    step = max(1, (16 << 20) // max(1, arr.shape[1] * arr.dtype.itemsize))
    out = 0.0
    for start in range(0, arr.shape[0], step):
        block = np.abs(arr[start : start + step].astype(np.float64))
        out = max(out, float(block.max(initial=0.0)))
    return out


def as_graph(graph: object, what: str) -> KnnGraph:
    """``(neighbors, distances)`` of the same ``(N, k)`` shape, as arrays, or raise."""
    try:
        neighbors: Any
        distances: Any
        neighbors, distances = graph  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InvalidParameterError(
            what, type(graph).__name__, "expected a KnnGraph or a (neighbors, distances) pair"
        ) from None
    nb, ds = np.asarray(neighbors), np.asarray(distances)
    if nb.ndim != 2 or nb.shape != ds.shape or nb.dtype.kind not in "iu" or nb.shape[1] < 1:
        raise InvalidParameterError(
            what,
            f"neighbors {nb.shape} {nb.dtype}, distances {ds.shape} {ds.dtype}",
            "expected (N, k) integer neighbours and (N, k) distances, k >= 1",
        )
    return KnnGraph(nb, ds)


def check_k(k: object, upper: int, what: str) -> int:
    """``k`` as an int if it is an integer in ``[1, upper]``, else :class:`InvalidKError`."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= upper:
        raise InvalidKError(
            k, upper, f"{what} must be an integer with 1 <= k <= {upper}, got {k!r}"
        )
    return int(k)


def with_self(graph: KnnGraph, width: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``width`` columns: each point itself at distance 0, then its first neighbours."""
    n = graph.neighbors.shape[0]
    nb = np.empty((n, width), dtype=np.int64)
    ds = np.empty((n, width), dtype=np.float32)
    nb[:, 0] = np.arange(n, dtype=np.int64)
    ds[:, 0] = 0.0
    nb[:, 1:] = graph.neighbors[:, : width - 1]
    ds[:, 1:] = graph.distances[:, : width - 1]
    return nb, ds


def exact_distances(
    features: Any, neighbors: npt.NDArray[Any], metric: str
) -> npt.NDArray[np.float64]:
    """Distances of each row ``i`` of ``features`` to its ``neighbors[i]``, in float64.

    Euclidean: the norm of the difference (exact up to rounding of the sum). Cosine:
    ``1 - u.v`` of the L2-normalised rows, computed as ``|u - v|^2 / 2`` (accurate near 0);
    a row of norm zero is at distance 1 from every other row, as in scikit-learn's
    ``cosine_distances``. Computed in row blocks of about 16 MB: ``O(N k d)`` time.

    Parameters
    ----------
    features : array_like of shape (N, d)
    neighbors : ndarray of shape (N, k), integer
    metric : {"euclidean", "cosine"}

    Returns
    -------
    numpy.ndarray
        ``float64`` of shape ``(N, k)``.

    Raises
    ------
    UnknownMetricError
        If ``metric`` is unknown.
    """
    validate_metric(metric)
    x = np.asarray(features)
    nb = np.asarray(neighbors)
    n, k = nb.shape
    out = np.empty((n, k), dtype=np.float64)
    if metric == "cosine":
        x64 = x.astype(np.float64, copy=False)
        with np.errstate(over="ignore", under="ignore"):
            norm = np.linalg.norm(x64, axis=1)
        zero = norm == 0
        # Norms that overflow or underflow: scale each such row by a power of two first.
        bad = ~np.isfinite(norm) | ((norm < 1e-150) & ~zero)
        if bad.any():
            x64 = x64.copy()
            _, exp = np.frexp(np.max(np.abs(x64[bad]), axis=1, keepdims=True))
            x64[bad] = np.ldexp(x64[bad], -exp)
            norm = np.linalg.norm(x64, axis=1)
        x = x64 / np.where(zero, 1.0, norm)[:, None]
    step = max(1, (16 << 20) // max(1, k * x.shape[1] * 8))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        cand = nb[rows]
        diff = np.subtract(x[cand], x[rows][:, None, :], dtype=np.float64)
        sq = np.einsum("nkd,nkd->nk", diff, diff)
        if metric == "euclidean":
            out[rows] = np.sqrt(sq)
        else:
            block = sq * 0.5
            # A zero row: u.v = 0, so 1 - u.v = 1 (itself included only if listed).
            either = zero[rows][:, None] | zero[cand]
            block[either] = 1.0
            block[cand == rows[:, None]] = 0.0
            out[rows] = block
    return out


def _checked_exact(
    g: KnnGraph, cols: npt.NDArray[Any], features: Any, metric: str
) -> npt.NDArray[np.float64]:
    """``exact_distances`` of the columns ``cols`` (self included or not), checked
    against the graph's own float32 distances: the features must be the graph's data."""
    x = np.asarray(features)
    n = g.neighbors.shape[0]
    if x.ndim != 2 or x.shape[0] != n:
        raise InvalidParameterError(
            "features", f"shape {x.shape}", f"expected the graph's data, of shape ({n}, d)"
        )
    exact = exact_distances(x, cols, metric)
    width = min(g.distances.shape[1], cols.shape[1])
    offset = cols.shape[1] - width
    stored = np.asarray(g.distances[:, :width], dtype=np.float64)
    mine = exact[:, offset:]
    # The graph holds float32 roundings of these same values (relative error <= 6e-8).
    scale = float(np.max(np.abs(stored))) if stored.size else 0.0
    if not np.all(np.abs(mine - stored) <= 1e-5 * np.abs(stored) + 1e-9 * scale):
        raise InvalidParameterError(
            "features",
            f"shape {x.shape}, metric {metric!r}",
            "the data and metric the graph was computed with (its distances differ)",
        )
    return exact


def graph_to_csr(
    graph: KnnGraph,
    k: int | None = None,
    *,
    mode: str = "distance",
    include_self: bool = False,
    features: Any = None,
    metric: str = "euclidean",
) -> csr_matrix:
    """Implementation of :meth:`knncache.KnnGraph.to_csr` (see there)."""
    try:
        import scipy.sparse  # optional dependency: knncache does not require scipy
    except ImportError:
        raise MissingDependencyError("scipy", "KnnGraph.to_csr") from None
    if not isinstance(mode, str) or mode not in CSR_MODES:
        raise InvalidParameterError("mode", mode, f"expected one of {CSR_MODES!r}")
    if not isinstance(include_self, bool):
        raise InvalidParameterError("include_self", include_self, "expected a bool")
    validate_metric(metric)
    g = as_graph(graph, "graph")
    n, width = g.neighbors.shape
    upper = width + 1 if include_self else width
    kk = upper if k is None else check_k(k, upper, "k")
    if include_self:
        cols, vals = with_self(g, kk)
    else:
        cols, vals = g.neighbors[:, :kk], g.distances[:, :kk]
    if mode == "distance":
        if features is not None:
            # Rounding may differ from the search's in the last bit: keep rows sorted.
            vals = np.maximum.accumulate(
                _checked_exact(g, np.asarray(cols), features, metric), axis=1
            )
        data = np.ascontiguousarray(vals, dtype=np.float64).ravel()
    else:
        data = np.ones(n * kk, dtype=np.float64)
    indices = np.ascontiguousarray(cols, dtype=np.int64).ravel()
    indptr = np.arange(0, n * kk + 1, kk, dtype=np.int64)
    # Built from (data, indices, indptr): scipy keeps explicit zeros as given.
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))
