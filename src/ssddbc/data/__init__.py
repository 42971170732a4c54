"""Feature-cache data for SS-DDBC: the file format, the superclass table, built-in data.

* :mod:`~ssddbc.data.feature_cache`: :class:`SuperclassData`, :func:`load_superclass`,
  :func:`list_superclasses`, :func:`write_superclass`, :func:`convert_feature_cache`;
* :mod:`~ssddbc.data.superclasses`: :data:`SUPERCLASSES`, the 15 CIFAR-100 superclasses;
* :mod:`~ssddbc.data.splits`: :func:`make_gcd_split`;
* :mod:`~ssddbc.data.make_cache` (``python -m ssddbc.data.make_cache``): a cache from your
  own arrays (not imported here, so that ``-m`` runs it cleanly);
* :mod:`~ssddbc.data.digits`: :func:`build_digits_feature_cache` (scikit-learn's bundled
  digits, no download);
* :mod:`~ssddbc.data.synthetic`: :func:`make_synthetic_superclass`;
* the original's names: :class:`FeatureLoader`, :class:`EnhancedDataset`,
  :func:`get_superclass_info`, :data:`CIFAR100_SUPERCLASS_CONFIG`. Its PyTorch model and
  feature-extraction names (``DataProvider``, ``EnhancedDataProvider``, ``FeatureExtractor``,
  ``ModelLoader``, ``DatasetLoader``, ``set_deterministic_behavior``, ``load_model_simple``)
  raise :class:`~ssddbc._errors.TorchRequiredError` (an ``ImportError``) when imported.
"""

from __future__ import annotations

from typing import Any

from ssddbc._errors import TorchRequiredError
from ssddbc.data.dataset_config import CIFAR100_SUPERCLASS_CONFIG, get_superclass_info
from ssddbc.data.digits import (
    DIGITS_SUPERCLASSES,
    build_digits_feature_cache,
    load_digits_superclass,
)
from ssddbc.data.enhanced_data_provider import EnhancedDataset
from ssddbc.data.feature_cache import (
    NPZ_NAME,
    PKL_NAME,
    SuperclassData,
    convert_feature_cache,
    list_superclasses,
    load_superclass,
    load_superclass_file,
    superclass_from_dict,
    write_superclass,
)
from ssddbc.data.feature_loader import FeatureLoader
from ssddbc.data.splits import make_gcd_split, train_test_permutation
from ssddbc.data.superclasses import SUPERCLASSES, Superclass
from ssddbc.data.synthetic import make_synthetic_superclass

__all__ = [
    "CIFAR100_SUPERCLASS_CONFIG",
    "DIGITS_SUPERCLASSES",
    "NPZ_NAME",
    "PKL_NAME",
    "SUPERCLASSES",
    "EnhancedDataset",
    "FeatureLoader",
    "Superclass",
    "SuperclassData",
    "build_digits_feature_cache",
    "convert_feature_cache",
    "get_superclass_info",
    "list_superclasses",
    "load_digits_superclass",
    "load_superclass",
    "load_superclass_file",
    "make_gcd_split",
    "make_synthetic_superclass",
    "superclass_from_dict",
    "train_test_permutation",
    "write_superclass",
]

#: The original's names that need PyTorch; importing them raises TorchRequiredError.
TORCH_NAMES = frozenset(
    {
        "DataProvider",
        "DatasetLoader",
        "EnhancedDataProvider",
        "FeatureExtractor",
        "ModelLoader",
        "load_model_simple",
        "set_deterministic_behavior",
    }
)


def __getattr__(name: str) -> Any:
    if name in TORCH_NAMES:
        raise TorchRequiredError(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
