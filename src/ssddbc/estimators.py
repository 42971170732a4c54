"""scikit-learn estimators over SS-DDBC: :class:`SSDDBC` and :class:`SSDDBCSearch`.

Both are thin front ends: :class:`SSDDBC` runs the SS-DDBC pipeline
(:func:`ssddbc.ssddbc._pipeline.cluster`) and :class:`SSDDBCSearch` calls
:func:`ssddbc.grid_search.api.run_clustering_search_on_features`; neither has a second
implementation of anything. Their defaults and ``_parameter_constraints`` are generated from
the parameter table, :mod:`ssddbc.ssddbc._params`.

SS-DDBC is semi-supervised: ``fit`` takes the class labels ``y`` and two masks as keyword
arguments (scikit-learn routes them through ``fit_predict`` too). Which samples are labelled,
in this order of precedence:

============================  ================================================================
given                         labelled samples (``known_mask``, if not given, = labelled)
============================  ================================================================
``labeled_mask``              those it marks (``y`` of all others is never read)
only ``known_mask``           all known-class samples (the original's default)
neither, ``y`` given          ``y != -1`` (scikit-learn's semi-supervised convention)
neither, no ``y``             none: plain density clustering
============================  ================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import validate_data

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask
from ssddbc.grid_search._workers import resolve_n_jobs
from ssddbc.grid_search.api import run_clustering_search_on_features
from ssddbc.grid_search.pseudo_labels import assign_classes
from ssddbc.ssddbc._params import SPECS, AlgorithmParams, ParamSpec
from ssddbc.ssddbc._pipeline import cluster

__all__ = ["ALGORITHM_DEFAULTS", "SSDDBC", "EstimatorParameterError", "SSDDBCSearch"]

#: The algorithm options the estimators expose, in this order.
ALGORITHM_PARAMS: tuple[str, ...] = (
    "k",
    "density_percentile",
    "dense_method",
    "co_mode",
    "co_manual",
    "assign_model",
    "voting_k",
    "metric",
)

#: Their defaults: the parameter table's.
ALGORITHM_DEFAULTS: Mapping[str, Any] = {name: SPECS[name].default for name in ALGORITHM_PARAMS}
_D = ALGORITHM_DEFAULTS


def _constraint(spec: ParamSpec) -> list[Any]:
    """scikit-learn's constraint objects for one row of the parameter table."""
    if spec.type is str:
        allowed: Any = StrOptions(set(spec.choices or ()))
    elif spec.choices is not None:
        allowed = Options(Integral, set(spec.choices))
    else:
        closed = {(True, True): "both", (True, False): "left", (False, True): "right"}
        bounds = (spec.low is not None, spec.high is not None)
        number = Integral if spec.type is int else Real
        allowed = Interval(number, spec.low, spec.high, closed=closed.get(bounds, "neither"))
    return [allowed, None] if spec.optional else [allowed]


#: Constraints of the algorithm options, scikit-learn style (checked in ``fit``).
_ALGORITHM_CONSTRAINTS: dict[str, list[Any]] = {
    name: _constraint(SPECS[name]) for name in ALGORITHM_PARAMS
}


# scikit-learn ships no type information: its classes are Any to mypy, hence the ignores.
class EstimatorParameterError(InvalidInputError, InvalidParameterError):  # type: ignore[misc]
    """A constructor parameter of an estimator is invalid (raised by ``fit``).

    Both an :class:`~ssddbc.InvalidInputError` (``argument`` names the parameter) and
    scikit-learn's ``InvalidParameterError``, so handlers of either catch it.
    """


def _validate_params(estimator: BaseEstimator, constraints: Mapping[str, list[Any]]) -> None:
    """scikit-learn's parameter check, one parameter at a time, raising our error."""
    params = estimator.get_params(deep=False)
    for name, allowed in constraints.items():
        try:
            validate_parameter_constraints(
                {name: allowed}, {name: params[name]}, caller_name=type(estimator).__name__
            )
        except InvalidParameterError as exc:
            raise EstimatorParameterError(name, str(exc)) from None


def _check_X(estimator: BaseEstimator, X: Any, *, reset: bool) -> npt.NDArray[Any]:
    """scikit-learn's input checks (``n_features_in_``, messages), as our error."""
    try:
        out = validate_data(estimator, X, reset=reset, dtype="numeric", ensure_min_samples=2)
    except ValueError as exc:
        raise InvalidInputError("X", str(exc)) from None
    return np.asarray(out)


