"""Unknown (novel-category) clusters, at the original research code's path ``ssddbc.unknown``."""

from __future__ import annotations

from ssddbc.unknown.detection import (
    identify_unknown_clusters,
    identify_unknown_clusters_from_predictions,
)

__all__ = ["identify_unknown_clusters", "identify_unknown_clusters_from_predictions"]
