"""A graph in the form UMAP takes (``precomputed_knn``); scikit-learn's is ``KnnGraph.to_csr``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from knncache._errors import InvalidKError
from knncache._graph import KnnGraph, as_graph, check_k, with_self

if TYPE_CHECKING:
    from knncache._ref import KnnRef

__all__ = ["umap_knn"]


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
        nn = check_k(n_neighbors, width + 1, "n_neighbors")
        if nn < 2:
            raise InvalidKError(nn, width + 1, f"n_neighbors must be >= 2, got {nn}")
        graph = load(nn - 1)
    else:
        graph = as_graph(ref_or_graph, "ref_or_graph")
        nn = check_k(n_neighbors, graph.neighbors.shape[1] + 1, "n_neighbors")
        if nn < 2:
            raise InvalidKError(nn, None, f"n_neighbors must be >= 2, got {nn}")
    nb, ds = with_self(as_graph(graph, "ref_or_graph"), nn)
    return nb, ds
