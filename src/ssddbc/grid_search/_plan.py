"""The search plan: how a feature matrix of N samples is searched, decided once.

The main process builds one :class:`SearchPlan` per run and asks it for a :class:`Route` per
feature matrix; :func:`ssddbc.grid_search._inputs.prepare_inputs` records the route in the
:class:`~ssddbc.grid_search._inputs.SharedInputs` every task carries, so workers (fresh
interpreters, other hosts) follow the decision and never re-derive it. The thresholds are
arguments of the plan, never module globals: a test that wants the large-N route on a small
problem builds ``SearchPlan(pairwise_max_n=500)``.

Two routes:

* ``pairwise`` (N <= ``pairwise_max_n``): the full ``(N, N)`` distance matrix is shared;
  every distance a configuration needs is read from it and the silhouette is exact.
* ``candidates`` (larger N, no N×N array anywhere): the graph is ensured at
  ``max(k_max, candidate_width)`` columns and handed whole to the clustering as exact
  candidates; the silhouette is the exact silhouette of a seeded sample of
  ``silhouette_sample_size`` unlabelled points. Labels are the same as on the matrix route;
  only the silhouette (hence the score) is an estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ssddbc._errors import SearchConfigError
from ssddbc.evaluation import SILHOUETTE_SAMPLE_SIZE, SILHOUETTE_SEED

__all__ = ["DEFAULT_PLAN", "Route", "SearchPlan"]


@dataclass(frozen=True)
class Route:
    """What the plan decided for one feature matrix.

    Attributes
    ----------
    pairwise : bool
        True: share the (N, N) matrix. False: the candidate-graph route.
    graph_width : int
        Columns of the neighbour graph to ensure.
    silhouette_sample_size, silhouette_seed : int
        The seeded silhouette sample of the candidate route (unused on the matrix route).
    """

    pairwise: bool
    graph_width: int
    silhouette_sample_size: int
    silhouette_seed: int


@dataclass(frozen=True)
class SearchPlan:
    """Thresholds that choose the route of each feature matrix.

    Parameters
    ----------
    pairwise_max_n : int
        Largest N for which the full (N, N) float32 distance matrix is precomputed and
        shared (20,000² × 4 bytes = 1.6 GB on disk, paged in on demand).
    candidate_width : int
        Graph columns ensured on the candidate route; wider answers more rows from the graph
        (see :mod:`ssddbc.ssddbc._candidates`) at the price of a larger graph.
    silhouette_sample_size, silhouette_seed : int
        The seeded sample of unlabelled points the candidate route's silhouette averages over.
    """

    pairwise_max_n: int = 20_000
    candidate_width: int = 64
    silhouette_sample_size: int = SILHOUETTE_SAMPLE_SIZE
    silhouette_seed: int = SILHOUETTE_SEED

    def __post_init__(self) -> None:
        for name in ("pairwise_max_n", "candidate_width", "silhouette_sample_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SearchConfigError(name, f"expected an integer >= 1, got {value!r}")

    def route(self, n: int, k_max: int) -> Route:
        """The route for a matrix of ``n`` samples searched up to ``k_max`` neighbours."""
        pairwise = n <= self.pairwise_max_n
        width = k_max if pairwise else min(n - 1, max(k_max, self.candidate_width))
        return Route(pairwise, width, self.silhouette_sample_size, self.silhouette_seed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in ``config.json``: the route determines the scores)."""
        return asdict(self)


#: The plan every front end uses unless given another.
DEFAULT_PLAN = SearchPlan()
