"""scikit-learn integration: a ``KNeighborsTransformer`` whose graph comes from knncache.

Change one import and an existing pipeline reuses its graph across fits and runs::

    # from sklearn.neighbors import KNeighborsTransformer
    from knncache.sklearn import KNeighborsTransformer
    from sklearn.cluster import DBSCAN
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        KNeighborsTransformer(n_neighbors=10, mode="distance", store="knn_cache"),
        DBSCAN(eps=0.5, min_samples=5, metric="precomputed"),
    )
    labels = pipe.fit_predict(X)     # the second run on the same X runs no search

scikit-learn's ``HDBSCAN(metric="precomputed")`` wants a symmetric matrix: put
``FunctionTransformer(symmetrize, accept_sparse=True)`` between the two steps.

This module imports scikit-learn (``pip install scikit-learn``); ``import knncache`` does not.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from knncache._engines import compute_knn
from knncache._errors import InvalidParameterError, MissingDependencyError
from knncache._fingerprint import fingerprint
from knncache._graph import METRICS, KnnGraph
from knncache._persistent import PersistentStore
from knncache._ref import KnnRef

try:
    import scipy.sparse  # a dependency of scikit-learn
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.neighbors import NearestNeighbors
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    raise MissingDependencyError("scikit-learn", "knncache.sklearn") from None


try:  # scikit-learn >= 1.8: csr_matrix or csr_array, as configured
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # pragma: no cover - older scikit-learn returns csr_matrix

    def _align_api_if_sparse(X: Any) -> Any:
        return X


__all__ = ["KNeighborsTransformer", "symmetrize"]

_MODES = ("connectivity", "distance")


class KNeighborsTransformer(  # scikit-learn ships no type hints
    ClassNamePrefixFeaturesOutMixin,  # type: ignore[misc]
    TransformerMixin,  # type: ignore[misc]
    BaseEstimator,  # type: ignore[misc]
):
    """Drop-in for ``sklearn.neighbors.KNeighborsTransformer`` backed by knncache.

    Same output as scikit-learn's transformer with the same parameters: a sparse
    ``(n_queries, n_samples_fit)`` graph sorted by row values, ``n_neighbors + 1`` stored
    values per row in ``mode="distance"`` (the extra one is the point itself at distance 0,
    an explicit zero, as scikit-learn does) and ``n_neighbors`` in ``"connectivity"``; feed
    it to ``DBSCAN``, ``HDBSCAN``, ``Isomap``, ``TSNE``, ``SpectralClustering`` with
    ``metric="precomputed"``.

    Where it differs: ``transform`` of the fitted data itself (what ``fit_transform`` and a
    ``Pipeline`` do) is served from the knncache graph of ``fit`` (exact, distances in
    float64, ties ordered by index, each point first in its own row); scikit-learn orders
    tied neighbours (duplicate points) arbitrarily, and with more duplicates of a point than
    the row holds its row may miss the point itself. Its distances differ from ours in the
    last bits (it computes them from dot products). ``transform`` of other data searches the
    fitted data with scikit-learn's exact brute force.

    Parameters
    ----------
    n_neighbors : int, default 5
        Neighbours per row (not counting the point itself in ``"distance"`` mode).
    mode : {"distance", "connectivity"}, keyword-only
    metric : {"euclidean", "cosine"}, keyword-only
    store : KnnStore or path-like or None, keyword-only
        Where the graph of ``fit`` lives: a store (``PersistentStore`` makes a second fit on
        the same data, in this or another run, run no search), a directory path (opened as a
        ``PersistentStore``), or ``None`` (computed in memory at each ``fit``).

    Attributes
    ----------
    n_features_in_ : int
    n_samples_fit_ : int
    knn_ref_ : KnnRef or None
        The store entry of the fitted graph (``None`` without a store).
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        mode: str = "distance",
        metric: str = "euclidean",
        store: Any = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.metric = metric
        self.store = store

    def _check_params(self) -> None:
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError("n_neighbors", k, "expected an integer >= 1")
        if self.mode not in _MODES:
            raise InvalidParameterError("mode", self.mode, f"expected one of {_MODES!r}")
        if self.metric not in METRICS:
            raise InvalidParameterError("metric", self.metric, f"expected one of {METRICS!r}")
        store = self.store
        if not (store is None or isinstance(store, (str, os.PathLike)) or hasattr(store, "ensure")):
            raise InvalidParameterError(
                "store", store, "expected a KnnStore, a directory path or None"
            )

    def _open_store(self) -> Any:
        if isinstance(self.store, (str, os.PathLike)):
            return PersistentStore(self.store)
        return self.store

    @property
    def _row_width(self) -> int:
        # scikit-learn's transform asks kneighbors for n_neighbors + 1 in distance mode.
        return int(self.n_neighbors) + (self.mode == "distance")

    def fit(self, X: Any, y: Any = None) -> KNeighborsTransformer:
        """Compute (or find in the store) the k-NN graph of ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid parameters or data (scikit-learn's checks, then knncache's).
        """
        self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"n_samples = {n}: a neighbour graph needs at least 2 samples")
        # The graph of the fitted data, self excluded; transform adds each point itself.
        k = min(max(1, self._row_width - 1), n - 1)
        store = self._open_store()
        self.knn_ref_: KnnRef | None = None
        if store is None:
            self._graph = compute_knn(X, k, self.metric)
        else:
            self.knn_ref_ = store.ensure(X, k, self.metric, store_features=False)
        self._fit_X = X
        self._fit_fingerprint = fingerprint(X, self.metric)
        self.n_samples_fit_ = n
        self._n_features_out = n
        return self

    def _fitted_graph(self, k: int) -> KnnGraph:
        if self.knn_ref_ is not None:
            return self.knn_ref_.load(k)
        return KnnGraph(self._graph.neighbors[:, :k], self._graph.distances[:, :k])

    def transform(self, X: Any) -> Any:
        """The sparse k-NN graph of ``X`` against the fitted data.

        Parameters
        ----------
        X : array_like of shape (n_queries, n_features)

        Returns
        -------
        scipy.sparse.csr_matrix or csr_array
            ``(n_queries, n_samples_fit)``, sorted by row values (as scikit-learn's
            sparse interface setting says).

        Raises
        ------
        ValueError
            More neighbours asked for than fitted samples, or invalid data.
        """
        check_is_fitted(self, "n_samples_fit_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        width = self._row_width
        if width > self.n_samples_fit_:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {width}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {X.shape[0]}"
            )
        fitted = (
            X.shape == self._fit_X.shape
            and X.dtype == self._fit_X.dtype
            and fingerprint(X, self.metric) == self._fit_fingerprint
        )
        if fitted:
            graph = self._fitted_graph(max(1, width - 1))
            out = graph.to_csr(width, mode=self.mode, include_self=True)
        else:
            nn = NearestNeighbors(n_neighbors=width, metric=self.metric, algorithm="brute")
            out = nn.fit(self._fit_X).kneighbors_graph(X, mode=self.mode)
        return _align_api_if_sparse(out)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``: the graph of ``X`` with each point in its own row.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        scipy.sparse.csr_matrix or csr_array
            ``(n_samples, n_samples)``.
        """
        return self.fit(X).transform(X)


def symmetrize(graph: Any) -> Any:
    """The union of a sparse k-NN graph and its transpose: ``G[i, j] == G[j, i]``.

    An edge present in one direction only is copied to the other with the same value (the
    distance is symmetric); an edge present both ways keeps the larger value (they agree up
    to rounding). Explicit zeros (duplicate points) stay explicit. For estimators that
    require a symmetric precomputed matrix, such as scikit-learn's ``HDBSCAN``; use it in a
    pipeline as ``FunctionTransformer(symmetrize, accept_sparse=True)``.

    Parameters
    ----------
    graph : scipy sparse matrix or array, shape (n, n)

    Returns
    -------
    scipy.sparse.csr_matrix or csr_array
        Sorted indices, as scikit-learn's sparse interface setting says.

    Raises
    ------
    InvalidParameterError
        If ``graph`` is not a square sparse matrix.
    """
    if not scipy.sparse.issparse(graph) or graph.shape[0] != graph.shape[1]:
        raise InvalidParameterError(
            "graph", type(graph).__name__, "expected a square scipy sparse matrix"
        )
    coo = scipy.sparse.coo_matrix(graph)
    rows = np.concatenate([coo.row, coo.col]).astype(np.int64)
    cols = np.concatenate([coo.col, coo.row]).astype(np.int64)
    vals = np.concatenate([coo.data, coo.data])
    # Group equal (row, col) pairs, keep each group's largest value.
    order = np.lexsort((-vals, cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, vals = rows[first], cols[first], vals[first]
    n = graph.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    out = scipy.sparse.csr_matrix((vals, cols, indptr), shape=graph.shape)
    return _align_api_if_sparse(out)
