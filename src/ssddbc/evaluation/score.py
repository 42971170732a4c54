"""The label-only selection score ``-L1 + 3.0 * S`` that the searches maximise, and its parts.

``L1`` (:func:`l1_loss`) is the cross-entropy of the labelled samples against their
cluster's label distribution, ``S`` (:func:`unlabelled_silhouette`) the mean silhouette of
the unlabelled samples; :func:`separation_score` and :func:`local_density_penalty` are
reported with weight 0, as in the original. The silhouette's O(N²) distances are read from a
precomputed matrix, from a sample's rows (:func:`silhouette_rows`) or from blocks of ``X``,
with identical values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

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
