"""The original's ``ssddbc.unknown.detection``: re-exports :mod:`ssddbc.ssddbc.unknown`."""

from __future__ import annotations

from ssddbc.ssddbc.unknown import (
    identify_unknown_clusters,
    identify_unknown_clusters_from_predictions,
)

__all__ = ["identify_unknown_clusters", "identify_unknown_clusters_from_predictions"]
