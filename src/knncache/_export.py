"""A graph in the forms other libraries take: scikit-learn's sparse graph, UMAP's knn pair.

scipy is needed only here and imported on use: knncache does not depend on it.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from knncache._errors import InvalidKError, InvalidParameterError, MissingDependencyError
from knncache._knn import KnnGraph

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

    from knncache._ref import KnnRef

__all__ = ["CSR_MODES", "graph_to_csr", "umap_knn"]

CSR_MODES: tuple[str, ...] = ("connectivity", "distance")


def _as_graph(graph: object, what: str) -> KnnGraph:
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


def _check_k(k: object, upper: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= upper:
        raise InvalidKError(
            k, upper, f"{what} must be an integer with 1 <= k <= {upper}, got {k!r}"
        )
    return int(k)


def _with_self(graph: KnnGraph, width: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``width`` columns: each point itself at distance 0, then its first neighbours."""
    n = graph.neighbors.shape[0]
    nb = np.empty((n, width), dtype=np.int64)
    ds = np.empty((n, width), dtype=np.float32)
    nb[:, 0] = np.arange(n, dtype=np.int64)
    ds[:, 0] = 0.0
    nb[:, 1:] = graph.neighbors[:, : width - 1]
    ds[:, 1:] = graph.distances[:, : width - 1]
    return nb, ds


def graph_to_csr(
    graph: KnnGraph, k: int | None = None, *, mode: str = "distance", include_self: bool = False
) -> csr_matrix:
    """Implementation of :meth:`knncache.KnnGraph.to_csr` (see there)."""
    try:
        import scipy.sparse
    except ImportError:
        raise MissingDependencyError("scipy", "KnnGraph.to_csr") from None
    if not isinstance(mode, str) or mode not in CSR_MODES:
        raise InvalidParameterError("mode", mode, f"expected one of {CSR_MODES!r}")
    if not isinstance(include_self, bool):
        raise InvalidParameterError("include_self", include_self, "expected a bool")
    g = _as_graph(graph, "graph")
    n, width = g.neighbors.shape
    upper = width + 1 if include_self else width
    kk = upper if k is None else _check_k(k, upper, "k")
    if include_self:
        cols, vals = _with_self(g, kk)
    else:
        cols, vals = g.neighbors[:, :kk], g.distances[:, :kk]
    if mode == "distance":
        data = np.ascontiguousarray(vals, dtype=np.float64).ravel()
    else:
        data = np.ones(n * kk, dtype=np.float64)
    indices = np.ascontiguousarray(cols, dtype=np.int64).ravel()
    indptr = np.arange(0, n * kk + 1, kk, dtype=np.int64)
    # Built from (data, indices, indptr): scipy keeps explicit zeros as given.
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))


def umap_knn(
    ref_or_graph: KnnRef | KnnGraph | tuple[Any, Any], n_neighbors: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The graph as UMAP's precomputed k-NN: ``umap.UMAP(precomputed_knn=umap_knn(g, 15))``.

    umap-learn counts a point among its own neighbours: its ``n_neighbors`` columns start
    with the point itself at distance 0, followed by its ``n_neighbors - 1`` nearest
    neighbours. It also writes into the arrays it is given (disconnected edges), so they are
    fresh writable copies, never the store's read-only memory maps. Pass the same
    ``n_neighbors`` to ``UMAP``: with fewer than 4,096 points umap-learn uses extra columns
    as they are instead of trimming them. umap-learn warns that ``transform`` of new data is
    unavailable without its own search index; fitting is unaffected.

    Parameters
    ----------
    ref_or_graph : KnnRef or KnnGraph or (neighbors, distances)
        A graph with self excluded and at least ``n_neighbors - 1`` columns.
    n_neighbors : int
        UMAP's ``n_neighbors`` (self included), ``>= 2``.

    Returns
    -------
    (knn_indices, knn_dists)
        ``int64`` and ``float32`` arrays of shape ``(N, n_neighbors)``, writable.

    Raises
    ------
    InvalidKError
        If ``n_neighbors`` is not an integer in ``[2, graph width + 1]``.
    InvalidParameterError
        If ``ref_or_graph`` is neither a ref nor a graph.
    """
    load = getattr(ref_or_graph, "load", None)
    if callable(load):
        width = int(getattr(ref_or_graph, "k", 0))
        nn = _check_k(n_neighbors, width + 1, "n_neighbors")
        if nn < 2:
            raise InvalidKError(nn, width + 1, f"n_neighbors must be >= 2, got {nn}")
        graph = load(nn - 1)
    else:
        graph = _as_graph(ref_or_graph, "ref_or_graph")
        nn = _check_k(n_neighbors, graph.neighbors.shape[1] + 1, "n_neighbors")
        if nn < 2:
            raise InvalidKError(nn, None, f"n_neighbors must be >= 2, got {nn}")
    nb, ds = _with_self(_as_graph(graph, "ref_or_graph"), nn)
    return nb, ds