def _resolve_split(
    y: Any, known_mask: Any, labeled_mask: Any, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[Any]]:
    """Targets (labelled ones encoded, others -1), known and labelled masks, class values.

    See the module docstring for which samples count as labelled. Only the labelled samples'
    ``y`` values are read; they are encoded in increasing order (``np.unique``), which keeps
    every comparison the algorithm makes (equality, most common label, ties to the smaller).
    """
    labeled = None if labeled_mask is None else as_mask(labeled_mask, "labeled_mask", n)
    known = None if known_mask is None else as_mask(known_mask, "known_mask", n)
    y_arr = None
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or y_arr.shape[0] != n:
            raise InvalidInputError(
                "y", f"expected a 1-D array of length {n}, got shape {y_arr.shape}"
            )
    if labeled is None:
        if known is not None:
            labeled = known
        elif y_arr is not None:
            # scikit-learn's semi-supervised convention: -1 marks an unlabelled sample.
            labeled = np.asarray(y_arr != -1) if y_arr.dtype.kind in "iuf" else np.ones(n, bool)
        else:
            labeled = np.zeros(n, dtype=bool)
    if known is None:
        known = labeled
    targets = np.full(n, -1, dtype=np.int64)
    classes: npt.NDArray[Any] = np.empty(0)
    if labeled.any():
        if y_arr is None:
            raise InvalidInputError("y", "labelled samples are marked but no y was given")
        classes, codes = np.unique(y_arr[labeled], return_inverse=True)
        targets[labeled] = codes.ravel()
    return targets, known, labeled, classes


class _SemiSupervisedClusterMixin(ClusterMixin):  # type: ignore[misc]
    """``fit_predict`` that passes ``y`` on (scikit-learn's drops it: clusterers ignore y)."""

    dense_method: int
    co_mode: int
    co_manual: float | None
    assign_model: int
    voting_k: int

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> Any:
        """Fit and return ``labels_`` (``y`` and keyword arguments as ``fit``)."""
        return self.fit(X, y, **kwargs).labels_

    def _set_classes(
        self,
        clusters: npt.NDArray[Any],
        codes: npt.NDArray[np.int64],
        novel: list[int],
        start: int,
        classes: npt.NDArray[Any] | None,
    ) -> None:
        """``class_labels_``, ``cluster_to_class_``, ``novel_clusters_`` from class codes.

        ``codes`` are :func:`~ssddbc.grid_search.pseudo_labels.assign_classes`'s labels,
        novel ids from ``start``; ``classes`` maps a known code back to its value of ``y``
        (None: the codes are ``y``'s own integers).
        """
        known = codes < start
        values: npt.NDArray[Any]
        if classes is None:
            values = codes
        elif classes.size == 0 or classes.dtype.kind in "iu":
            values = np.empty(codes.shape, dtype=np.int64)
            values[known] = classes[codes[known]]
            top = int(classes.max()) + 1 if classes.size else 0
            values[~known] = top + codes[~known] - start
        else:
            values = np.empty(codes.shape, dtype=object)
            values[known] = classes[codes[known]]
            values[~known] = [f"novel_{c - start}" for c in codes[~known].tolist()]
        ids, first = np.unique(clusters, return_index=True)
        self.class_labels_ = values
        self.cluster_to_class_ = {
            int(c): values[i].item() if isinstance(values[i], np.generic) else values[i]
            for c, i in zip(ids, first, strict=True)
        }
        self.novel_clusters_ = np.asarray(novel, dtype=np.int64)

    def _algorithm_params(self) -> AlgorithmParams:
        """The fixed algorithm options of this estimator (validated again by the table)."""
        return AlgorithmParams(
            dense_method=self.dense_method,
            co_mode=self.co_mode,
            co_manual=self.co_manual,
            assign_model=self.assign_model,
            voting_k=self.voting_k,
        )


