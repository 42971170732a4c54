"""Warnings on a selected configuration that deserves a second look.

:func:`selection_warnings` is the one home of these checks, for the batch runner's table and
``summary.json`` and for the API's result alike. It takes plain values (the grid's values,
the selected cell as a dict, the number of classes) and returns plain dicts, each with a
``kind`` and a one-sentence ``message``:

* ``edge``: the selected cell lies on an edge of the grid (the smallest or largest ``k``, the
  smallest or largest density percentile), so the best score may lie outside the grid; the
  message says which edge and which way to extend it. An axis with a single value, or an
  edge the grid cannot be extended beyond (``k = 1``, percentile 0 or 100), gives none.
* ``single_cluster``: the selection puts every sample in one cluster.
* ``too_many_clusters``: the selection has more than ``max_cluster_ratio`` (3) times as many
  clusters as the data has classes; the message states the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_CLUSTER_RATIO", "selection_warnings"]

#: More clusters than this many times the number of classes is called degenerate.
MAX_CLUSTER_RATIO = 3.0


def _edge(axis: str, value: int, edge: str, message: str, *, flag: str) -> dict[str, Any]:
    return {
        "kind": "edge",
        "axis": axis,
        "edge": edge,
        "value": value,
        "flag": flag,
        "message": message,
    }


def _edges(
    k_values: Sequence[int], density_values: Sequence[int], k: int, dp: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    ks, dps = sorted(k_values), sorted(density_values)
    if len(ks) > 1:
        if k == ks[0] and k > 1:
            out.append(
                _edge(
                    "k",
                    k,
                    "lower",
                    f"k={k} is the grid's lower edge: extend --k_min below {k}",
                    flag="--k_min",
                )
            )
        elif k == ks[-1]:
            out.append(
                _edge(
                    "k",
                    k,
                    "upper",
                    f"k={k} is the grid's upper edge: extend --k_max above {k + 1} "
                    "(the bound is excluded)",
                    flag="--k_max",
                )
            )
    if len(dps) > 1:
        if dp == dps[0] and dp > 0:
            out.append(
                _edge(
                    "density_percentile",
                    dp,
                    "lower",
                    f"density percentile {dp} is the grid's lower edge: extend --density_min "
                    f"below {dp}",
                    flag="--density_min",
                )
            )
        elif dp == dps[-1] and dp < 100:
            out.append(
                _edge(
                    "density_percentile",
                    dp,
                    "upper",
                    f"density percentile {dp} is the grid's upper edge: extend --density_max "
                    f"above {dp + 1} (the bound is excluded)",
                    flag="--density_max",
                )
            )
    return out


def selection_warnings(
    k_values: Sequence[int],
    density_values: Sequence[int],
    selected: Mapping[str, Any],
    n_classes: int | None,
    *,
    max_cluster_ratio: float = MAX_CLUSTER_RATIO,
) -> list[dict[str, Any]]:
    """Why the selected configuration may be a poor choice (empty: nothing suspect).

    Parameters
    ----------
    k_values, density_values : sequences of int
        The grid searched.
    selected : mapping
        The selected configuration: ``k``, ``density_percentile`` and ``n_clusters`` (as in
        ``summary.json``'s ``selected``).
    n_classes : int or None
        The number of classes of the data (known and novel); None skips the
        ``too_many_clusters`` check.
    max_cluster_ratio : float
        ``too_many_clusters`` fires above this many clusters per class.

    Returns
    -------
    list of dict
        Each with ``kind`` (``"edge"``, ``"single_cluster"`` or ``"too_many_clusters"``) and
        ``message``; ``edge`` adds ``axis`` (``"k"`` or ``"density_percentile"``), ``edge``
        (``"lower"`` or ``"upper"``), ``value`` and ``flag`` (the command-line flag to
        change); the cluster checks add ``n_clusters`` (and ``n_classes``, ``threshold``).
    """
    k, dp = int(selected["k"]), int(selected["density_percentile"])
    out = _edges(k_values, density_values, k, dp)
    n_clusters = int(selected.get("n_clusters", -1))
    if n_clusters == 1:
        out.append(
            {
                "kind": "single_cluster",
                "n_clusters": 1,
                "message": f"k={k}, density percentile {dp} puts every sample in a single cluster",
            }
        )
    elif n_classes is not None and n_classes > 0:
        threshold = max_cluster_ratio * n_classes
        if n_clusters > threshold:
            ratio = f"{max_cluster_ratio:g}"
            out.append(
                {
                    "kind": "too_many_clusters",
                    "n_clusters": n_clusters,
                    "n_classes": int(n_classes),
                    "threshold": math.floor(threshold),
                    "message": f"{n_clusters} clusters for {n_classes} classes: more than "
                    f"{ratio} × the number of classes ({math.floor(threshold)})",
                }
            )
    return out
