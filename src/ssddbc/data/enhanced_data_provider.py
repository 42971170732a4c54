"""The original's ``EnhancedDataset``: a feature dict with the views its callers use.

``EnhancedDataProvider`` (which could also extract features with a PyTorch model) is not
provided: asking for it raises :class:`~ssddbc._errors.TorchRequiredError`. Load a cache with
:class:`ssddbc.data.FeatureLoader` and wrap the dict in :class:`EnhancedDataset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from ssddbc._errors import TorchRequiredError

__all__ = ["EnhancedDataset"]


class EnhancedDataset:
    """The arrays of one superclass, its split and summary counts.

    Parameters
    ----------
    feature_dict : dict
        The original's layout (``all_*`` required; ``train_*`` / ``test_*`` optional), e.g.
        from :meth:`ssddbc.data.FeatureLoader.load` or ``SuperclassData.to_dict()``.
    dataset_name : str
    use_l2 : bool
    source : str
        Where the features came from (``"cache"``).
    """

    def __init__(
        self,
        feature_dict: Mapping[str, Any],
        dataset_name: str = "unknown",
        use_l2: bool = True,
        source: str = "unknown",
    ) -> None:
        self.all_features = np.asarray(feature_dict["all_features"])
        self.all_targets = np.asarray(feature_dict["all_targets"])
        self.all_known_mask = np.asarray(feature_dict["all_known_mask"], dtype=bool)
        self.all_labeled_mask = np.asarray(feature_dict["all_labeled_mask"], dtype=bool)
        get = feature_dict.get
        self.train_features: Any = get("train_features")
        self.train_targets: Any = get("train_targets")
        self.train_known_mask: Any = get("train_known_mask")
        self.train_labeled_mask: Any = get("train_labeled_mask")
        self.test_features: Any = get("test_features")
        self.test_targets: Any = get("test_targets")
        self.test_known_mask: Any = get("test_known_mask")
        self.test_labeled_mask: Any = get("test_labeled_mask")
        self.dataset_name = dataset_name
        self.use_l2 = use_l2
        self.source = source
        self.n_samples = int(self.all_features.shape[0])
        self.feat_dim = int(self.all_features.shape[-1])
        train = self.train_features
        # A cache whose training split is empty is all test data, as in the original.
        self.has_train_test_split = train is not None and len(train) > 0
        if train is not None and self.has_train_test_split:
            self.train_size = len(train)
            test = self.test_features
            self.test_size = 0 if test is None else len(test)
            self.test_start_idx = self.train_size
        else:
            self.train_size, self.test_size, self.test_start_idx = 0, self.n_samples, 0
        self.n_known = int(self.all_known_mask.sum())
        self.n_unknown = self.n_samples - self.n_known
        self.n_labeled = int(self.all_labeled_mask.sum())
        self.n_unlabeled = self.n_samples - self.n_labeled
        self.n_classes = int(np.unique(self.all_targets).size)
        self.n_known_classes = int(np.unique(self.all_targets[self.all_known_mask]).size)
        self.n_unknown_classes = int(np.unique(self.all_targets[~self.all_known_mask]).size)

    def get_test_subset(self, predictions: Any = None) -> dict[str, Any]:
        """The test split (everything without a split), with its slice of ``predictions``."""
        if not self.has_train_test_split:
            out: dict[str, Any] = {
                "features": self.all_features,
                "targets": self.all_targets,
                "known_mask": self.all_known_mask,
                "labeled_mask": self.all_labeled_mask,
                "n_samples": self.n_samples,
            }
            if predictions is not None:
                out["predictions"] = np.asarray(predictions)
            return out
        s = self.test_start_idx
        out = {
            "features": self.all_features[s:],
            "targets": self.all_targets[s:],
            "known_mask": self.all_known_mask[s:],
            "labeled_mask": self.all_labeled_mask[s:],
            "n_samples": self.test_size,
        }
        if predictions is not None:
            out["predictions"] = np.asarray(predictions)[s:]
        return out

    def get_clustering_input(self) -> tuple[Any, Any, Any, Any, int | None]:
        """``(X, targets, known_mask, labeled_mask, train_size)``; train_size None if no split."""
        return (
            self.all_features,
            self.all_targets,
            self.all_known_mask,
            self.all_labeled_mask,
            self.train_size if self.has_train_test_split else None,
        )

    def print_summary(self, silent: bool = False, *, file: IO[str] | None = None) -> None:
        """Print the sizes and class counts (nothing when ``silent``)."""
        if silent:
            return
        n = max(self.n_samples, 1)
        split = (
            f" (train {self.train_size}, test {self.test_size})"
            if self.has_train_test_split
            else ""
        )
        lines = [
            f"dataset {self.dataset_name} (source: {self.source}, L2: {self.use_l2}, "
            f"d={self.feat_dim})",
            f"  samples {self.n_samples}{split}",
            f"  known {self.n_known} ({100 * self.n_known / n:.1f}%), labelled {self.n_labeled} "
            f"({100 * self.n_labeled / n:.1f}%)",
            f"  classes {self.n_classes} (known {self.n_known_classes}, novel "
            f"{self.n_unknown_classes})",
        ]
        print("\n".join(lines), file=file)


def __getattr__(name: str) -> Any:
    if name == "EnhancedDataProvider":
        raise TorchRequiredError(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
