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
``FunctionTransformer(symmetrize, accept_sparse="csr")`` between the two steps.

This module imports scikit-learn (``pip install scikit-learn``); ``import knncache`` does not.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from knncache._engines import compute_knn
from knncache._errors import InvalidParameterError, MissingDependencyError
from knncache._fingerprint import fingerprint
from knncache._graph import KnnGraph, check_k
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


__all__ = [
    "MAX_DENSE_BYTES",
    "METRIC_NAMES",
    "KNeighborsTransformer",
    "kneighbors_graph",
    "symmetrize",
]

_MODES = ("connectivity", "distance")
_ALGORITHMS = ("auto", "ball_tree", "kd_tree", "brute")

#: scikit-learn's metric names knncache computes exactly -> (knncache metric, squared).
#: ``"minkowski"`` only with ``p=2``.
METRIC_NAMES: dict[str, tuple[str, bool]] = {
    "minkowski": ("euclidean", False),
    "euclidean": ("euclidean", False),
    "l2": ("euclidean", False),
    "sqeuclidean": ("euclidean", True),
    "cosine": ("cosine", False),
}

#: Sparse input is densified (float64) when the dense copy takes at most this many bytes
#: (1 GiB); larger sparse input is refused.
MAX_DENSE_BYTES = 1 << 30


def _resolve_metric(metric: object, p: object, metric_params: object) -> tuple[str, bool]:
    """(knncache metric, squared) for scikit-learn's ``metric``, ``p``, ``metric_params``."""
    supported = "'minkowski' (p=2), 'euclidean', 'l2', 'sqeuclidean' or 'cosine'"
    if metric_params is not None and not isinstance(metric_params, dict):
        raise InvalidParameterError("metric_params", metric_params, "expected a dict or None")
    params = dict(metric_params or {})
    if p is not None and (
        isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or p <= 0
    ):
        raise InvalidParameterError("p", p, "expected a positive number or None")
    if not isinstance(metric, str) or metric not in METRIC_NAMES:
        raise InvalidParameterError(
            "metric",
            metric,
            f"knncache computes {supported}; for other metrics use scikit-learn's own class",
        )
    if metric == "minkowski":
        power = params.pop("p", p)
        if power is not None and power != 2:
            raise InvalidParameterError(
                "p", power, f"knncache computes minkowski with p=2 only (or {supported})"
            )
    if params:
        raise InvalidParameterError(
            "metric_params", metric_params, f"the metric {metric!r} takes no parameters here"
        )
    return METRIC_NAMES[metric]


def _dense(X: Any) -> Any:
    """Sparse input as a dense array if it fits under :data:`MAX_DENSE_BYTES`, else raise."""
    if not scipy.sparse.issparse(X):
        return X
    n, d = X.shape
    size = n * d * 8
    if size > MAX_DENSE_BYTES:
        raise InvalidParameterError(
            "X",
            f"sparse matrix of shape {X.shape}",
            f"knncache searches dense data; densified it would take {size / 2**30:.1f} GiB, "
            f"over the {MAX_DENSE_BYTES / 2**30:.0f} GiB bound: reduce its dimension first "
            "(e.g. TruncatedSVD) or use scikit-learn's own class for sparse data",
        )
    return np.asarray(X.toarray(), dtype=np.float64)


def _search(X: Any, k: int, metric: str, store: Any) -> tuple[KnnGraph | None, KnnRef | None]:
    """The self-excluded ``k``-NN graph of ``X`` (in memory, or a store entry).

    Under cosine, rows of norm zero (which knncache's search refuses) are at distance 1
    from every other row, as in scikit-learn: the other rows are searched among themselves
    and the zero rows merged in at distance 1, ties ordered by index.
    """
    zero = np.zeros(len(X), dtype=bool)
    if metric == "cosine":
        zero = ~(np.asarray(X) != 0).any(axis=1)
    if not zero.any():
        if store is None:
            return compute_knn(X, k, metric), None
        return None, store.ensure(X, k, metric, store_features=False)
    return _with_zero_rows(X, k, zero, store), None


