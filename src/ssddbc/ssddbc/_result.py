"""The value ``adaptive_density_clustering`` returns: named fields, still the original 8-tuple."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["ClusteringResult"]


class ClusteringResult(NamedTuple):
    """SS-DDBC's outputs for one configuration.

    A named tuple, so ``labels, n_clusters, ... = adaptive_density_clustering(...)`` keeps
    working exactly as with the original 8-tuple, and new code reads ``out.labels``.
    """

    labels: npt.NDArray[np.int64]
    n_clusters: int
    unknown_clusters: list[int]
    clusters: list[set[int]]
    cluster_category_labels: dict[int, int]
    neighbors: npt.NDArray[np.int64]
    core_clusters: list[set[int]]
    densities: npt.NDArray[np.float64]
