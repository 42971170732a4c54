"""The label-only selection score and its parts.

The original in-memory search API picks ``(k, density_percentile)`` by maximising

    score = -L1 + 3.0 * S

without looking at any ground truth outside the labelled samples:

* ``L1`` (:func:`l1_loss`): cross-entropy of the labelled samples against their cluster's
  label distribution: the mean over labelled points of ``-log(p + 1e-10)``, ``p`` being the
  share of the point's own label among the labelled members of its cluster.
* ``S`` (:func:`unlabelled_silhouette`): the mean silhouette value of the *unlabelled*
  points, each computed against all points and all clusters with Euclidean distance; 0 with
  fewer than two clusters or no unlabelled point.

The original also reports two quantities with weight 0 in the score:

* ``separation_score`` (:func:`separation_score`): ``exp(-mean distance between the
  prototypes (mean vectors) of every pair of core clusters)``, 0 with fewer than two core
  clusters. It needs the core clusters, which a label array does not carry.
* ``penalty_score``: the "local density penalty" component (:func:`local_density_penalty`),
  which the original search never enables; it reports 0.0 for it, and so does
  :func:`selection_score`.

The silhouette is the costly part: O(N²) distances. They do not change between
configurations, so a search computes them once per feature matrix and passes them in as
``pairwise_distances`` (possibly a read-only memory map); the per-cluster distance sums are
then column sums of blocks of rows, one block per step, no per-point Python loop. Without
them, the same blocks are computed from ``X`` with :func:`ssddbc._distances.euclidean_block`
(bit-identical values), so memory stays O(block × N).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ssddbc._distances import euclidean_block
from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask, as_targets
from ssddbc.evaluation._sample import (
    fixed_cluster_sums,
    fixed_point_scale,
    silhouette_values,
    standard_error,
)
from ssddbc.evaluation._sample import values_from_sums as _silhouette_values

__all__ = [
    "SILHOUETTE_SAMPLE_SIZE",
    "SILHOUETTE_SEED",
    "SILHOUETTE_WEIGHT",
    "SelectionScore",
    "compute_l2_loss",
    "compute_supervised_loss_l1",
    "compute_total_loss",
    "l1_loss",
    "local_density_penalty",
    "sampled_silhouette",
    "selection_score",
    "separation_score",
    "silhouette_rows",
    "silhouette_sample_indices",
    "unlabelled_silhouette",
]

#: Weight of the silhouette in the selection score (the original API's ``silhouette: 3.0``).
SILHOUETTE_WEIGHT = 3.0
#: Added inside the logarithm of the cross-entropy, as in the original.
L1_EPSILON = 1e-10
#: Rows of the distance matrix handled at once: 1024 rows × N float64 columns.
DEFAULT_BLOCK_ROWS = 1024
#: Default sample of a sampled silhouette (large N): this many unlabelled points, this seed.
SILHOUETTE_SAMPLE_SIZE = 2000
SILHOUETTE_SEED = 0


class SelectionScore(NamedTuple):
    """The label-only selection score of one partition and its parts.

    Attributes
    ----------
    score : float
        ``-l1_loss + 3.0 * silhouette``; larger is better.
    l1_loss : float
        Cross-entropy of the labelled samples (see :func:`l1_loss`).
    silhouette : float
        Mean silhouette of the unlabelled samples (see :func:`unlabelled_silhouette`).
    separation_score : float
        Core-cluster separation (weight 0); ``nan`` unless core clusters and ``X`` were given.
    penalty_score : float
        Local density penalty; always 0.0, as the original search reports it (disabled).
    """

    score: float
    l1_loss: float
    silhouette: float
    separation_score: float
    penalty_score: float


def l1_loss(labels: ArrayLike, targets: ArrayLike, labeled_mask: ArrayLike) -> float:
    """Cross-entropy of the labelled samples against their cluster's label distribution.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Cluster id of every sample.
    targets : array_like of int, shape (n,)
        Class ids; only the labelled entries are read.
    labeled_mask : array_like of bool or 0/1, shape (n,)
        True where the label may be used.

    Returns
    -------
    float
        Mean over labelled points of ``-log(p + 1e-10)`` with ``p`` the share of the point's
        label among its cluster's labelled members; 0.0 when nothing is labelled (as in the
        original). 0 means every cluster is label-pure.

    Raises
    ------
    InvalidInputError
        On mismatched lengths, non-integer ids or a malformed mask.
    """
    lab = as_targets(labels, None, "labels")
    n = lab.shape[0]
    tgt = as_targets(targets, n, "targets")
    m = as_mask(labeled_mask, "labeled_mask", n)
    if not m.any():
        return 0.0
    _, c = np.unique(lab[m], return_inverse=True)
    _, t = np.unique(tgt[m], return_inverse=True)
    n_t = int(t.max()) + 1
    table = np.bincount(c * n_t + t, minlength=(int(c.max()) + 1) * n_t).reshape(-1, n_t)
    p = table[c, t] / table.sum(axis=1)[c]
    return float(np.mean(-np.log(p + L1_EPSILON)))


def _cluster_distance_sums(
    idx: NDArray[np.intp],
    n_clusters: int,
    targets: NDArray[np.intp],
    D: NDArray[np.floating] | None,
    feats: NDArray[np.floating] | None,
    block_rows: int,
) -> NDArray[np.float64]:
    """``S[i, c]``: sum of the distances from point ``targets[i]`` to the members of ``c``.

    Computed as column sums of blocks of member rows (the distance matrix is symmetric), in
    float64 and in a fixed order: unlike a BLAS product with a one-hot matrix the result does
    not depend on the thread count, so serial and parallel searches agree bit for bit. Without
    a matrix the same blocks come from :func:`ssddbc._distances.euclidean_block`, which gives
    the very values :func:`~ssddbc._distances.pairwise_euclidean` stores, so both routes
    return identical bits.
    """
    S = np.zeros((targets.size, n_clusters))
    for c in range(n_clusters):
        members = np.flatnonzero(idx == c)
        for lo in range(0, members.size, block_rows):
            rows = members[lo : lo + block_rows]
            if D is not None:
                # Whole rows, then the wanted columns: a row gather is cheap on a memmap.
                S[:, c] += np.asarray(D[rows]).sum(axis=0, dtype=np.float64)[targets]
            else:
                assert feats is not None
                blk = euclidean_block(feats[rows], feats[targets])
                S[:, c] += blk.sum(axis=0, dtype=np.float64)
    return S


def silhouette_sample_indices(
    labeled_mask: ArrayLike, size: int = SILHOUETTE_SAMPLE_SIZE, seed: int = SILHOUETTE_SEED
) -> NDArray[np.int64]:
    """The seeded sample of unlabelled points a sampled silhouette is averaged over.

    ``min(size, #unlabelled)`` distinct unlabelled indices drawn with
    ``numpy.random.default_rng(seed)`` and returned sorted: the same mask, size and seed give
    the same sample on every machine and in every process.

    Parameters
    ----------
    labeled_mask : array_like of bool or 0/1, shape (n,)
        True for labelled samples (never sampled).
    size : int
        Sample size, ``>= 1``.
    seed : int
        Seed of the draw.

    Returns
    -------
    numpy.ndarray
        int64 sorted indices.
    """
    arr = np.asarray(labeled_mask)
    if arr.ndim != 1:
        raise InvalidInputError("labeled_mask", f"expected a 1-D array, got shape {arr.shape}")
    unl = np.flatnonzero(~as_mask(arr, "labeled_mask", arr.shape[0]))
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InvalidInputError("size", f"expected a positive int, got {size!r}")
    if unl.size <= size:
        return unl.astype(np.int64)
    pick = np.random.default_rng(seed).choice(unl.size, size=int(size), replace=False)
    return np.sort(unl[pick]).astype(np.int64)


def silhouette_rows(X: ArrayLike, indices: ArrayLike) -> NDArray[np.float32]:
    """Distance rows ``D[indices, :]`` of a sampled silhouette, float32 ``(len(indices), n)``.

    The values of :func:`ssddbc._distances.euclidean_block` (those the full matrix holds), so
    a silhouette from these rows equals one read from the full matrix. Compute once per
    feature matrix and share (a search stores them next to the neighbour graph).
    """
    feats = np.ascontiguousarray(np.asarray(X), dtype=np.float32)
    idx = np.asarray(indices, dtype=np.int64)
    return euclidean_block(feats[idx], feats)


def _sampled_silhouette(
    idx: NDArray[np.intp],
    n_clusters: int,
    unl: NDArray[np.bool_],
    silhouette_rows: tuple[ArrayLike, ArrayLike],
    n: int,
    block_rows: int,
) -> NDArray[np.float64]:
    """The exact silhouette values of the sampled points (empty for an empty sample)."""
    try:
        sample, rows = silhouette_rows
    except (TypeError, ValueError):
        raise InvalidInputError("silhouette_rows", "expected an (indices, rows) pair") from None
    sample = np.asarray(sample)
    R = rows if isinstance(rows, np.ndarray) else np.asarray(rows)
    if sample.ndim != 1 or sample.dtype.kind not in "iu" or R.shape != (sample.size, n):
        raise InvalidInputError(
            "silhouette_rows",
            f"expected indices (s,) and rows (s, {n}), got {sample.shape} {sample.dtype} "
            f"and {R.shape}",
        )
    if sample.size == 0:
        return np.zeros(0)
    if sample.min() < 0 or sample.max() >= n or not unl[sample].all():
        raise InvalidInputError(
            "silhouette_rows", "the sample indices must be unlabelled points in range"
        )
    # Fixed-point sums (exact in any order), so that a search that derives each table from
    # the previous partition's (ssddbc.evaluation._sample) gets these very values.
    q = fixed_point_scale(float(np.max(R)) if R.size else 0.0, n)
    table = fixed_cluster_sums(R, idx, n_clusters, q)
    counts = np.bincount(idx, minlength=n_clusters)
    return silhouette_values(table, q, idx[sample], counts)


def unlabelled_silhouette(
    labels: ArrayLike,
    labeled_mask: ArrayLike,
    *,
    pairwise_distances: ArrayLike | None = None,
    X: ArrayLike | None = None,
    silhouette_rows: tuple[ArrayLike, ArrayLike] | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> float:
    """Mean silhouette of the unlabelled points, against all points and clusters.

    Equal to ``sklearn.metrics.silhouette_samples(X, labels)[~labeled_mask].mean()`` (every
    distinct label, ``-1`` included, is a cluster; a point alone in its cluster scores 0).
    With ``silhouette_rows`` it is the same mean over a sample of the unlabelled points
    instead (each sampled point's silhouette still exact, against all points): for large N,
    where the full computation costs O(N² d) per partition.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Cluster id of every sample.
    labeled_mask : array_like of bool or 0/1, shape (n,)
        True for labelled samples; the others are averaged.
    pairwise_distances : array_like, shape (n, n), optional
        The full, symmetric Euclidean distance matrix (a read-only memory map is fine), read
        ``block_rows`` rows at a time.
    X : array_like, shape (n, d), optional
        Features (taken as float32), used when ``pairwise_distances`` is not given:
        distances from blocks of ``block_rows`` points to the unlabelled points are computed
        on the fly with :func:`ssddbc._distances.euclidean_block`, the same values
        :func:`~ssddbc._distances.pairwise_euclidean` would store.
    silhouette_rows : tuple, optional
        ``(indices, rows)``: sorted unlabelled indices ``(s,)`` (e.g. from
        :func:`silhouette_sample_indices`) and their distance rows ``(s, n)`` from
        :func:`silhouette_rows` (a read-only memmap is fine). Takes precedence over
        ``pairwise_distances`` and ``X``; the result is the mean over the sample, which
        equals ``silhouette_samples(X, labels)[indices].mean()``. Cost O(s·n) per call.
    block_rows : int
        Rows per block, bounding the temporary memory to about ``block_rows × n`` floats.

    Returns
    -------
    float
        0.0 with fewer than two clusters or no unlabelled sample (as in the original).

    Raises
    ------
    InvalidInputError
        When neither or a malformed ``pairwise_distances`` / ``X`` is given, or on
        mismatched lengths.
    """
    lab = as_targets(labels, None, "labels")
    n = lab.shape[0]
    unl = ~as_mask(labeled_mask, "labeled_mask", n)
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise InvalidInputError("block_rows", f"expected a positive int, got {block_rows!r}")
    if silhouette_rows is not None:
        clusters, idx = np.unique(lab, return_inverse=True)
        if clusters.size < 2 or not unl.any():
            return 0.0
        values = _sampled_silhouette(idx, clusters.size, unl, silhouette_rows, n, block_rows)
        return float(values.mean()) if values.size else 0.0
    D = None
    feats = None
    if pairwise_distances is not None:
        D = (
            pairwise_distances
            if isinstance(pairwise_distances, np.ndarray)
            else np.asarray(pairwise_distances)
        )
        if D.shape != (n, n):
            raise InvalidInputError(
                "pairwise_distances", f"expected shape ({n}, {n}), got {D.shape}"
            )
    elif X is not None:
        feats = np.asarray(X)
        if feats.ndim != 2 or feats.shape[0] != n:
            raise InvalidInputError("X", f"expected shape ({n}, d), got {feats.shape}")
        # The one distance definition works on float32 rows (see ssddbc._distances).
        feats = np.ascontiguousarray(feats, dtype=np.float32)
    else:
        raise InvalidInputError("pairwise_distances", "give pairwise_distances or X")

    clusters, idx = np.unique(lab, return_inverse=True)
    n_clusters = clusters.size
    targets = np.flatnonzero(unl)
    if n_clusters < 2 or targets.size == 0:
        return 0.0

    counts = np.bincount(idx, minlength=n_clusters)
    sums = _cluster_distance_sums(idx, n_clusters, targets, D, feats, block_rows)
    return float(_silhouette_values(sums, idx[targets], counts).mean())


def sampled_silhouette(
    labels: ArrayLike,
    labeled_mask: ArrayLike,
    silhouette_rows: tuple[ArrayLike, ArrayLike],
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> tuple[float, float]:
    """A sampled silhouette and its standard error.

    Parameters
    ----------
    labels, labeled_mask, silhouette_rows, block_rows
        As in :func:`unlabelled_silhouette` (``silhouette_rows`` required).

    Returns
    -------
    silhouette : float
        Exactly ``unlabelled_silhouette(labels, labeled_mask, silhouette_rows=...)``.
    standard_error : float
        Of that mean as an estimate of the mean over all unlabelled points: the sample's
        standard deviation (``ddof=1``) over ``sqrt(s)``, times the finite-population factor
        ``sqrt(1 - s / n_unlabelled)`` (the sample is drawn without replacement), so 0.0
        when the sample is every unlabelled point, and 0.0 whenever the silhouette is
        0.0 by definition (fewer than two clusters, no unlabelled sample); ``nan`` for a
        one-point sample of a larger population.
    """
    lab = as_targets(labels, None, "labels")
    n = lab.shape[0]
    unl = ~as_mask(labeled_mask, "labeled_mask", n)
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise InvalidInputError("block_rows", f"expected a positive int, got {block_rows!r}")
    clusters, idx = np.unique(lab, return_inverse=True)
    if clusters.size < 2 or not unl.any():
        return 0.0, 0.0
    values = _sampled_silhouette(idx, clusters.size, unl, silhouette_rows, n, block_rows)
    return standard_error(values, int(np.count_nonzero(unl)))


def separation_score(core_clusters: Iterable[Iterable[int]], X: ArrayLike) -> float:
    """Separation of the core clusters: ``exp(-mean pairwise prototype distance)``.

    Parameters
    ----------
    core_clusters : iterable of iterables of int
        Member indices of each core cluster (empty clusters are ignored).
    X : array_like, shape (n, d)
        Features.

    Returns
    -------
    float
        ``exp(-mean ||mean(X[A]) - mean(X[B])||)`` over all pairs of clusters; 0.0 with
        fewer than two clusters, as in the original. Smaller means better separated.
    """
    feats = np.asarray(X)
    if feats.ndim != 2:
        raise InvalidInputError("X", f"expected a 2-D array, got shape {feats.shape}")
    members = [np.fromiter(c, dtype=np.intp) for c in core_clusters]
    members = [np.sort(m) for m in members if m.size]
    if len(members) < 2:
        return 0.0
    # Only the members are read and upcast (X may be a large read-only memmap).
    protos = np.stack([feats[m].mean(axis=0, dtype=np.float64) for m in members])
    diff = protos[:, None, :] - protos[None, :, :]
    dist = np.sqrt((diff * diff).sum(axis=-1))
    iu = np.triu_indices(len(members), k=1)
    return float(np.exp(-dist[iu].mean()))


def local_density_penalty(labels: ArrayLike, neighbors: ArrayLike, distances: ArrayLike) -> float:
    """The original's (unused) local density penalty, vectorised.

    ``mean_i (1/k) sum_{j in kNN(i)} I_ij * exp(-I_ij * d_ij)`` with ``I_ij = 1`` when ``i``
    and ``j`` share a cluster and ``-1`` otherwise. The original search gives it weight 0
    and reports 0.0; it is here so the component can still be inspected.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    neighbors : array_like of int, shape (n, k)
        k nearest neighbours of every point, self excluded.
    distances : array_like of float, shape (n, k)
        Their Euclidean distances.

    Returns
    -------
    float
    """
    lab = as_targets(labels, None, "labels")
    nb = np.asarray(neighbors)
    d = np.asarray(distances, dtype=np.float64)
    if nb.ndim != 2 or nb.shape[0] != lab.shape[0] or d.shape != nb.shape:
        raise InvalidInputError(
            "neighbors", f"expected (n, k) neighbours and distances, got {nb.shape}, {d.shape}"
        )
    if nb.shape[0] == 0 or nb.shape[1] == 0:
        return 0.0
    same = lab[nb] == lab[:, None]
    vals = np.where(same, np.exp(-d), -np.exp(d))
    return float(vals.mean(axis=1).mean())


def selection_score(
    labels: ArrayLike,
    targets: ArrayLike,
    labeled_mask: ArrayLike,
    *,
    pairwise_distances: ArrayLike | None = None,
    X: ArrayLike | None = None,
    core_clusters: Sequence[Iterable[int]] | None = None,
    silhouette_rows: tuple[ArrayLike, ArrayLike] | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> SelectionScore:
    """The label-only score the search maximises: ``-L1 + 3.0 * S``.

    Reads ``targets`` only where ``labeled_mask`` is true: nothing else of the ground truth
    influences the score.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Final cluster id of every sample.
    targets : array_like of int, shape (n,)
        Class ids (only labelled entries are read).
    labeled_mask : array_like of bool or 0/1, shape (n,)
        True where the label may be used.
    pairwise_distances : array_like, shape (n, n), optional
        Precomputed Euclidean distances (preferred in a search: computed once per feature
        matrix).
    X : array_like, shape (n, d), optional
        Features; needed when ``pairwise_distances`` is absent, and for the separation score.
    core_clusters : sequence of iterables of int, optional
        The algorithm's core clusters; with ``X`` they give ``separation_score``.
    silhouette_rows : tuple, optional
        ``(indices, rows)`` of a sampled silhouette (see :func:`unlabelled_silhouette`):
        the silhouette is then the mean over that sample of unlabelled points. For large N.
    block_rows : int
        Rows of distances handled at once by the silhouette.

    Returns
    -------
    SelectionScore

    Raises
    ------
    InvalidInputError
        On malformed inputs or when neither ``pairwise_distances`` nor ``X`` is given.
    """
    l1 = l1_loss(labels, targets, labeled_mask)
    sil = unlabelled_silhouette(
        labels,
        labeled_mask,
        pairwise_distances=pairwise_distances,
        X=X,
        silhouette_rows=silhouette_rows,
        block_rows=block_rows,
    )
    sep = float("nan")
    if core_clusters is not None and X is not None:
        sep = separation_score(core_clusters, X)
    return SelectionScore(
        score=-l1 + SILHOUETTE_WEIGHT * sil,
        l1_loss=l1,
        silhouette=sil,
        separation_score=sep,
        penalty_score=0.0,
    )


# ---- the original research code's API ---------------------------------------------------


def compute_supervised_loss_l1(
    predictions: ArrayLike,
    targets: ArrayLike,
    labeled_mask: ArrayLike,
    cluster_category_labels: Mapping[int, int | None] | None = None,
    loss_type: str = "accuracy",
) -> tuple[float, dict[str, Any]]:
    """The original's supervised loss L1 over the labelled samples.

    Parameters
    ----------
    predictions, targets : array_like
        ``(N,)`` cluster ids and classes.
    labeled_mask : array_like
        ``(N,)`` boolean.
    cluster_category_labels : dict, optional
        Accepted for compatibility (the original ignored it too).
    loss_type : {"accuracy", "cross_entropy"}
        ``"accuracy"``: ``1 -`` the Hungarian accuracy of the labelled samples
        (:func:`ssddbc.evaluation.cluster_acc`); ``"cross_entropy"``: :func:`l1_loss`, what
        the searches use.

    Returns
    -------
    l1 : float
        0.0 without labelled samples.
    metrics : dict
        ``n_labeled`` and ``accuracy`` / ``correct_samples`` (accuracy), or
        ``cross_entropy``, ``equiv_accuracy`` (share of labelled samples whose label is the
        most common one in their cluster, ties to the smaller label) and
        ``correct_samples`` (cross-entropy).

    Raises
    ------
    InvalidInputError
        An unknown ``loss_type`` or malformed arrays.
    """
    from ssddbc.evaluation.accuracy import cluster_acc

    if loss_type not in ("accuracy", "cross_entropy"):
        raise InvalidInputError(
            "loss_type", f"expected 'accuracy' or 'cross_entropy', got {loss_type!r}"
        )
    pred = as_targets(predictions, None, "predictions")
    n = pred.shape[0]
    y = as_targets(targets, n, "targets")
    m = as_mask(labeled_mask, "labeled_mask", n)
    n_lab = int(m.sum())
    if n_lab == 0:
        return 0.0, {"n_labeled": 0, "accuracy": 0.0}
    if loss_type == "accuracy":
        acc = cluster_acc(y[m], pred[m])
        correct = round(acc * n_lab)
        return 1.0 - acc, {"n_labeled": n_lab, "accuracy": acc, "correct_samples": correct}
    l1 = l1_loss(pred, y, m)
    _, c = np.unique(pred[m], return_inverse=True)
    classes, t = np.unique(y[m], return_inverse=True)
    table = np.zeros((int(c.max()) + 1, classes.size), dtype=np.int64)
    np.add.at(table, (c, t), 1)
    correct = int((np.argmax(table, axis=1)[c] == t).sum())
    return l1, {
        "n_labeled": n_lab,
        "cross_entropy": l1,
        "equiv_accuracy": correct / n_lab,
        "correct_samples": correct,
    }


def compute_l2_loss(
    *,
    X: ArrayLike,
    predictions: ArrayLike,
    targets: ArrayLike,
    labeled_mask: ArrayLike,
    clusters: Sequence[Iterable[int]] | None,
    k: int,
    cluster_distance_method: str = "prototype",
    neighbors: ArrayLike | None = None,
    l2_components: Sequence[str] | None = None,
    l2_component_weights: Mapping[str, float] | None = None,
    l2_component_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[float, dict[str, Any]]:
    """L2 as the weighted sum of the registered components (the original's registry API).

    Each name of ``l2_components`` is looked up in
    :data:`ssddbc.evaluation.l2_strategies.L2_REGISTRY`; a ``"maximize"`` component adds
    ``weight * value``, a ``"minimize"`` one subtracts it (weights default to 1.0).

    Returns
    -------
    total : float
        0.0 without components.
    summary : dict
        ``total_l2``, ``components`` (value, weight, orientation, contribution, metrics per
        name), ``component_order``, ``component_weights`` and, when some weight names no
        component, ``unused_weights``.

    Raises
    ------
    InvalidInputError
        An unknown component name.
    """
    from ssddbc.evaluation.l2_strategies import L2_REGISTRY

    names = list(l2_components or [])
    if not names:
        return 0.0, {
            "total_l2": 0.0,
            "components": {},
            "component_order": [],
            "component_weights": {},
        }
    weights = dict(l2_component_weights or {})
    params = {str(key): dict(val) for key, val in (l2_component_params or {}).items()}
    summary: dict[str, Any] = {}
    total = 0.0
    for name in names:
        entry = L2_REGISTRY.get(name)
        if entry is None:
            raise InvalidInputError(
                "l2_components",
                f"unknown L2 component {name!r}; available: {', '.join(sorted(L2_REGISTRY))}",
            )
        fn = entry["fn"]
        assert callable(fn)
        value, metrics = fn(
            clusters=clusters,
            X=X,
            predictions=predictions,
            targets=targets,
            labeled_mask=labeled_mask,
            k=k,
            cluster_distance_method=cluster_distance_method,
            neighbors=neighbors,
            **params.get(name, {}),
        )
        weight = float(weights.get(name, 1.0))
        orientation = entry.get("orientation", "minimize")
        contribution = -weight * value if orientation == "minimize" else weight * value
        summary[name] = {
            "value": value,
            "weight": weight,
            "orientation": orientation,
            "contribution": contribution,
            "metrics": metrics,
        }
        total += contribution
    out: dict[str, Any] = {
        "total_l2": total,
        "components": summary,
        "component_order": names,
        "component_weights": {name: summary[name]["weight"] for name in names},
    }
    unused = {key: val for key, val in weights.items() if key not in summary}
    if unused:
        out["unused_weights"] = unused
    return total, out


def compute_total_loss(
    X: ArrayLike,
    predictions: ArrayLike,
    targets: ArrayLike,
    labeled_mask: ArrayLike,
    cluster_category_labels: Mapping[int, int | None] | None = None,
    l1_weight: float = 1.0,
    l2_weight: float = 1.0,
    l1_type: str = "accuracy",
    l2_type: str | None = None,
    use_cluster_quality: bool = False,
    clusters: Sequence[Iterable[int]] | None = None,
    k: int = 10,
    cluster_distance_method: str = "prototype",
    neighbors: ArrayLike | None = None,
    separation_weight: float = 1.0,
    penalty_weight: float = 1.0,
    silent: bool = False,
    l2_components: Sequence[str] | str | None = None,
    l2_component_weights: Mapping[str, float] | None = None,
    l2_component_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The original's total loss ``l1_weight * L1 + l2_weight * L2`` and its parts.

    The original searches call it with ``l1_weight=-1.0, l1_type="cross_entropy",
    l2_components=["separation", "silhouette"], l2_component_weights={"silhouette": 3.0,
    "separation": 0.0}``, which gives :func:`selection_score`'s ``-L1 + 3 * S``.

    Parameters
    ----------
    X, predictions, targets, labeled_mask
        Features ``(N, d)``, cluster ids, classes and labelled mask.
    cluster_category_labels : dict, optional
        Passed to :func:`compute_supervised_loss_l1` (unused there).
    l1_weight, l2_weight : float
        Weights of L1 and L2.
    l1_type : {"accuracy", "cross_entropy"}
        See :func:`compute_supervised_loss_l1`.
    l2_type : str, optional
        Deprecated in the original and ignored (a ``DeprecationWarning``).
    use_cluster_quality : bool
        Deprecated in the original; with ``l2_components`` it only warns
        (``RuntimeWarning``), without it nothing happens.
    clusters : sequence of sets, optional
        Core clusters, required by the ``separation`` component.
    k, cluster_distance_method, neighbors
        Passed to the components.
    separation_weight : float
        Weight of ``separation`` unless ``l2_component_weights`` names it.
    penalty_weight : float
        Accepted for compatibility (no ``penalty`` component is registered, as in the
        original).
    silent : bool
        Accepted for compatibility; nothing is printed.
    l2_components : list of str or str, optional
        Component names (a comma-separated string is split). ``None``: L2 is not computed
        and the total is L1 alone.
    l2_component_weights, l2_component_params : dict, optional
        Per-component weights and extra keyword arguments.

    Returns
    -------
    dict
        ``total_loss``, ``l1``, ``l2`` (None when not computed), the weights,
        ``l1_metrics``, ``l2_metrics``, ``l2_components``, ``l2_component_weights`` and
        ``l2_component_params``.

    Raises
    ------
    InvalidInputError
        ``separation`` requested without ``clusters``, an unknown component or L1 type.
    """
    import warnings

    if l2_type:
        warnings.warn(
            "compute_total_loss: l2_type is deprecated and ignored; use l2_components",
            DeprecationWarning,
            stacklevel=2,
        )
    l1, l1_metrics = compute_supervised_loss_l1(
        predictions, targets, labeled_mask, cluster_category_labels, l1_type
    )
    explicit = l2_components is not None
    if l2_components is None:
        names: list[str] = []
    elif isinstance(l2_components, str):
        names = [c.strip() for c in l2_components.split(",") if c.strip()]
    else:
        names = list(l2_components)
    if explicit and use_cluster_quality:
        warnings.warn(
            "compute_total_loss: use_cluster_quality is ignored when l2_components is given",
            RuntimeWarning,
            stacklevel=2,
        )
    weights = {str(key): float(val) for key, val in (l2_component_weights or {}).items()}
    if "separation" in names and "separation" not in weights:
        weights["separation"] = separation_weight
    for name in names:
        weights.setdefault(name, 1.0)
    params = {str(key): dict(val) for key, val in (l2_component_params or {}).items()}
    if "separation" in names and clusters is None:
        raise InvalidInputError("clusters", "the separation component needs the core clusters")
    l2: float | None = None
    l2_metrics: dict[str, Any] = {}
    if names:
        l2, summary = compute_l2_loss(
            X=X,
            predictions=predictions,
            targets=targets,
            labeled_mask=labeled_mask,
            clusters=clusters,
            k=k,
            cluster_distance_method=cluster_distance_method,
            neighbors=neighbors,
            l2_components=names,
            l2_component_weights=weights,
            l2_component_params=params,
        )
        l2_metrics = {
            "method": "+".join(names),
            "components": summary["components"],
            "component_order": summary["component_order"],
            "component_weights": summary["component_weights"],
            "quality_score": l2,
            "total_l2": l2,
        }
        if "unused_weights" in summary:
            l2_metrics["unused_weights"] = summary["unused_weights"]
    elif explicit:
        l2 = 0.0
        l2_metrics = {
            "method": "none",
            "components": {},
            "component_order": [],
            "component_weights": {},
            "quality_score": 0.0,
            "total_l2": 0.0,
        }
    total = l1 if l2 is None else l1_weight * l1 + l2_weight * l2
    return {
        "total_loss": total,
        "l1": l1,
        "l2": l2,
        "l1_weight": l1_weight,
        "l2_weight": l2_weight,
        "l1_metrics": l1_metrics,
        "l2_metrics": l2_metrics,
        "l2_components": names,
        "l2_component_weights": weights,
        "l2_component_params": params,
    }
