"""knncache: compute a k-nearest-neighbour graph once, cache it, share it as read-only memmaps."""

from __future__ import annotations

from knncache._ephemeral import EphemeralStore
from knncache._errors import (
    ArrayNotFoundError,
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    InvalidFeaturesError,
    InvalidKError,
    InvalidNameError,
    KnnCacheError,
    KnnCacheWarning,
    LockTimeoutError,
    StoreClosedError,
    StoreWriteError,
    UnknownMetricError,
)
from knncache._fingerprint import FORMAT_VERSION, fingerprint
from knncache._knn import KnnGraph, compute_knn
from knncache._persistent import PersistentStore
from knncache._ref import KnnRef
from knncache._store import CorruptEntry, EntryInfo, KnnStore

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "ArrayNotFoundError",
    "CorruptEntry",
    "CorruptEntryError",
    "EntryInfo",
    "EntryNotFoundError",
    "EphemeralStore",
    "FeaturesNotStoredError",
    "InvalidFeaturesError",
    "InvalidKError",
    "InvalidNameError",
    "KnnCacheError",
    "KnnCacheWarning",
    "KnnGraph",
    "KnnRef",
    "KnnStore",
    "LockTimeoutError",
    "PersistentStore",
    "StoreClosedError",
    "StoreWriteError",
    "UnknownMetricError",
    "__version__",
    "compute_knn",
    "fingerprint",
]
