"""SS-DDBC: semi-supervised density-based clustering for Generalized Category Discovery.

Subpackages keep the module paths of the original research code:
``ssddbc.density.density_estimation``, ``ssddbc.ssddbc.adaptive_clustering``,
``ssddbc.evaluation``, ``ssddbc.data``, ``ssddbc.grid_search.api``,
``ssddbc.grid_search.batch_runner`` and ``ssddbc.testing.test_superclass``.
"""

from __future__ import annotations

from knncache._version import __version__
from ssddbc._errors import FeatureCacheError, InvalidInputError, SearchConfigError, SsddbcError

__all__ = [
    "SSDDBC",
    "FeatureCacheError",
    "InvalidInputError",
    "SSDDBCSearch",
    "SearchConfigError",
    "SsddbcError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # The estimators import scikit-learn: loaded on first use, not with the package.
    if name in ("SSDDBC", "SSDDBCSearch"):
        from ssddbc import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'ssddbc' has no attribute {name!r}")
