"""The original's ``l2_strategies.silhouette``: see :mod:`ssddbc.compat.l2_strategies`."""

from __future__ import annotations

from ssddbc.compat.l2_strategies import compute_silhouette_component

__all__ = ["compute_silhouette_component"]
