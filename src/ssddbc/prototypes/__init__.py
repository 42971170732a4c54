"""Cluster prototypes, at the original research code's path ``ssddbc.prototypes``."""

from __future__ import annotations

from ssddbc.prototypes.prototype_builder import build_prototypes

__all__ = ["build_prototypes"]