def _with_zero_rows(X: Any, k: int, zero: npt.NDArray[np.bool_], store: Any) -> KnnGraph:
    n = len(X)
    nz, zr = np.flatnonzero(~zero), np.flatnonzero(zero)
    kn = min(k, nz.size - 1)
    nb_parts: list[npt.NDArray[np.int64]] = []
    ds_parts: list[npt.NDArray[np.float32]] = []
    if kn >= 1:
        x_nz = np.ascontiguousarray(np.asarray(X)[nz])
        sub = (
            compute_knn(x_nz, kn, "cosine")
            if store is None
            else store.ensure(x_nz, kn, "cosine", store_features=False).load(kn)
        )
        nb_parts.append(nz[np.asarray(sub.neighbors)])
        ds_parts.append(np.asarray(sub.distances, dtype=np.float32))
    else:
        nb_parts.append(np.empty((nz.size, 0), dtype=np.int64))
        ds_parts.append(np.empty((nz.size, 0), dtype=np.float32))
    # Candidates of the other rows: their own neighbours, then the first zero rows.
    extra = zr[: min(k, zr.size)]
    nb_parts.append(np.broadcast_to(extra, (nz.size, extra.size)))
    ds_parts.append(np.ones((nz.size, extra.size), dtype=np.float32))
    cand_nb, cand_ds = np.hstack(nb_parts), np.hstack(ds_parts)
    width = cand_nb.shape[1]
    rows = np.repeat(np.arange(nz.size), width)
    order = np.lexsort((cand_nb.ravel(), cand_ds.ravel(), rows)).reshape(nz.size, width)
    order -= (np.arange(nz.size) * width)[:, None]  # rows stay in place: local positions
    nb = np.empty((n, k), dtype=np.int64)
    ds = np.ones((n, k), dtype=np.float32)
    nb[nz] = np.take_along_axis(cand_nb, order, axis=1)[:, :k]
    ds[nz] = np.take_along_axis(cand_ds, order, axis=1)[:, :k]
    # A zero row: every other row at distance 1, by index.
    first = np.arange(k + 1)
    for i in zr:
        nb[i] = first[first != i][:k]
    return KnnGraph(nb, ds)


def _graph_csr(
    graph: KnnGraph, X: Any, width: int, mode: str, metric: str, squared: bool, include_self: bool
) -> Any:
    """scikit-learn's graph of the fitted data: float64 distances recomputed from ``X``."""
    out = graph.to_csr(width, mode=mode, include_self=include_self, features=X, metric=metric)
    if squared and mode == "distance":
        out.data **= 2
    return out


