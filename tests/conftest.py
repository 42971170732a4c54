"""Suite-wide collection rules."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect scikit-learn's array-API estimator check.

    ``check_array_api_input`` runs only when ``SCIPY_ARRAY_API=1`` was set before scipy was
    first imported, and skips itself otherwise. Our estimators take NumPy input only (they
    convert with ``check_array``), so the check does not apply; it is deselected here, with
    this reason, rather than reported as a skip.
    """
    keep, drop = [], []
    for item in items:
        (drop if "check_array_api_input" in item.nodeid else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
