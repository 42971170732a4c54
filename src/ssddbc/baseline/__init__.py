"""The k-means baseline, at the original research code's path ``ssddbc.baseline``."""

from __future__ import annotations

from ssddbc.baseline.kmeans import test_kmeans_baseline

__all__ = ["test_kmeans_baseline"]