class KNeighborsTransformer(  # scikit-learn ships no type hints
    ClassNamePrefixFeaturesOutMixin,  # type: ignore[misc]
    TransformerMixin,  # type: ignore[misc]
    BaseEstimator,  # type: ignore[misc]
):
    """Drop-in for ``sklearn.neighbors.KNeighborsTransformer`` backed by knncache.

    Same output as scikit-learn's transformer with the same parameters: a sparse
    ``(n_queries, n_samples_fit)`` graph sorted by row values, ``n_neighbors + 1`` stored
    values per row in ``mode="distance"`` (the extra one is the point itself at distance 0,
    an explicit zero, as scikit-learn does) and ``n_neighbors`` in ``"connectivity"``,
    float64 distances; feed it to ``DBSCAN``, ``HDBSCAN``, ``Isomap``, ``TSNE``,
    ``SpectralClustering`` with ``metric="precomputed"``.

    Where it differs: ``transform`` of the fitted data itself (what ``fit_transform`` and a
    ``Pipeline`` do) is served from the knncache graph of ``fit`` (exact neighbours, ties
    ordered by index, each point first in its own row, distances recomputed in float64
    from the data); scikit-learn orders tied neighbours (duplicate points) arbitrarily, and
    with more duplicates of a point than the row holds its row may miss the point itself.
    ``transform`` of other data searches the fitted data with scikit-learn's exact brute
    force. Sparse input is densified up to :data:`MAX_DENSE_BYTES`. Only the metrics of
    :data:`METRIC_NAMES` are computed; others are refused.

    Parameters
    ----------
    n_neighbors : int, default 5
        Neighbours per row (not counting the point itself in ``"distance"`` mode). The only
        argument also accepted by position (scikit-learn's are all keyword-only).
    mode : {"distance", "connectivity"}, default "distance"
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default "auto"
        Not applicable: knncache's search is exact whatever the value (checked, unused).
    leaf_size : int, default 30
        Not applicable (scikit-learn's trees; checked, unused).
    metric : str, default "minkowski"
        ``"minkowski"`` (with ``p=2``), ``"euclidean"``, ``"l2"``, ``"sqeuclidean"``
        (squared distances) or ``"cosine"`` (a row of norm zero is at distance 1 from every
        other row, as in scikit-learn). Other metrics raise ``InvalidParameterError``.
    p : float, default 2
        Minkowski's power: only 2 is computed (read only with ``metric="minkowski"``).
    metric_params : dict or None, default None
        Only ``{"p": 2}`` with ``"minkowski"``; the other metrics take no parameters.
    n_jobs : int or None, default None
        Not applicable: knncache's search sizes its own threads (checked, unused).
    store : KnnStore or path-like or None, keyword-only
        Where the graph of ``fit`` lives: a store (``PersistentStore`` makes a second fit on
        the same data, in this or another run, run no search), a directory path (opened as a
        ``PersistentStore``), or ``None`` (computed in memory at each ``fit``).

    Attributes
    ----------
    n_features_in_ : int
    n_samples_fit_ : int
    effective_metric_ : str
        ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.
    knn_ref_ : KnnRef or None
        The store entry of the fitted graph (``None`` without a store).
    """

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        mode: str = "distance",
        algorithm: str = "auto",
        leaf_size: int = 30,
        metric: str = "minkowski",
        p: float = 2,
        metric_params: dict[str, Any] | None = None,
        n_jobs: int | None = None,
        store: Any = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs
        self.store = store

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified, up to MAX_DENSE_BYTES
        return tags

    def _check_params(self) -> tuple[str, bool]:
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError("n_neighbors", k, "expected an integer >= 1")
        if self.mode not in _MODES:
            raise InvalidParameterError("mode", self.mode, f"expected one of {_MODES!r}")
        if self.algorithm not in _ALGORITHMS:
            raise InvalidParameterError(
                "algorithm", self.algorithm, f"expected one of {_ALGORITHMS!r}"
            )
        leaf = self.leaf_size
        if isinstance(leaf, bool) or not isinstance(leaf, (int, np.integer)) or leaf < 1:
            raise InvalidParameterError("leaf_size", leaf, "expected an integer >= 1")
        jobs = self.n_jobs
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer))):
            raise InvalidParameterError("n_jobs", jobs, "expected an integer or None")
        resolved = _resolve_metric(self.metric, self.p, self.metric_params)
        store = self.store
        if not (store is None or isinstance(store, (str, os.PathLike)) or hasattr(store, "ensure")):
            raise InvalidParameterError(
                "store", store, "expected a KnnStore, a directory path or None"
            )
        return resolved

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
        X : {array_like, sparse matrix} of shape (n_samples, n_features)
            Sparse input is densified (up to :data:`MAX_DENSE_BYTES`).
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid parameters or data (scikit-learn's checks, then knncache's), sparse
            input too large to densify.
        """
        metric, squared = self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], accept_sparse="csr")
        X = _dense(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"n_samples = {n}: a neighbour graph needs at least 2 samples")
        # The graph of the fitted data, self excluded; transform adds each point itself.
        k = min(max(1, self._row_width - 1), n - 1)
        self._graph, self.knn_ref_ = _search(X, k, metric, self._open_store())
        self._metric, self._squared = metric, squared
        self.effective_metric_ = "sqeuclidean" if squared else metric
        self._fit_X = X
        self._fit_fingerprint = fingerprint(X, metric)
        self.n_samples_fit_ = n
        self._n_features_out = n
        return self

    def _fitted_graph(self, k: int) -> KnnGraph:
        if self.knn_ref_ is not None:
            return self.knn_ref_.load(k)
        assert self._graph is not None  # one of the two is set by fit
        return KnnGraph(self._graph.neighbors[:, :k], self._graph.distances[:, :k])

    def transform(self, X: Any) -> Any:
        """The sparse k-NN graph of ``X`` against the fitted data.

        Parameters
        ----------
        X : {array_like, sparse matrix} of shape (n_queries, n_features)

        Returns
        -------
        scipy.sparse.csr_matrix or csr_array
            ``(n_queries, n_samples_fit)``, sorted by row values (as scikit-learn's
            sparse interface setting says), float64 values.

        Raises
        ------
        ValueError
            More neighbours asked for than fitted samples, or invalid data.
        """
        check_is_fitted(self, "n_samples_fit_")
        X = _dense(
            validate_data(self, X, dtype=[np.float64, np.float32], reset=False, accept_sparse="csr")
        )
        width = self._row_width
        if width > self.n_samples_fit_:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {width}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {X.shape[0]}"
            )
        fitted = (
            X.shape == self._fit_X.shape
            and X.dtype == self._fit_X.dtype
            and fingerprint(X, self._metric) == self._fit_fingerprint
        )
        if fitted:
            graph = self._fitted_graph(max(1, width - 1))
            out = _graph_csr(
                graph, self._fit_X, width, self.mode, self._metric, self._squared, True
            )
        else:
            nn = NearestNeighbors(
                n_neighbors=width, metric=self.effective_metric_, algorithm="brute"
            )
            out = nn.fit(self._fit_X).kneighbors_graph(X, mode=self.mode)
        return _align_api_if_sparse(out)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``: the graph of ``X`` with each point in its own row.

        Parameters
        ----------
        X : {array_like, sparse matrix} of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        scipy.sparse.csr_matrix or csr_array
            ``(n_samples, n_samples)``.
        """
        return self.fit(X).transform(X)


