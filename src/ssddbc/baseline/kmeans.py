"""The original's ``ssddbc.baseline.kmeans``: see :mod:`ssddbc.compat.kmeans`."""

from __future__ import annotations

from ssddbc.compat.kmeans import test_kmeans_baseline

__all__ = ["test_kmeans_baseline"]
