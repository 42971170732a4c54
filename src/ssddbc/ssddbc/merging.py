"""Small-cluster merge (step 4): clusters of at most 3 members join a larger cluster.

Facts kept from the original (``merge_isolated_clusters``, called with no category labels):

* "isolated" means ``size <= isolated_threshold`` (3); isolated clusters only ever merge
  into non-isolated ones, all decided against the clusters as they were before any merge;
* when every labelled member of an isolated cluster has one label, it joins the first
  (lowest id) non-isolated cluster whose labelled members all have that same label;
* otherwise (or when no such cluster exists) it joins the non-isolated cluster whose 3
  nearest members are closest on average, measured from the point itself for a single point
  and from the cluster's mean vector otherwise; ties go to the lower cluster id;
* when no non-isolated cluster exists, nothing merges;
* clusters are then renumbered ``0..C-1`` in order of their old ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._distances import euclidean_block
from ssddbc.ssddbc._candidates import three_nearest_choice
from ssddbc.ssddbc._select import mean_of_smallest_per_group
from ssddbc.ssddbc._source import DistanceSource

__all__ = ["ISOLATED_THRESHOLD", "merge_isolated_core_clusters", "renumber"]

ISOLATED_THRESHOLD = 3


def renumber(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Map the non-negative ids to ``0..C-1`` keeping their order; ``-1`` stays ``-1``."""
    out = labels.copy()
    pos = labels >= 0
    if pos.any():
        _, inv = np.unique(labels[pos], return_inverse=True)
        out[pos] = inv
    return out


def _unique_labels(
    labels: npt.NDArray[np.int64],
    labeled_mask: npt.NDArray[np.bool_],
    targets: npt.NDArray[np.int64],
    n_clusters: int,
) -> list[int | None]:
    """Per cluster: the single label shared by all its labelled members, else ``None``."""
    sel = (labels >= 0) & labeled_mask
    out: list[int | None] = [None] * n_clusters
    if not sel.any():
        return out
    c, t = labels[sel], targets[sel]
    lo = np.full(n_clusters, np.iinfo(np.int64).max)
    hi = np.full(n_clusters, np.iinfo(np.int64).min)
    np.minimum.at(lo, c, t)
    np.maximum.at(hi, c, t)
    for cid in np.flatnonzero(lo == hi).tolist():
        out[cid] = int(lo[cid])
    return out


def merge_isolated_core_clusters(
    labels: npt.NDArray[np.int64],
    X: npt.NDArray[Any],
    targets: npt.NDArray[np.int64],
    labeled_mask: npt.NDArray[np.bool_],
    source: DistanceSource | None = None,
    isolated_threshold: int = ISOLATED_THRESHOLD,
) -> npt.NDArray[np.int64]:
    """Merge every isolated core cluster into a non-isolated one and renumber.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` core labels ``0..C-1``, ``-1`` for points outside the core.
    X : numpy.ndarray
        ``(N, d)`` features (for the mean vectors of multi-point isolated clusters).
    targets, labeled_mask : numpy.ndarray
        ``(N,)`` labels and labelled mask.
    source : DistanceSource, optional
        Distances (built from ``X`` when omitted).
    isolated_threshold : int
        Largest size that counts as isolated.

    Returns
    -------
    numpy.ndarray
        New int64 ``(N,)`` labels.
    """
    labels = np.asarray(labels, dtype=np.int64)
    core = labels >= 0
    if not core.any():
        return labels.copy()
    n_clusters = int(labels[core].max()) + 1
    sizes = np.bincount(labels[core], minlength=n_clusters)
    isolated = np.flatnonzero((sizes > 0) & (sizes <= isolated_threshold))
    non_isolated = np.flatnonzero(sizes > isolated_threshold)
    if isolated.size == 0 or non_isolated.size == 0:
        return renumber(labels)
    if source is None:
        source = DistanceSource(X)

    uniq = _unique_labels(labels, labeled_mask, targets, n_clusters)
    target_of: dict[int, int] = {}
    by_distance: list[int] = []
    for cid in isolated.tolist():
        lab = uniq[cid]
        match = None
        if lab is not None:
            match = next((t for t in non_isolated.tolist() if uniq[t] == lab), None)
        if match is None:
            by_distance.append(cid)
        else:
            target_of[cid] = match

    if by_distance:
        # Members of the non-isolated clusters grouped by (cluster id, index).
        sel = np.flatnonzero(np.isin(labels, non_isolated))
        cols = sel[np.argsort(labels[sel], kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(sizes[non_isolated])]).astype(np.int64)
        members = {cid: np.flatnonzero(labels == cid) for cid in by_distance}
        singles = [cid for cid in by_distance if members[cid].size == 1]
        multis = [cid for cid in by_distance if members[cid].size > 1]
        if singles:
            rows = np.array([members[c][0] for c in singles], dtype=np.int64)
            todo = np.arange(len(singles))
            if source.candidates is not None:
                # Decided from the candidate graph where it can (exact, see _candidates).
                nb, ds = source.candidates
                group = np.full(len(labels), -1, dtype=np.int64)
                group[cols] = np.repeat(np.arange(non_isolated.size), sizes[non_isolated])
                choice = three_nearest_choice(nb[rows], ds[rows], group, sizes[non_isolated])
                for i in np.flatnonzero(choice >= 0).tolist():
                    target_of[singles[i]] = int(non_isolated[choice[i]])
                todo = np.flatnonzero(choice < 0)
            for sl, chunk in source.row_blocks(rows[todo], len(cols)):
                means = mean_of_smallest_per_group(source.block(chunk, cols), bounds)
                picked = np.argmin(means, axis=1).tolist()
                for i, j in zip(todo[sl].tolist(), picked, strict=True):
                    target_of[singles[i]] = int(non_isolated[j])
        if multis:
            # The mean vector in the features' own dtype, as the original computed it.
            protos = np.stack([np.asarray(X[members[c]]).mean(axis=0) for c in multis])
            x32 = np.asarray(X[cols], dtype=np.float32)
            for sl, _ in source.row_blocks(np.arange(len(multis)), len(cols)):
                block = euclidean_block(protos[sl], x32)
                means = mean_of_smallest_per_group(block, bounds)
                for cid, j in zip(multis[sl], np.argmin(means, axis=1).tolist(), strict=True):
                    target_of[cid] = int(non_isolated[j])

    remap = np.arange(n_clusters, dtype=np.int64)
    for cid, tgt in target_of.items():
        remap[cid] = tgt
    out = labels.copy()
    out[core] = remap[labels[core]]
    return renumber(out)
