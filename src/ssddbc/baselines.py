"""Baselines reported next to SS-DDBC on the same splits: k-means and semi-supervised k-means.

* :func:`kmeans_baseline`: scikit-learn's k-means, as the original's baseline
  (``random_state=0, n_init=10``), on whatever samples it is given.
* :func:`semi_supervised_kmeans`: the GCD paper's SS-k-means (Vaze et al., CVPR 2022):
  labelled samples stay in their class's cluster, centroids start at the labelled class means
  and k-means++ adds the remaining ones from the unlabelled samples; then Lloyd iterations
  where only the unlabelled samples move. Vectorised numpy; deterministic for a given seed.
* :func:`run_baselines`: both, with the true number of classes, scored (accuracy v2) on the
  samples an evaluation mask selects and timed: the rows reported beside a search's choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ssddbc._errors import InvalidInputError
from ssddbc.evaluation import split_cluster_acc_v2

__all__ = ["BASELINES", "kmeans_baseline", "run_baselines", "semi_supervised_kmeans"]

#: The baselines :func:`run_baselines` runs, in its order (the names of its result).
BASELINES = ("k-means", "SS-k-means")


def _features(features: ArrayLike) -> NDArray[np.float64]:
    X = np.asarray(features)
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "iuf":
        raise InvalidInputError(
            "features", f"expected a non-empty 2-D real array, got shape {X.shape} dtype {X.dtype}"
        )
    if not np.isfinite(X).all():
        raise InvalidInputError("features", "holds NaN or infinite values")
    return np.ascontiguousarray(X, dtype=np.float64)


def _n_clusters(n_clusters: object, n: int, minimum: int = 1) -> int:
    if isinstance(n_clusters, (bool, np.bool_)) or not isinstance(n_clusters, (int, np.integer)):
        raise InvalidInputError("n_clusters", f"expected an int, got {n_clusters!r}")
    if not minimum <= n_clusters <= n:
        raise InvalidInputError(
            "n_clusters", f"expected an int in [{minimum}, {n}] (samples), got {n_clusters}"
        )
    return int(n_clusters)


def _positive(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(name, f"expected an int >= 1, got {value!r}")
    if value < 1:
        raise InvalidInputError(name, f"expected an int >= 1, got {value}")
    return int(value)


def kmeans_baseline(
    features: ArrayLike, n_clusters: int, *, seed: int = 0, n_init: int = 10
) -> NDArray[np.int64]:
    """Plain k-means (scikit-learn), the original's baseline.

    Parameters
    ----------
    features : array_like, shape (n, d)
    n_clusters : int
        Usually the number of classes (known + novel).
    seed : int
        ``random_state`` of :class:`sklearn.cluster.KMeans`.
    n_init : int
        Restarts; the lowest inertia wins (the original used 10).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Cluster ids ``0..n_clusters-1``.

    Raises
    ------
    InvalidInputError
        On malformed features or ``n_clusters`` outside ``[1, n]``.
    """
    from sklearn.cluster import KMeans  # optional heavy dependency, loaded only for this baseline

    X = _features(features)
    k = _n_clusters(n_clusters, X.shape[0])
    model = KMeans(n_clusters=k, random_state=seed, n_init=_positive("n_init", n_init))
    return np.asarray(model.fit_predict(X), dtype=np.int64)


def _sq_dist(
    X: NDArray[np.float64], x_sq: NDArray[np.float64], C: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared Euclidean distances (n, k), clipped at 0 against round-off."""
    d2: NDArray[np.float64] = x_sq[:, None] - 2.0 * (X @ C.T)
    d2 += np.einsum("ij,ij->i", C, C)[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def _kmeans_pp(
    pool: NDArray[np.float64],
    pool_sq: NDArray[np.float64],
    seeds: NDArray[np.float64],
    k: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Extend ``seeds`` to ``k`` centroids by k-means++ sampling from ``pool``."""
    centers = [c for c in seeds]
    if not centers:
        centers.append(pool[rng.integers(pool.shape[0])])
    closest = _sq_dist(pool, pool_sq, np.asarray(centers)).min(axis=1)
    while len(centers) < k:
        total = closest.sum()
        if total > 0:
            pick = int(rng.choice(pool.shape[0], p=closest / total))
        else:  # every pool point already sits on a centroid
            pick = int(rng.integers(pool.shape[0]))
        centers.append(pool[pick])
        closest = np.minimum(closest, _sq_dist(pool, pool_sq, pool[pick][None, :])[:, 0])
    return np.asarray(centers)


def semi_supervised_kmeans(
    features: ArrayLike,
    targets: ArrayLike,
    labeled_mask: ArrayLike,
    n_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = 300,
    tol: float = 1e-4,
    n_init: int = 10,
) -> NDArray[np.int64]:
    """Semi-supervised k-means (the GCD paper's baseline).

    Cluster ``j`` for ``j < L`` belongs to the ``j``-th labelled class (ascending class id;
    ``L`` labelled classes); every labelled sample is kept in its class's cluster. Each run
    starts from the labelled class means plus ``n_clusters - L`` k-means++ centroids drawn
    from the unlabelled samples, then alternates: assign the unlabelled samples to the
    nearest centroid, recompute every centroid as the mean of all its members (labelled and
    unlabelled; an empty cluster keeps its centroid), until the centroids move less than
    ``tol`` times the mean feature variance or ``max_iter`` iterations. Of ``n_init`` runs the
    one with the lowest inertia (sum of squared distances to the assigned centroids) wins.

    Parameters
    ----------
    features : array_like, shape (n, d)
    targets : array_like of int, shape (n,)
        Class ids; only the labelled entries are read.
    labeled_mask : array_like of bool or 0/1, shape (n,)
    n_clusters : int
        At least the number of labelled classes, at most ``n``.
    seed : int
        Seeds ``numpy.random.default_rng``: the same inputs and seed give the same labels.
    max_iter : int
    tol : float
    n_init : int

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Cluster ids ``0..n_clusters-1``.

    Raises
    ------
    InvalidInputError
        On malformed inputs, or ``n_clusters`` below the number of labelled classes.
    """
    X = _features(features)
    n = X.shape[0]
    t = np.asarray(targets)
    if t.shape != (n,):
        raise InvalidInputError("targets", f"expected shape ({n},), got {t.shape}")
    lab = np.asarray(labeled_mask)
    if lab.shape != (n,):
        raise InvalidInputError("labeled_mask", f"expected shape ({n},), got {lab.shape}")
    if lab.dtype != np.bool_:
        if lab.size and not np.isin(lab, (0, 1)).all():
            raise InvalidInputError("labeled_mask", "expected booleans or 0/1 values")
        lab = lab.astype(bool)
    lab_t = t[lab]
    if (
        lab_t.size
        and not np.issubdtype(lab_t.dtype, np.integer)
        and (not np.issubdtype(lab_t.dtype, np.floating) or np.any(lab_t != np.round(lab_t)))
    ):
        raise InvalidInputError("targets", f"expected integer class ids, got {t.dtype}")
    classes, cls_idx = np.unique(lab_t.astype(np.int64), return_inverse=True)
    n_labeled_classes = classes.size
    k = _n_clusters(n_clusters, n, minimum=max(1, n_labeled_classes))
    max_iter = _positive("max_iter", max_iter)
    n_init = _positive("n_init", n_init)
    if not tol >= 0:
        raise InvalidInputError("tol", f"expected a number >= 0, got {tol!r}")

    x_sq = np.einsum("ij,ij->i", X, X)
    fixed = np.full(n, -1, dtype=np.int64)
    fixed[lab] = cls_idx
    counts_l = np.bincount(cls_idx, minlength=n_labeled_classes).astype(np.float64)
    lab_centers = np.zeros((n_labeled_classes, X.shape[1]))
    np.add.at(lab_centers, cls_idx, X[lab])
    lab_centers /= np.maximum(counts_l, 1.0)[:, None]
    unl = np.flatnonzero(~lab)
    pool = X[unl] if unl.size else X
    pool_sq = x_sq[unl] if unl.size else x_sq
    tol_abs = float(tol) * float(np.mean(np.var(X, axis=0)))
    rng = np.random.default_rng(seed)
    rows = np.arange(n)

    best_labels: NDArray[np.int64] | None = None
    best_inertia = np.inf
    for _ in range(n_init):
        centers = _kmeans_pp(pool, pool_sq, lab_centers, k, rng)
        assign = fixed.copy()
        for _ in range(max_iter):
            d2 = _sq_dist(X, x_sq, centers)
            assign[unl] = d2[unl].argmin(axis=1)
            # One (k × n) one-hot product gives every centroid's sum of members.
            onehot = np.zeros((k, n))
            onehot[assign, rows] = 1.0
            counts = onehot.sum(axis=1)
            sums = onehot @ X
            new = centers.copy()
            filled = counts > 0
            new[filled] = sums[filled] / counts[filled, None]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            if shift <= tol_abs:
                break
        d2 = _sq_dist(X, x_sq, centers)
        assign[unl] = d2[unl].argmin(axis=1)
        inertia = float(d2[rows, assign].sum())
        if inertia < best_inertia:
            best_inertia = inertia
            best_labels = assign.copy()
    assert best_labels is not None
    return best_labels


def run_baselines(
    features: ArrayLike,
    targets: ArrayLike,
    known_mask: ArrayLike,
    labeled_mask: ArrayLike,
    eval_mask: ArrayLike,
    *,
    n_clusters: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """k-means and semi-supervised k-means on every sample, scored on ``eval_mask``.

    Both cluster all samples (train and test, as SS-DDBC does) into ``n_clusters`` clusters;
    the accuracies are GCD accuracy v2 over the samples ``eval_mask`` selects, the split a
    search reports its own accuracies on.

    Parameters
    ----------
    features : array_like, shape (n, d)
        The features SS-DDBC clustered (L2-normalised ones for the cosine metric).
    targets : array_like of int, shape (n,)
    known_mask, labeled_mask, eval_mask : array_like of bool, shape (n,)
    n_clusters : int, optional
        Default: the true number of classes, ``len(unique(targets))``.
    seed : int
        Seed of both baselines.

    Returns
    -------
    dict
        ``{"k-means": ..., "SS-k-means": ...}``, each ``all_acc``, ``old_acc``, ``new_acc``
        (``nan`` for an empty split), ``n_clusters`` (non-empty clusters found) and
        ``seconds`` (its wall time).

    Raises
    ------
    InvalidInputError
        On malformed inputs.
    """
    X = _features(features)
    t = np.asarray(targets)
    n = X.shape[0]
    masks = {}
    for name, value in (("known_mask", known_mask), ("eval_mask", eval_mask)):
        m = np.asarray(value)
        if m.shape != (n,):
            raise InvalidInputError(name, f"expected shape ({n},), got {m.shape}")
        masks[name] = m.astype(bool)
    if t.shape != (n,):
        raise InvalidInputError("targets", f"expected shape ({n},), got {t.shape}")
    k = int(np.unique(t).size) if n_clusters is None else n_clusters
    known, ev = masks["known_mask"], masks["eval_mask"]
    runs: dict[str, Callable[[], NDArray[np.int64]]] = {
        "k-means": lambda: kmeans_baseline(X, k, seed=seed),
        "SS-k-means": lambda: semi_supervised_kmeans(X, t, labeled_mask, k, seed=seed),
    }
    out: dict[str, dict[str, Any]] = {}
    for name in BASELINES:
        start = time.perf_counter()
        pred = runs[name]()
        seconds = time.perf_counter() - start
        all_acc, old_acc, new_acc = split_cluster_acc_v2(t[ev], pred[ev], known[ev])
        out[name] = {
            "all_acc": float(all_acc),
            "old_acc": float(old_acc),
            "new_acc": float(new_acc),
            "n_clusters": int(np.unique(pred).size),
            "seconds": seconds,
        }
    return out
