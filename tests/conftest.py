"""Suite-wide collection rules."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect scikit-learn's array-API estimator check unless ``SCIPY_ARRAY_API=1``.

    ``check_array_api_input`` runs only when ``SCIPY_ARRAY_API=1`` was set before scipy was
    first imported, and skips itself otherwise; setting it for the whole suite would change
    scipy for every test. So the check is deselected here and run on its own, in a process
    started with that variable (``tests/system/test_array_api.py``), where it must pass.
    """
    if os.environ.get("SCIPY_ARRAY_API") == "1":
        return
    keep, drop = [], []
    for item in items:
        (drop if "check_array_api_input" in item.nodeid else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
