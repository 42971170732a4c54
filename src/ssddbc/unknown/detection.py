"""The original's ``ssddbc.unknown.detection``: see :mod:`ssddbc.compat.unknown`."""

from __future__ import annotations

from ssddbc.compat.unknown import identify_unknown_clusters
from ssddbc.ssddbc.unknown import identify_unknown_clusters_from_predictions

__all__ = ["identify_unknown_clusters", "identify_unknown_clusters_from_predictions"]
