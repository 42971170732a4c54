"""What the in-memory grid search returns, and its error when every configuration failed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssddbc._errors import SearchConfigError, SsddbcError
from ssddbc.grid_search.pseudo_labels import PseudoLabels, write_pseudo_labels

__all__ = ["ClusteringSearchResult", "SearchFailedError"]


class SearchFailedError(SsddbcError, RuntimeError):
    """Every configuration of a search raised; ``errors`` maps (k, dp) to the error text."""

    def __init__(self, errors: dict[tuple[int, int], str]) -> None:
        self.errors = dict(errors)
        first = next(iter(self.errors.items()), ((0, 0), "no configuration ran"))
        super().__init__(
            f"all {len(self.errors)} configurations failed; first, k={first[0][0]} "
            f"density_percentile={first[0][1]}: {first[1]}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


@dataclass
class ClusteringSearchResult:
    """What :func:`run_clustering_search_on_features` returns.

    Attributes
    ----------
    labels : ndarray of shape (N,)
        Final cluster id of every sample at the selected configuration.
    core_points : ndarray
        Sorted indices of the samples in the core clusters (pseudo-label anchors).
    best_params : dict
        ``{"k": ..., "density_percentile": ...}`` selected by the label-only score.
    score : float
        The selected configuration's score (higher is better); also readable as ``loss``,
        the original code's name for it.
    n_clusters : int
        Number of clusters at the selected configuration.
    densities : ndarray of shape (N,) or None
        Absolute densities at the selected configuration.
    results_grid : dict or None
        With ``return_all=True``: ``(k, density_percentile)`` → metrics dict (score, l1_loss,
        silhouette, silhouette_se (0.0 when exact), silhouette_sample (0 when exact),
        all/old/new accuracy (v2) on the evaluation mask, n_clusters, n_unknown_clusters).
    errors : dict
        ``(k, density_percentile)`` → error text for configurations that raised.
    knn_searches : int
        Neighbour searches this call ran (0 when the store already held the graph).
    knn_method : str
        The engine that built the neighbour graph: ``"exact"`` unless asked otherwise. With
        ``"hnsw"`` or ``"ivf"`` the graph may miss true neighbours, so the partitions are not
        guaranteed to equal the exact search's.
    knn_params : dict
        The approximate engine's resolved parameters (empty for exact).
    knn_recall : float
        Recall@k of the graph, measured by knncache on up to 1,000 seeded queries against the
        exact search when it was built; 1.0 for the exact graph.
    silhouette_se : float
        Standard error of the selected configuration's silhouette: 0.0 when it is exact,
        else that of the seeded sample it averages (N above the plan's
        ``exact_silhouette_max_n``).
    worker_pids : tuple of int
        Process ids that ran this call's configurations (sorted; this process's own id on
        the serial path). A :class:`SearchSession` keeps them across calls.
    metrics : dict
        The selected configuration's metrics (the keys of a ``results_grid`` value: score,
        all/old/new accuracy on the evaluation mask, ...), with or without ``return_all``.
    pseudo_labels : PseudoLabels or None
        The selected configuration's per-sample result as a training loop uses it:
        ``labels`` (each sample's assigned class: its cluster's majority labelled class, or a
        novel id for a cluster without labelled members), ``clusters``, ``core_mask``,
        ``densities``, ``labeled_mask`` (see :mod:`ssddbc.grid_search.pseudo_labels`);
        :meth:`save_pseudo_labels` writes them to a file.
    timings : dict
        Seconds this call spent in each stage: ``"prepare"`` (the neighbour graph, or
        finding it in the store, and the shared arrays: the split and the pairwise matrix
        or the silhouette sample's distance columns), ``"grid"`` (every configuration, on
        the workers) and ``"selection"`` (choosing the best and rerunning it for the
        labels and pseudo-labels).
    warnings : list of dict
        Why the selection may be a poor choice (empty when nothing is suspect): on an edge of
        the grid (extend it that way), a single cluster, or far more clusters than classes;
        each with ``kind`` and ``message`` (see
        :func:`ssddbc.grid_search._diagnose.selection_warnings`, the one home of the rules).
    """

    labels: np.ndarray
    core_points: np.ndarray
    best_params: dict[str, int]
    score: float
    n_clusters: int
    densities: np.ndarray | None = None
    results_grid: dict[tuple[int, int], dict[str, Any]] | None = None
    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    knn_searches: int = 0
    knn_method: str = "exact"
    knn_params: dict[str, Any] = field(default_factory=dict)
    knn_recall: float = 1.0
    silhouette_se: float = 0.0
    worker_pids: tuple[int, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    pseudo_labels: PseudoLabels | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def loss(self) -> float:
        """The original code's name for :attr:`score` (it is a score: higher is better)."""
        return self.score

    @property
    def all_acc(self) -> float:
        """The selected configuration's All accuracy on the evaluation mask (oracle)."""
        return float(self.metrics.get("all_acc", float("nan")))

    @property
    def old_acc(self) -> float:
        """The selected configuration's Old (known classes) accuracy (oracle)."""
        return float(self.metrics.get("old_acc", float("nan")))

    @property
    def new_acc(self) -> float:
        """The selected configuration's New (novel classes) accuracy (oracle)."""
        return float(self.metrics.get("new_acc", float("nan")))

    def _pseudo(self) -> PseudoLabels:
        if self.pseudo_labels is None:
            raise SearchConfigError("pseudo_labels", "this result carries no pseudo-labels")
        return self.pseudo_labels

    @property
    def class_labels(self) -> np.ndarray:
        """Each sample's assigned class (``pseudo_labels.labels``)."""
        return self._pseudo().labels

    @property
    def cluster_to_class(self) -> dict[int, int]:
        """Cluster id -> assigned class, every cluster (novel clusters to their novel id)."""
        return self._pseudo().cluster_to_class

    @property
    def novel_clusters(self) -> list[int]:
        """Sorted ids of the clusters without labelled members (candidate novel classes)."""
        return self._pseudo().novel_clusters

    def save_pseudo_labels(
        self, path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray | None = None
    ) -> Path:
        """Write :attr:`pseudo_labels` as a pseudo-labels ``.npz`` (atomically).

        The format is that of a batch run's ``<run>/<superclass>/pseudo_labels.npz`` (see
        :mod:`ssddbc.grid_search.pseudo_labels`); read it back with
        :func:`~ssddbc.grid_search.pseudo_labels.read_pseudo_labels` or plain ``np.load``.

        Parameters
        ----------
        path : path-like
            The file to write (its folder must exist).
        indices : array of shape (N,) or None
            Each sample's index in your dataset (default ``0..N-1``, the rows passed).

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        InvalidInputError
            ``indices`` is not N integers (checked before anything is written).
        """
        return write_pseudo_labels(path, self._pseudo().with_indices(indices))
