"""The original's ``ssddbc.evaluation.l2_strategies``: see :mod:`ssddbc.compat.l2_strategies`."""

from __future__ import annotations

from ssddbc.compat.l2_strategies import (
    L2_REGISTRY,
    L2ComponentFn,
    available_l2_components,
    compute_penalty_component,
    compute_separation_component,
    compute_silhouette_component,
    register_l2_component,
)

__all__ = [
    "L2_REGISTRY",
    "L2ComponentFn",
    "available_l2_components",
    "compute_penalty_component",
    "compute_separation_component",
    "compute_silhouette_component",
    "register_l2_component",
]
