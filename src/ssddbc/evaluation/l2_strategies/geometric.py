"""The original's ``l2_strategies.geometric``: see :mod:`ssddbc.compat.l2_strategies`."""

from __future__ import annotations

from ssddbc.compat.l2_strategies import compute_penalty_component, compute_separation_component

__all__ = ["compute_penalty_component", "compute_separation_component"]
