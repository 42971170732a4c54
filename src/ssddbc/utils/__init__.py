"""The cutoff ``co``, at the original research code's path ``ssddbc.utils``."""

from __future__ import annotations

from ssddbc.utils.co_calculation import apply_co_filter, compute_co_value, get_co_mode_description

__all__ = ["apply_co_filter", "compute_co_value", "get_co_mode_description"]
