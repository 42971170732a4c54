"""The original's total loss ``l1_weight * L1 + l2_weight * L2`` and its two parts.

Its searches call :func:`compute_total_loss` with weights that make it the selection score of
:mod:`ssddbc.evaluation.score`; L2 is the weighted sum of the components registered in
:mod:`ssddbc.compat.l2_strategies`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ssddbc._errors import InvalidInputError
from ssddbc._validation import as_mask, as_targets
from ssddbc.compat.l2_strategies import L2_REGISTRY
from ssddbc.evaluation.accuracy import cluster_acc
from ssddbc.evaluation.score import l1_loss

__all__ = ["compute_l2_loss", "compute_supervised_loss_l1", "compute_total_loss"]


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
        (:func:`ssddbc.evaluation.cluster_acc`); ``"cross_entropy"``:
        :func:`ssddbc.evaluation.l1_loss`, what the searches use.

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
    :data:`ssddbc.compat.l2_strategies.L2_REGISTRY`; a ``"maximize"`` component adds
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
    "separation": 0.0}``, which gives :func:`ssddbc.evaluation.selection_score`'s ``-L1 + 3 * S``.

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
