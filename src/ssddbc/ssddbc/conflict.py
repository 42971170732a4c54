"""The original's ``ssddbc.ssddbc.conflict``: see :mod:`ssddbc.compat.conflict`."""

from __future__ import annotations

from ssddbc.compat.conflict import compute_cluster_cohesion, ssddbc_conflict_resolution

__all__ = ["compute_cluster_cohesion", "ssddbc_conflict_resolution"]
