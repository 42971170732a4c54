"""The original's printed reports on a clustering: per core cluster and per final cluster.

Both print and return ``None``, as in the original; they exist for scripts that call them.
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np

from ssddbc._validation import as_mask, as_targets

__all__ = ["analyze_cluster_composition", "analyze_ssddbc_clustering_result"]


def _distribution(values: Any) -> str:
    ids, counts = np.unique(np.asarray(values), return_counts=True)
    return ", ".join(f"{int(i)}: {int(c)}" for i, c in zip(ids, counts, strict=True)) or "-"


def analyze_ssddbc_clustering_result(
    clusters: Any,
    cluster_labels: Any,
    labeled_mask: Any,
    targets: Any,
    known_mask: Any,
    *,
    file: IO[str] | None = None,
) -> None:
    """Print, per core cluster, its size, labelled/known counts and label distributions.

    Parameters
    ----------
    clusters : sequence of sets
        Members of each core cluster.
    cluster_labels : array_like
        ``(N,)`` core labels (``-1`` unclustered).
    labeled_mask, targets, known_mask : array_like
        ``(N,)`` arrays.
    file : text stream, optional
        Keyword-only; standard output by default.
    """
    labels = as_targets(cluster_labels, None, "cluster_labels")
    n = labels.shape[0]
    lab = as_mask(labeled_mask, "labeled_mask", n)
    known = as_mask(known_mask, "known_mask", n)
    y = as_targets(targets, n, "targets")
    assigned = int((labels >= 0).sum())
    print(f"core clusters: {len(clusters)}; clustered {assigned} of {n} samples", file=file)
    for cid, members in enumerate(clusters):
        idx = np.fromiter((int(i) for i in members), dtype=np.int64)
        print(
            f"  cluster {cid}: size {idx.size}, labelled {int(lab[idx].sum())}, "
            f"known {int(known[idx].sum())}, labelled labels {{{_distribution(y[idx[lab[idx]]])}}}"
            f", true labels {{{_distribution(y[idx])}}}",
            file=file,
        )
    rest = np.flatnonzero(labels < 0)
    if rest.size:
        print(
            f"  unclustered: {rest.size}, labelled {int(lab[rest].sum())}, "
            f"known {int(known[rest].sum())}",
            file=file,
        )


def analyze_cluster_composition(
    predictions: Any,
    targets: Any,
    known_mask: Any,
    labeled_mask: Any,
    unknown_clusters: Any,
    *,
    file: IO[str] | None = None,
) -> None:
    """Print, per final cluster, its size, whether it is unknown, and its composition.

    Parameters
    ----------
    predictions : array_like
        ``(N,)`` cluster ids.
    targets, known_mask, labeled_mask : array_like
        ``(N,)`` arrays.
    unknown_clusters : sequence of int
        Ids of the clusters without a labelled member.
    file : text stream, optional
        Keyword-only; standard output by default.
    """
    pred = as_targets(predictions, None, "predictions")
    n = pred.shape[0]
    y = as_targets(targets, n, "targets")
    known = as_mask(known_mask, "known_mask", n)
    lab = as_mask(labeled_mask, "labeled_mask", n)
    unknown = {int(c) for c in unknown_clusters}
    ids = np.unique(pred)
    print(f"clusters: {ids.size} ({len(unknown)} without a labelled member)", file=file)
    for cid in ids.tolist():
        m = pred == cid
        kind = "unknown" if cid in unknown else "labelled"
        print(
            f"  cluster {cid} ({kind}): size {int(m.sum())}, labelled {int((m & lab).sum())}, "
            f"known {int((m & known).sum())}, labelled labels {{{_distribution(y[m & lab])}}}"
            f", true labels {{{_distribution(y[m])}}}",
            file=file,
        )
