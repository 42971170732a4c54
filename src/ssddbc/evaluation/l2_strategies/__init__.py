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

from ssddbc._errors import InvalidInputError
from ssddbc.evaluation.l2_strategies.geometric import (
    compute_penalty_component,
    compute_separation_component,
)
from ssddbc.evaluation.l2_strategies.silhouette import compute_silhouette_component

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