def kneighbors_graph(
    X: Any,
    n_neighbors: int,
    *,
    mode: str = "connectivity",
    metric: str = "minkowski",
    p: float = 2,
    metric_params: dict[str, Any] | None = None,
    include_self: bool | str = False,
    n_jobs: int | None = None,
) -> Any:
    """Drop-in for ``sklearn.neighbors.kneighbors_graph``: ``compute_knn(X, k).to_csr(...)``.

    scikit-learn's signature and defaults (``mode="connectivity"``, unlike ``to_csr``'s
    ``"distance"``); float64 distances recomputed from ``X``; ties ordered by index.
    ``n_jobs`` is not applicable. ``X`` must be data: a fitted scikit-learn estimator is
    refused.

    Parameters
    ----------
    X : {array_like, sparse matrix} of shape (n_samples, n_features)
        Sparse input is densified (up to :data:`MAX_DENSE_BYTES`).
    n_neighbors : int
        Neighbours per row.
    mode : {"connectivity", "distance"}, keyword-only
    metric, p, metric_params : keyword-only
        As :class:`KNeighborsTransformer`'s.
    include_self : bool or "auto", keyword-only
        Count each sample as its own first neighbour (``"auto"``: in ``"connectivity"``
        mode only).
    n_jobs : int or None, keyword-only
        Not applicable.

    Returns
    -------
    scipy.sparse.csr_matrix or csr_array
        ``(n_samples, n_samples)``.

    Raises
    ------
    InvalidParameterError
        An invalid or unsupported parameter, a fitted estimator as ``X``, sparse input too
        large to densify.
    InvalidKError, InvalidFeaturesError
        ``n_neighbors`` out of range, or data knncache cannot search.
    """
    if hasattr(X, "kneighbors"):
        raise InvalidParameterError(
            "X", type(X).__name__, "expected the data (knncache does not reuse a fitted index)"
        )
    if mode not in _MODES:
        raise InvalidParameterError("mode", mode, f"expected one of {_MODES!r}")
    if include_self not in (True, False, "auto"):
        raise InvalidParameterError("include_self", include_self, "expected a bool or 'auto'")
    knn_metric, squared = _resolve_metric(metric, p, metric_params)
    data = np.asarray(_dense(X)) if scipy.sparse.issparse(X) else np.asarray(X)
    if include_self == "auto":
        include_self = mode == "connectivity"
    n = data.shape[0] if data.ndim == 2 else 0
    upper = n if include_self else n - 1
    k = check_k(n_neighbors, max(upper, 1), "n_neighbors")
    search_k = max(1, k - 1) if include_self else k
    graph, _ = _search(data, min(search_k, max(n - 1, 1)), knn_metric, None)
    assert graph is not None  # no store: computed in memory
    out = _graph_csr(graph, data, k, mode, knn_metric, squared, bool(include_self))
    return _align_api_if_sparse(out)


def symmetrize(graph: Any) -> Any:
    """The union of a sparse k-NN graph and its transpose: ``G[i, j] == G[j, i]``.

    An edge present in one direction only is copied to the other with the same value (the
    distance is symmetric); an edge present both ways keeps the larger value (they agree up
    to rounding). Explicit zeros (duplicate points) stay explicit. For estimators that
    require a symmetric precomputed matrix, such as scikit-learn's ``HDBSCAN``; use it in a
    pipeline as ``FunctionTransformer(symmetrize, accept_sparse="csr")``.

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
