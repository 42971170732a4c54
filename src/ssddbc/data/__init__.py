"""Feature-cache data for SS-DDBC: the file format, the superclass table, built-in data.

* :mod:`~ssddbc.data.feature_cache`: :class:`SuperclassData`, :func:`load_superclass`,
  :func:`list_superclasses`, :func:`write_superclass`, :func:`convert_feature_cache`;
* :mod:`~ssddbc.data.superclasses`: :data:`SUPERCLASSES`, the 15 CIFAR-100 superclasses;
* :mod:`~ssddbc.data.splits`: :func:`make_gcd_split`;
* :mod:`~ssddbc.data.make_cache` (``python -m ssddbc.data.make_cache``): a cache from your
  own arrays (not imported here, so that ``-m`` runs it cleanly);
* :mod:`~ssddbc.data.digits`: :func:`build_digits_feature_cache` (scikit-learn's bundled
  digits, no download);
* :mod:`~ssddbc.data.synthetic`: :func:`make_synthetic_superclass`.
"""

from __future__ import annotations

from ssddbc.data.digits import (
    DIGITS_SUPERCLASSES,
    build_digits_feature_cache,
    load_digits_superclass,
)
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
from ssddbc.data.splits import make_gcd_split, train_test_permutation
from ssddbc.data.superclasses import SUPERCLASSES, Superclass
from ssddbc.data.synthetic import make_synthetic_superclass

__all__ = [
    "DIGITS_SUPERCLASSES",
    "NPZ_NAME",
    "PKL_NAME",
    "SUPERCLASSES",
    "Superclass",
    "SuperclassData",
    "build_digits_feature_cache",
    "convert_feature_cache",
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
