"""The original's ``ssddbc.prototypes.prototype_builder``: see :mod:`ssddbc.compat.prototypes`."""

from __future__ import annotations

from ssddbc.compat.prototypes import build_prototypes

__all__ = ["build_prototypes"]
