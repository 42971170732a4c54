"""The original's ``ssddbc.utils.co_calculation``: re-exports :mod:`ssddbc.ssddbc.co_calculation`.

The original implemented only ``co_mode=2``; modes 1 and 3 of the design are available too.
"""

from __future__ import annotations

from ssddbc.ssddbc.co_calculation import (
    CO_MODES,
    apply_co_filter,
    compute_co_value,
    get_co_mode_description,
)

__all__ = ["CO_MODES", "apply_co_filter", "compute_co_value", "get_co_mode_description"]
