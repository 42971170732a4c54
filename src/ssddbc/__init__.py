"""SS-DDBC: semi-supervised density-based clustering for Generalized Category Discovery.

Subpackages keep the module paths of the original research code:
``ssddbc.density.density_estimation``, ``ssddbc.ssddbc.adaptive_clustering``,
``ssddbc.evaluation``, ``ssddbc.data``, ``ssddbc.grid_search.api``,
``ssddbc.grid_search.batch_runner`` and ``ssddbc.testing.test_superclass``.
"""

from __future__ import annotations

from ssddbc._errors import (
    FeatureCacheError,
    InvalidInputError,
    RunFolderError,
    SearchConfigError,
    SsddbcError,
    SsddbcWarning,
)

__all__ = [
    "FeatureCacheError",
    "InvalidInputError",
    "RunFolderError",
    "SearchConfigError",
    "SsddbcError",
    "SsddbcWarning",
]
__version__ = "0.1.0"
