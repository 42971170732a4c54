"""pytest plugin (entry point ``pytest11``): store fixtures for code that uses ``knncache``.

Fixtures
--------
knn_store
    A fresh :class:`~knncache.EphemeralStore` per test, closed (directory removed) afterwards.
persistent_knn_store
    A :class:`~knncache.PersistentStore` rooted at ``tmp_path / "knn_cache"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from knncache._ephemeral import EphemeralStore
from knncache._persistent import PersistentStore


@pytest.fixture
def knn_store() -> Iterator[EphemeralStore]:
    """An :class:`~knncache.EphemeralStore` for one test; removed when the test ends."""
    store = EphemeralStore()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def persistent_knn_store(tmp_path: Path) -> Iterator[PersistentStore]:
    """A :class:`~knncache.PersistentStore` under the test's ``tmp_path``."""
    store = PersistentStore(tmp_path / "knn_cache")
    try:
        yield store
    finally:
        store.close()
