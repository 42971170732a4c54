"""The version of the ``knncache`` distribution (both packages, ``knncache`` and ``ssddbc``).

The one place the version is written: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``)
and ``knncache.__version__`` and ``ssddbc.__version__`` import it.
"""

from __future__ import annotations

__version__ = "0.1.0"
