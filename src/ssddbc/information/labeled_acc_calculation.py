"""The original's ``information.labeled_acc_calculation``: see :mod:`ssddbc.compat.labeled_acc`."""

from __future__ import annotations

from ssddbc.compat.labeled_acc import compute_labeled_acc_with_unknown_penalty

__all__ = ["compute_labeled_acc_with_unknown_penalty"]
