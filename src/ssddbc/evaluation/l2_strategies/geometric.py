"""The ``separation`` and ``penalty`` L2 components (the registry's calling convention)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc.evaluation.cluster_quality import compute_penalty_component as _penalty
from ssddbc.evaluation.cluster_quality import compute_separation_component as _separation

__all__ = ["compute_penalty_component", "compute_separation_component"]


def compute_separation_component(
    *, clusters: Any, X: Any, k: int, cluster_distance_method: str = "prototype", **_: Any
) -> tuple[float, dict[str, Any]]:
    """Separation of the core ``clusters`` (see :mod:`ssddbc.evaluation.cluster_quality`).

    Raises
    ------
    InvalidInputError
        ``clusters`` is None.
    """
    if clusters is None:
        raise InvalidInputError("clusters", "the separation component needs the core clusters")
    score, payload = _separation(clusters, np.asarray(X), k, cluster_distance_method)
    return score, {
        "separation_score": score,
        "orientation": "maximize",
        "details": payload["details"],
    }


def compute_penalty_component(
    *, X: Any, predictions: Any, k: int, neighbors: Any = None, **_: Any
) -> tuple[float, dict[str, Any]]:
    """Local density penalty of ``predictions`` (see :mod:`ssddbc.evaluation.cluster_quality`)."""
    value, payload = _penalty(X, predictions, k, neighbors)
    return value, {"penalty_score": value, "orientation": "minimize", "details": payload["details"]}
