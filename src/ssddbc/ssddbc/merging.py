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

The original's functions of this module keep their names, arguments and return values at the
end of the file: :func:`merge_isolated_clusters` (the same merge with the original's
``(labels, merge_info)`` return), :func:`get_cluster_category_labels`,
:func:`merge_clusters_by_category_label` and :func:`merge_clusters_by_label_consistency`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._distances import euclidean_block
from ssddbc._validation import as_features, as_mask, as_targets, check_int
from ssddbc.ssddbc._candidates import three_nearest_choice
from ssddbc.ssddbc._select import SmallestPerGroup
from ssddbc.ssddbc._source import DistanceSource, column_ranges

__all__ = [
    "ISOLATED_THRESHOLD",
    "apply_merge_plan",
    "get_cluster_category_labels",
    "isolated_merge_targets",
    "merge_clusters_by_category_label",
    "merge_clusters_by_label_consistency",
    "merge_isolated_clusters",
    "merge_isolated_core_clusters",
    "renumber",
]

ISOLATED_THRESHOLD = 3


def renumber(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Map the non-negative ids to ``0..C-1`` keeping their order; ``-1`` stays ``-1``."""
    out = labels.copy()
    pos = labels >= 0
    if pos.any():
        _, inv = np.unique(labels[pos], return_inverse=True)
        out[pos] = inv
    result: npt.NDArray[np.int64] = out
    return result


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


def isolated_merge_targets(
    labels: npt.NDArray[np.int64],
    X: npt.NDArray[Any],
    targets: npt.NDArray[np.int64],
    labeled_mask: npt.NDArray[np.bool_],
    source: DistanceSource | None = None,
    isolated_threshold: int = ISOLATED_THRESHOLD,
    category_labels: Mapping[int, int | None] | None = None,
) -> dict[int, tuple[int, str]]:
    """Where each isolated core cluster goes: ``{cluster id: (target id, strategy)}``.

    ``strategy`` is ``"label_match"`` or ``"nearest_3_avg_distance"`` (the original's names).
    Empty when nothing merges. Parameters as :func:`merge_isolated_core_clusters`;
    ``category_labels`` (cluster id -> label or None) lets a non-isolated cluster match by its
    category label too, as the original did when it was given one.
    """
    labels = np.asarray(labels, dtype=np.int64)
    core = labels >= 0
    if not core.any():
        return {}
    n_clusters = int(labels[core].max()) + 1
    sizes = np.bincount(labels[core], minlength=n_clusters)
    isolated = np.flatnonzero((sizes > 0) & (sizes <= isolated_threshold))
    non_isolated = np.flatnonzero(sizes > isolated_threshold)
    if isolated.size == 0 or non_isolated.size == 0:
        return {}
    if source is None:
        source = DistanceSource(X)
    category = {} if category_labels is None else dict(category_labels)

    uniq = _unique_labels(labels, labeled_mask, targets, n_clusters)
    target_of: dict[int, tuple[int, str]] = {}
    by_distance: list[int] = []
    for cid in isolated.tolist():
        lab = uniq[cid]
        match = None
        if lab is not None:
            match = next(
                (t for t in non_isolated.tolist() if uniq[t] == lab or category.get(t) == lab),
                None,
            )
        if match is None:
            by_distance.append(cid)
        else:
            target_of[cid] = (match, "label_match")

    nearest = "nearest_3_avg_distance"
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
                    target_of[singles[i]] = (int(non_isolated[choice[i]]), nearest)
                todo = np.flatnonzero(choice < 0)
            for sl, means in source.group_means(rows[todo], cols, bounds):
                picked = np.argmin(means, axis=1).tolist()
                for i, j in zip(todo[sl].tolist(), picked, strict=True):
                    target_of[singles[i]] = (int(non_isolated[j]), nearest)
        if multis:
            # The mean vector in the features' own dtype, as the original computed it.
            protos = np.stack([np.asarray(X[members[c]]).mean(axis=0) for c in multis])
            # Column blocks of the members: memory stays at one block, whatever their number.
            for sl, _ in source.row_batches(np.arange(len(multis)), 3 * non_isolated.size):
                groups = SmallestPerGroup(len(protos[sl]), bounds)
                for c0, c1 in column_ranges(len(protos[sl]), len(cols)):
                    block = euclidean_block(protos[sl], np.asarray(X[cols[c0:c1]]))
                    groups.update(c0, block)
                picked = np.argmin(groups.means(), axis=1).tolist()
                for cid, j in zip(multis[sl], picked, strict=True):
                    target_of[cid] = (int(non_isolated[j]), nearest)
    return target_of


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
    plan = isolated_merge_targets(labels, X, targets, labeled_mask, source, isolated_threshold)
    return apply_merge_plan(labels, plan)


def apply_merge_plan(
    labels: npt.NDArray[np.int64], plan: Mapping[int, tuple[int, str]]
) -> npt.NDArray[np.int64]:
    """Relabel each planned cluster to its target and renumber ``0..C-1`` (``-1`` stays)."""
    core = labels >= 0
    out: npt.NDArray[np.int64] = labels.copy()
    if not core.any():
        return out
    remap = np.arange(int(labels[core].max()) + 1, dtype=np.int64)
    for cid, (tgt, _) in plan.items():
        remap[cid] = tgt
    out = labels.copy()
    out[core] = remap[labels[core]]
    return renumber(out)


# ---- the original research code's API ---------------------------------------------------


def _isolated_stats(
    labels: npt.NDArray[np.int64], isolated_threshold: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sizes per cluster id and the ids of the isolated clusters."""
    core = labels >= 0
    if not core.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes = np.bincount(labels[core])
    return sizes, np.flatnonzero((sizes > 0) & (sizes <= isolated_threshold))


def merge_isolated_clusters(
    predictions: Any,
    X: Any,
    targets: Any,
    labeled_mask: Any,
    cluster_category_labels: Mapping[int, int | None] | None = None,
    isolated_threshold: int = ISOLATED_THRESHOLD,
    silent: bool = False,
) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    """The original's small-cluster merge: clusters of ``<= isolated_threshold`` members.

    Same rule as :func:`merge_isolated_core_clusters` (which the pipeline uses), with the
    original's return value. With ``cluster_category_labels`` a non-isolated cluster also
    matches an isolated one's unique label by its category label, as in the original.

    Parameters
    ----------
    predictions : array_like
        ``(N,)`` cluster ids, ``-1`` for unclustered points.
    X : array_like
        ``(N, d)`` features.
    targets, labeled_mask : array_like
        ``(N,)`` labels and labelled mask.
    cluster_category_labels : dict, optional
        Cluster id -> category label or None.
    isolated_threshold : int
        Largest size that counts as isolated (3).
    silent : bool
        Accepted for compatibility; nothing is printed.

    Returns
    -------
    merged : numpy.ndarray
        int64 ``(N,)``; renumbered ``0..C-1`` (``-1`` kept) when something merged, else a
        copy of ``predictions``.
    merge_info : dict
        ``n_isolated_clusters``, ``n_isolated_points``, ``n_merges`` and ``merge_details``
        (one dict per merge: ``source_cluster``, ``target_cluster``, ``source_size``,
        ``target_size``, ``merge_strategy`` and ``shared_label`` or ``avg_distance``).
    """
    x = as_features(X, "X", min_rows=1)
    n = x.shape[0]
    pred = as_targets(predictions, n, "predictions")
    y = as_targets(targets, n, "targets")
    lab = as_mask(labeled_mask, "labeled_mask", n)
    threshold = check_int(isolated_threshold, "isolated_threshold", 0)
    sizes, isolated = _isolated_stats(pred, threshold)
    plan = isolated_merge_targets(pred, x, y, lab, None, threshold, cluster_category_labels)
    info: dict[str, Any] = {
        "n_isolated_clusters": int(isolated.size),
        "n_isolated_points": int(sizes[isolated].sum()) if isolated.size else 0,
        "n_merges": len(plan),
        "merge_details": [],
    }
    if not plan:
        return pred.copy(), info
    uniq = _unique_labels(pred, lab, y, int(sizes.size))
    for cid in sorted(plan):
        tgt, strategy = plan[cid]
        detail: dict[str, Any] = {
            "source_cluster": int(cid),
            "target_cluster": int(tgt),
            "source_size": int(sizes[cid]),
            "target_size": int(sizes[tgt]),
            "merge_strategy": strategy,
        }
        if strategy == "label_match":
            detail["shared_label"] = uniq[cid]
        else:
            members = np.flatnonzero(pred == cid)
            rep = x[members[0]] if members.size == 1 else x[members].mean(axis=0)
            d = euclidean_block(np.asarray(rep)[None, :], x[pred == tgt])[0]
            detail["avg_distance"] = float(np.sort(d)[: min(3, d.size)].astype(np.float64).mean())
        info["merge_details"].append(detail)
    return apply_merge_plan(pred, plan), info


def get_cluster_category_labels(
    predictions: Any,
    targets: Any,
    labeled_mask: Any,
    min_cluster_size: int = 5,
    min_labeled_ratio: float = 0.25,
    min_purity: float = 0.8,
    silent: bool = False,
) -> dict[int, int | None]:
    """Category label of every cluster in ``predictions``, or ``None`` (the original's rule).

    A cluster gets the most common label of its labelled members when it has at least
    ``min_cluster_size`` members, labelled members are more than ``min_labeled_ratio`` of
    it, and that label is at least ``min_purity`` of them; ties for the most common label go
    to the smaller label. With the defaults this is :func:`~ssddbc.ssddbc.clustering.
    cluster_label_rule`. ``silent`` is accepted for compatibility.

    Returns
    -------
    dict
        Cluster id (every distinct value of ``predictions``) -> label or ``None``.
    """
    pred = as_targets(predictions, None, "predictions")
    n = pred.shape[0]
    y = as_targets(targets, n, "targets")
    lab = as_mask(labeled_mask, "labeled_mask", n)
    out: dict[int, int | None] = {}
    for cid in np.unique(pred).tolist():
        members = pred == cid
        size = int(members.sum())
        lab_t = y[members & lab]
        if size < min_cluster_size or lab_t.size / size <= min_labeled_ratio:
            out[int(cid)] = None
            continue
        values, counts = np.unique(lab_t, return_counts=True)
        best = int(np.argmax(counts))
        purity = counts[best] / lab_t.size
        out[int(cid)] = int(values[best]) if purity >= min_purity else None
    return out


def merge_clusters_by_category_label(
    predictions: Any, cluster_category_labels: Mapping[int, int | None], silent: bool = False
) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    """Merge the clusters that carry the same category label (the original's post-step).

    Clusters without a label stay apart. Each group joins its lowest cluster id; the result
    is renumbered ``0..C-1`` in order of the remaining ids. ``silent`` is accepted for
    compatibility.

    Returns
    -------
    merged : numpy.ndarray
        int64 ``(N,)``.
    merge_info : dict
        ``n_original_clusters``, ``n_merged_clusters``, ``n_merges``, ``n_unknown_clusters``
        and ``merge_details`` (``category_label``, ``target_cluster``, ``source_clusters``,
        ``target_size_before``, ``source_sizes``, ``total_size_after`` per group).
    """
    pred = as_targets(predictions, None, "predictions")
    ids, sizes = np.unique(pred, return_counts=True)
    size_of = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
    groups: dict[int, list[int]] = {}
    n_unknown = 0
    for cid in ids.tolist():
        label = cluster_category_labels.get(cid)
        if label is None:
            n_unknown += 1
        else:
            groups.setdefault(int(label), []).append(cid)
    merged = pred.copy()
    details: list[dict[str, Any]] = []
    n_merges = 0
    for label, members in groups.items():
        if len(members) <= 1:
            continue
        target, sources = members[0], members[1:]
        merged[np.isin(pred, sources)] = target
        n_merges += len(sources)
        src_sizes = [int(size_of[c]) for c in sources]
        details.append(
            {
                "category_label": label,
                "target_cluster": int(target),
                "source_clusters": [int(c) for c in sources],
                "target_size_before": int(size_of[target]),
                "source_sizes": src_sizes,
                "total_size_after": int(size_of[target] + sum(src_sizes)),
            }
        )
    remaining, final = np.unique(merged, return_inverse=True)
    info = {
        "n_original_clusters": int(ids.size),
        "n_merged_clusters": int(remaining.size),
        "n_merges": n_merges,
        "n_unknown_clusters": n_unknown,
        "merge_details": details,
    }
    return final.astype(np.int64).reshape(pred.shape), info


def merge_clusters_by_label_consistency(
    predictions: Any,
    targets: Any,
    labeled_mask: Any,
    dominance_threshold: float = 0.8,
    detail_merge: bool = False,
) -> tuple[npt.NDArray[np.int64], list[dict[str, Any]]]:
    """Label the clusters, then merge those with the same label (the original's old API).

    :func:`get_cluster_category_labels` with ``min_purity=dominance_threshold``, then
    :func:`merge_clusters_by_category_label`; returns the merged labels and the list of
    merge details. ``detail_merge`` is accepted for compatibility.
    """
    labels = get_cluster_category_labels(
        predictions, targets, labeled_mask, min_purity=dominance_threshold
    )
    merged, info = merge_clusters_by_category_label(predictions, labels)
    return merged, list(info["merge_details"])
