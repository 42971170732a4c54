"""Clustering reports, at the original research code's path ``ssddbc.information``."""

from __future__ import annotations

from ssddbc.information.labeled_acc_calculation import compute_labeled_acc_with_unknown_penalty

__all__ = ["compute_labeled_acc_with_unknown_penalty"]