class SSDDBC(_SemiSupervisedClusterMixin, BaseEstimator):  # type: ignore[misc]
    """SS-DDBC, semi-supervised density-based clustering, as a scikit-learn estimator.

    Parameters
    ----------
    k : int, default 10
        Neighbours for the densities, ``1 <= k < n_samples``.
    density_percentile : float, default 75
        Points whose relative density reaches this percentile form the core set.
    dense_method : {0, 1, 2, 3}, default 1
        Density: 0 mean, 1 median, 2 normalised, 3 exponential.
    co_mode : {1, 2, 3}, default 2
        Cutoff: 1 ``co_manual``, 2 mean k-NN distance, 3 per-point relative.
    co_manual : float or None, default None
        The cutoff for ``co_mode=1``.
    assign_model : {1, 2, 3}, default 3
        Sparse-point assignment: 1 nearest mean, 2 weighted vote, 3 three nearest members.
    voting_k : int, default 5
        Voters for ``assign_model=2``.
    metric : {"euclidean", "cosine"}, default "euclidean"
        ``"cosine"`` clusters the L2-normalised rows (see :mod:`ssddbc._metric`).

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster id of every sample, ``0 .. n_clusters_ - 1``.
    n_clusters_ : int
        Number of clusters.
    core_sample_indices_ : ndarray of shape (n_core,)
        Sorted indices of the core samples (high-density points of the core clusters).
    unknown_clusters_ : ndarray
        Ids of the clusters with no labelled member (candidate novel classes).
    cluster_category_labels_ : dict
        Cluster id -> class (a value of ``y``) for the clusters the label rule names.
    densities_ : ndarray of shape (n_samples,)
        Absolute k-NN densities.
    class_labels_ : ndarray of shape (n_samples,)
        Each sample's pseudo-label: the class (a value of ``y``) most of its cluster's
        labelled members carry, or a novel id for a cluster without labelled members (the
        rule of :mod:`ssddbc.grid_search.pseudo_labels`; with integer ``y`` novel ids count
        on from its largest labelled class, otherwise they are ``"novel_0"``, ``"novel_1"``,
        ...).
    cluster_to_class_ : dict
        Cluster id -> its value in ``class_labels_``, every cluster.
    novel_clusters_ : ndarray of int64
        Sorted ids of the clusters without labelled members.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Notes
    -----
    The defaults are those of ``adaptive_density_clustering`` (the parameter table's); the
    options of the function that do nothing (``random_state``, ``silent``, ...) are not
    exposed.
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = dict(_ALGORITHM_CONSTRAINTS)

    def __init__(
        self,
        k: int = _D["k"],
        density_percentile: float = _D["density_percentile"],
        *,
        dense_method: int = _D["dense_method"],
        co_mode: int = _D["co_mode"],
        co_manual: float | None = _D["co_manual"],
        assign_model: int = _D["assign_model"],
        voting_k: int = _D["voting_k"],
        metric: str = _D["metric"],
    ) -> None:
        self.k = k
        self.density_percentile = density_percentile
        self.dense_method = dense_method
        self.co_mode = co_mode
        self.co_manual = co_manual
        self.assign_model = assign_model
        self.voting_k = voting_k
        self.metric = metric

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.allow_nan = False
        return tags

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        known_mask: Any = None,
        labeled_mask: Any = None,
        precomputed_knn: Any = None,
        pairwise_distances: Any = None,
    ) -> SSDDBC:
        """Cluster ``X``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Features (L2-normalise them, or use ``metric="cosine"``, for embeddings).
        y : array_like of shape (n_samples,), optional
            Class labels; only the labelled samples' values are read.
        known_mask, labeled_mask : array_like of shape (n_samples,), optional, keyword-only
            Known-class samples and samples whose label may be used (boolean or 0/1); see
            the module docstring for the defaults.
        precomputed_knn, pairwise_distances : optional, keyword-only
            Passed to ``adaptive_density_clustering`` (a knncache graph of ``X`` for this
            ``metric``, the distance matrix); only speed changes.

        Returns
        -------
        SSDDBC
            ``self``, fitted.

        Raises
        ------
        EstimatorParameterError
            A constructor parameter is invalid.
        InvalidInputError
            Bad ``X``, ``y`` or masks (anything the algorithm refuses, too).
        """
        _validate_params(self, self._parameter_constraints)
        x = _check_X(self, X, reset=True)
        targets, known, labeled, classes = _resolve_split(y, known_mask, labeled_mask, len(x))
        labels, n_clusters, unknown, _, category, _, core_clusters, densities = cluster(
            x,
            targets,
            known,
            labeled,
            self.k,
            self.density_percentile,
            self._algorithm_params(),
            precomputed_knn=precomputed_knn,
            pairwise_distances=pairwise_distances,
            metric=self.metric,
            stacklevel=2,
        )
        self.labels_ = labels
        self.n_clusters_ = int(n_clusters)
        core = sorted(int(i) for members in core_clusters for i in members)
        self.core_sample_indices_ = np.asarray(core, dtype=np.int64)
        self.unknown_clusters_ = np.asarray(unknown, dtype=np.int64)
        self.cluster_category_labels_ = {
            int(cid): classes[code].item() for cid, code in category.items()
        }
        self.densities_ = densities
        codes, _, novel, start = assign_classes(labels, targets, labeled)
        self._set_classes(labels, codes, novel, start, classes)
        return self


class SSDDBCSearch(_SemiSupervisedClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Grid search of SS-DDBC's ``k`` and density percentile, by the label-only score.

    Runs :func:`ssddbc.grid_search.api.run_clustering_search_on_features` and keeps the
    selected configuration's clustering. Selection never reads ground truth outside the
    labelled samples (score ``-L1 + 3 * silhouette``); the accuracies in :attr:`results_`
    are an oracle, for reporting.

    Parameters
    ----------
    k_range, density_range : iterable of int
        The grid, e.g. ``range(3, 21)`` and ``range(40, 100, 5)``.
    n_jobs : int or None, default None
        Worker processes with joblib's meaning: None or -1 every usable core, -2 all but
        one, 1 in this process; more than the usable cores is capped with a warning; 0 is a
        :class:`~ssddbc.SearchConfigError`. Ignored with ``executor``.
    store : knncache.KnnStore or None, default None
        Where the neighbour graph lives (None: a temporary store for the call).
    executor : concurrent.futures.Executor or None, default None
        Run the configurations there (e.g. a Dask ``client.get_executor()``). ``clone``
        shares ``store`` and ``executor`` with the clone instead of copying them.
    dense_method, co_mode, co_manual, assign_model, voting_k, metric
        Fixed algorithm options, as in :class:`SSDDBC`.

    Attributes
    ----------
    best_params_ : dict
        ``{"k": ..., "density_percentile": ...}`` with the highest score (ties: first in
        grid order).
    best_score_ : float
        Its score.
    best_index_ : int
        Its row in :attr:`results_`.
    labels_, n_clusters_, core_sample_indices_, densities_
        The selected configuration's clustering (as :class:`SSDDBC` gives it).
    class_labels_, cluster_to_class_, novel_clusters_
        Its pseudo-labels, as :class:`SSDDBC` gives them (the search result's
        ``pseudo_labels``, in ``y``'s values).
    best_metrics_ : dict
        The selected configuration's metrics (score, All/Old/New accuracy on the evaluation
        samples, ...).
    results_ : dict of lists
        One row per configuration, k outer, percentile inner, in the spirit of
        ``cv_results_``: ``params``, ``param_k``, ``param_density_percentile``, ``score``
        (alias ``mean_score``), ``rank_score`` (1 = best; failed cells last), ``l1_loss``,
        ``silhouette``, ``all_acc``, ``old_acc``, ``new_acc`` (oracle, on the evaluation
        samples), ``n_clusters``, ``n_unknown_clusters``, ``error`` ("" when it ran).
    search_result_ : ssddbc.grid_search.api.ClusteringSearchResult
        What the function returned.
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        # The grid and the store are checked by the search itself (one home for each rule).
        "k_range": "no_validation",
        "density_range": "no_validation",
        "n_jobs": [Interval(Integral, None, None, closed="neither"), None],
        "store": "no_validation",
        "executor": [Executor, None],
        **{
            name: c
            for name, c in _ALGORITHM_CONSTRAINTS.items()
            if name not in ("k", "density_percentile")
        },
    }

    def __init__(
        self,
        k_range: Iterable[int],
        density_range: Iterable[int],
        *,
        n_jobs: int | None = None,
        store: Any = None,
        executor: Executor | None = None,
        dense_method: int = _D["dense_method"],
        co_mode: int = _D["co_mode"],
        co_manual: float | None = _D["co_manual"],
        assign_model: int = _D["assign_model"],
        voting_k: int = _D["voting_k"],
        metric: str = _D["metric"],
    ) -> None:
        self.k_range = k_range
        self.density_range = density_range
        self.n_jobs = n_jobs
        self.store = store
        self.executor = executor
        self.dense_method = dense_method
        self.co_mode = co_mode
        self.co_manual = co_manual
        self.assign_model = assign_model
        self.voting_k = voting_k
        self.metric = metric

    def __sklearn_clone__(self) -> SSDDBCSearch:
        """A clone sharing ``store`` and ``executor``: resources are used, not copied."""
        params = {
            name: value if name in ("store", "executor") else clone(value, safe=False)
            for name, value in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        known_mask: Any = None,
        labeled_mask: Any = None,
        eval_mask: Any = None,
    ) -> SSDDBCSearch:
        """Search the grid on ``X`` and keep the selected clustering.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,), optional
            Class labels. The selection reads only the labelled samples' values; the
            accuracies reported in :attr:`results_` read those of ``eval_mask``.
        known_mask : array_like of shape (n_samples,), optional, keyword-only
            Default: the labelled samples (their classes are the known ones).
        labeled_mask : array_like of shape (n_samples,), optional, keyword-only
            Default: ``known_mask`` if given (the original's default), else scikit-learn's
            semi-supervised convention, ``y != -1`` (none without ``y``), as :class:`SSDDBC`.
        eval_mask : array_like of shape (n_samples,), optional, keyword-only
            Samples the accuracies are computed on (default: the unlabelled ones).

        Returns
        -------
        SSDDBCSearch
            ``self``, fitted.

        Raises
        ------
        EstimatorParameterError
            A constructor parameter is invalid.
        InvalidInputError, SearchConfigError, SearchFailedError
            As :func:`~ssddbc.grid_search.api.run_clustering_search_on_features`.
        """
        _validate_params(self, self._parameter_constraints)
        x = _check_X(self, X, reset=True)
        if known_mask is None:
            # scikit-learn's convention (y == -1 unlabelled), as SSDDBC's fit.
            _, known_mask, labeled_mask, _ = _resolve_split(y, None, labeled_mask, len(x))
            if y is None:
                y = np.full(len(x), -1, dtype=np.int64)
        y_arr = np.asarray(y)
        classes = None
        if y_arr.ndim == 1 and y_arr.dtype.kind not in "iu":
            # Class values of any type as codes in increasing order: equality is all the
            # search compares.
            classes, codes = np.unique(y_arr, return_inverse=True)
            y = codes.ravel()
        # joblib's n_jobs, resolved by the search's own rule (named as this estimator's).
        workers = None if self.executor is not None else resolve_n_jobs(self.n_jobs)
        result = run_clustering_search_on_features(
            x,
            y,
            known_mask,
            labeled_mask,
            k_range=self.k_range,
            density_range=self.density_range,
            return_all=True,
            store=self.store,
            executor=self.executor,
            eval_mask=eval_mask,
            params=self._algorithm_params(),
            metric=self.metric,
            max_workers=workers,
        )
        self.search_result_ = result
        self.best_params_ = dict(result.best_params)
        self.best_score_ = float(result.score)
        self.labels_ = result.labels
        self.n_clusters_ = int(result.n_clusters)
        self.core_sample_indices_ = result.core_points
        self.densities_ = result.densities
        pseudo = result.pseudo_labels
        assert pseudo is not None  # the search always builds them
        novel = pseudo.novel_clusters
        start = int(pseudo.metadata.get("novel_label_start", 0))
        self._set_classes(pseudo.clusters, pseudo.labels, novel, start, classes)
        self.best_metrics_ = dict(result.metrics)
        self.results_ = _results_table(result.results_grid or {}, result.errors)
        cell = (self.best_params_["k"], self.best_params_["density_percentile"])
        self.best_index_ = self.results_["params"].index(
            {"k": cell[0], "density_percentile": cell[1]}
        )
        return self


_RESULT_COLUMNS = (
    "score",
    "l1_loss",
    "silhouette",
    "all_acc",
    "old_acc",
    "new_acc",
    "n_clusters",
    "n_unknown_clusters",
)


def _results_table(
    grid: Mapping[tuple[int, int], Mapping[str, Any]], errors: Mapping[tuple[int, int], str]
) -> dict[str, list[Any]]:
    """``cv_results_``-like columns over every configuration, k outer, percentile inner."""
    cells = sorted(set(grid) | set(errors))
    table: dict[str, list[Any]] = {
        "params": [{"k": k, "density_percentile": dp} for k, dp in cells],
        "param_k": [k for k, _ in cells],
        "param_density_percentile": [dp for _, dp in cells],
    }
    for column in _RESULT_COLUMNS:
        missing = -1 if column.startswith("n_") else math.nan
        table[column] = [grid[c][column] if c in grid else missing for c in cells]
    table["mean_score"] = list(table["score"])
    table["error"] = [errors.get(c, "") for c in cells]
    scores = np.array(
        [s if not (isinstance(s, float) and math.isnan(s)) else -np.inf for s in table["score"]]
    )
    # Rank 1 is the best; ties share the smallest rank (scikit-learn's rank_test_score).
    table["rank_score"] = [int(np.sum(scores > s)) + 1 for s in scores]
    return table
