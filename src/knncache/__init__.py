"""knncache: compute a k-nearest-neighbour graph once, cache it, share it as read-only memmaps.

Typical use: the main process ensures the graph once at the largest k it needs and sends the
small :class:`KnnRef` to worker processes, which load any k <= k_max as memory maps::

    from knncache import PersistentStore

    store = PersistentStore("knn_cache", max_bytes=2 * 2**30)
    ref = store.ensure(features, k=21)            # one exact search, or a cache hit
    neighbors, distances = ref.load(k=5)          # in any process: read-only memmaps

Entries are keyed by :func:`fingerprint` (content, shape, dtype, metric, format version), so
changed features never get an old graph. :class:`EphemeralStore` is the same API over a
private temporary directory removed on every exit path. Everything the library raises on
purpose derives from :class:`KnnCacheError`.
"""

from __future__ import annotations

from knncache._atomic import atomic_write
from knncache._engine_params import ENGINE_DEFAULTS, check_engine
from knncache._engines import compute_knn, entry_key, recall_at_k
from knncache._ephemeral import EphemeralStore
from knncache._errors import (
    ArrayNotFoundError,
    CorruptEntryError,
    EntryNotFoundError,
    FeaturesNotStoredError,
    ForeignObjectError,
    InvalidFeaturesError,
    InvalidKError,
    InvalidNameError,
    InvalidParameterError,
    KnnCacheError,
    KnnCacheWarning,
    LockTimeoutError,
    MissingDependencyError,
    StoreClosedError,
    StoreWriteError,
    UnknownMetricError,
)
from knncache._export import umap_knn
from knncache._fingerprint import FORMAT_VERSION, fingerprint
from knncache._graph import KnnGraph
from knncache._housekeeping import CorruptEntry, EntryInfo
from knncache._locks import LockMarker
from knncache._persistent import PersistentStore
from knncache._ref import KnnRef
from knncache._store import KnnStore
from knncache._version import __version__

__all__ = [
    "ENGINE_DEFAULTS",
    "FORMAT_VERSION",
    "ArrayNotFoundError",
    "CorruptEntry",
    "CorruptEntryError",
    "EntryInfo",
    "EntryNotFoundError",
    "EphemeralStore",
    "FeaturesNotStoredError",
    "ForeignObjectError",
    "InvalidFeaturesError",
    "InvalidKError",
    "InvalidNameError",
    "InvalidParameterError",
    "KnnCacheError",
    "KnnCacheWarning",
    "KnnGraph",
    "KnnRef",
    "KnnStore",
    "LockMarker",
    "LockTimeoutError",
    "MissingDependencyError",
    "PersistentStore",
    "StoreClosedError",
    "StoreWriteError",
    "UnknownMetricError",
    "__version__",
    "atomic_write",
    "check_engine",
    "compute_knn",
    "entry_key",
    "fingerprint",
    "recall_at_k",
    "umap_knn",
]
