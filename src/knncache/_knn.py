"""Import path of the graph type, its validation and ``compute_knn`` for the store modules.

The graph type and its validation live in :mod:`knncache._graph`, ``compute_knn`` in
:mod:`knncache._engines`; new code imports from there.
"""

from __future__ import annotations

from knncache._engines import compute_knn
from knncache._graph import (
    METRICS,
    KnnGraph,
    check_graph,
    validate_features,
    validate_k,
    validate_metric,
)

__all__ = [
    "METRICS",
    "KnnGraph",
    "check_graph",
    "compute_knn",
    "validate_features",
    "validate_k",
    "validate_metric",
]
