"""Registry of the L2 (label-free) components of the original's total loss.

Each component is ``fn(**inputs) -> (value, metrics)`` with an orientation: a
``"maximize"`` component adds ``weight * value`` to L2, a ``"minimize"`` one subtracts it.
Registered: ``separation`` and ``silhouette`` (both maximised), as in the original, and
``penalty`` (the local density penalty, minimised): the original named it as the default of
``use_cluster_quality`` but never registered it, so that setting failed there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask, as_targets
from ssddbc.compat import cluster_quality
from ssddbc.evaluation.score import unlabelled_silhouette

__all__ = [
    "L2_REGISTRY",
    "L2ComponentFn",
    "available_l2_components",
    "compute_penalty_component",
    "compute_separation_component",
    "compute_silhouette_component",
    "register_l2_component",
]

L2ComponentFn = Callable[..., tuple[float, dict[str, Any]]]


def compute_separation_component(
    *, clusters: Any, X: Any, k: int, cluster_distance_method: str = "prototype", **_: Any
) -> tuple[float, dict[str, Any]]:
    """Separation of the core ``clusters`` (see :mod:`ssddbc.compat.cluster_quality`).

    Raises
    ------
    InvalidInputError
        ``clusters`` is None.
    """
    if clusters is None:
        raise InvalidInputError("clusters", "the separation component needs the core clusters")
    score, payload = cluster_quality.compute_separation_component(
        clusters, np.asarray(X), k, cluster_distance_method
    )
    return score, {
        "separation_score": score,
        "orientation": "maximize",
        "details": payload["details"],
    }


def compute_penalty_component(
    *, X: Any, predictions: Any, k: int, neighbors: Any = None, **_: Any
) -> tuple[float, dict[str, Any]]:
    """Local density penalty of ``predictions`` (see :mod:`ssddbc.compat.cluster_quality`)."""
    value, payload = cluster_quality.compute_penalty_component(X, predictions, k, neighbors)
    return value, {"penalty_score": value, "orientation": "minimize", "details": payload["details"]}


def compute_silhouette_component(
    *, X: Any, predictions: Any, labeled_mask: Any, **_: Any
) -> tuple[float, dict[str, Any]]:
    """:func:`ssddbc.evaluation.unlabelled_silhouette` as ``(score, metrics)``.

    0.0 with fewer than two clusters or no unlabelled sample, as in the original. The
    metrics hold ``silhouette_score``, ``orientation``, ``implemented`` and, when computed,
    ``n_unlabeled``, ``n_labeled``, ``n_clusters`` and ``unlabeled_silhouette_mean`` (the
    original's median, standard deviation and all-sample mean are not computed).
    """
    labels = as_targets(predictions, None, "predictions")
    lab = as_mask(labeled_mask, "labeled_mask", labels.shape[0])
    n_clusters = int(np.unique(labels).size)
    n_unl = int((~lab).sum())
    base: dict[str, Any] = {"orientation": "maximize", "implemented": True}
    if n_clusters < 2 or n_unl == 0:
        reason = "fewer than two clusters" if n_clusters < 2 else "no unlabelled sample"
        return 0.0, {"silhouette_score": 0.0, **base, "reason": reason}
    score = unlabelled_silhouette(labels, lab, X=X)
    return score, {
        "silhouette_score": score,
        **base,
        "n_unlabeled": n_unl,
        "n_labeled": int(lab.sum()),
        "n_clusters": n_clusters,
        "unlabeled_silhouette_mean": score,
    }


L2_REGISTRY: dict[str, dict[str, object]] = {
    "separation": {
        "fn": compute_separation_component,
        "orientation": "maximize",
        "description": "separation of the core clusters (higher is better)",
    },
    "silhouette": {
        "fn": compute_silhouette_component,
        "orientation": "maximize",
        "description": "mean silhouette of the unlabelled samples (higher is better)",
    },
    "penalty": {
        "fn": compute_penalty_component,
        "orientation": "minimize",
        "description": "local density penalty over each point's k neighbours",
    },
}


def register_l2_component(
    name: str, fn: L2ComponentFn, orientation: str = "minimize", description: str = ""
) -> None:
    """Add a component to :data:`L2_REGISTRY`.

    Raises
    ------
    InvalidInputError
        ``name`` is taken, or ``orientation`` is not ``"maximize"``/``"minimize"``.
    """
    if name in L2_REGISTRY:
        raise InvalidInputError("name", f"L2 component {name!r} is already registered")
    if orientation not in ("maximize", "minimize"):
        raise InvalidInputError(
            "orientation", f"expected 'maximize' or 'minimize', got {orientation!r}"
        )
    L2_REGISTRY[name] = {"fn": fn, "orientation": orientation, "description": description}


def available_l2_components() -> dict[str, dict[str, object]]:
    """A copy of :data:`L2_REGISTRY`."""
    return dict(L2_REGISTRY)
