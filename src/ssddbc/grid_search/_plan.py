"""The search plan: how a feature matrix of N samples is searched, decided once.

The main process builds one :class:`SearchPlan` per run and asks it for a :class:`Route` per
feature matrix; the route travels in the :class:`~ssddbc.grid_search._inputs.SharedInputs`
every task carries, so workers follow the decision and never re-derive it. The thresholds are
arguments of the plan, never module globals (a test builds ``SearchPlan(pairwise_max_n=500)``).

Every route hands the clustering the neighbour graph at ``min(N - 1, max(k_max,
candidate_width))`` columns as exact candidates. Up to ``pairwise_max_n`` the full (N, N)
distance matrix is shared too, for the rows the graph leaves undecided; above it there is no
N×N array anywhere. Up to ``exact_silhouette_max_n`` the silhouette is exact; above it, that
of a seeded sample, reported with its standard error. Labels never depend on the route.
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
        True: share the (N, N) matrix (fallback rows and the exact silhouette). False: no
        N×N array.
    graph_width : int
        Columns of the neighbour graph to ensure (all of them serve as candidates).
    silhouette_sample_size, silhouette_seed : int
        The seeded silhouette sample (unused when ``exact_silhouette``).
    exact_silhouette : bool
        True: the silhouette is exact over all unlabelled points.
    """

    pairwise: bool
    graph_width: int
    silhouette_sample_size: int
    silhouette_seed: int
    exact_silhouette: bool = True


@dataclass(frozen=True)
class SearchPlan:
    """Thresholds that choose the route of each feature matrix.

    Parameters
    ----------
    pairwise_max_n : int
        Largest N for which the full (N, N) float32 distance matrix is precomputed and
        shared (5,000² × 4 bytes = 100 MB, computed once per run into the run's temporary
        store, never kept: see :mod:`ssddbc.grid_search._inputs`; paged in on demand).
        It serves the exact silhouette, so it should not be below
        ``exact_silhouette_max_n`` (an exact silhouette without the matrix recomputes all N²
        distances per configuration); see the module docstring for the default.
    candidate_width : int
        Graph columns ensured (at least ``k_max``) on every route; wider answers more rows
        from the graph (see :mod:`ssddbc.ssddbc._candidates`) at the price of a larger graph.
    silhouette_sample_size, silhouette_seed : int
        The seeded sample of unlabelled points a sampled silhouette averages over.
    exact_silhouette_max_n : int
        Largest N whose silhouette is exact; above it the silhouette is sampled and its
        standard error reported (see the module docstring for the default).
    """

    pairwise_max_n: int = 5_000
    candidate_width: int = 64
    silhouette_sample_size: int = SILHOUETTE_SAMPLE_SIZE
    silhouette_seed: int = SILHOUETTE_SEED
    exact_silhouette_max_n: int = 5_000

    def __post_init__(self) -> None:
        for name in (
            "pairwise_max_n",
            "candidate_width",
            "silhouette_sample_size",
            "exact_silhouette_max_n",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SearchConfigError(name, f"expected an integer >= 1, got {value!r}")

    def route(self, n: int, k_max: int) -> Route:
        """The route for a matrix of ``n`` samples searched up to ``k_max`` neighbours."""
        return Route(
            pairwise=n <= self.pairwise_max_n,
            graph_width=min(n - 1, max(k_max, self.candidate_width)),
            silhouette_sample_size=self.silhouette_sample_size,
            silhouette_seed=self.silhouette_seed,
            exact_silhouette=n <= self.exact_silhouette_max_n,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in ``config.json``: the route determines the scores)."""
        return asdict(self)


#: The plan every front end uses unless given another.
DEFAULT_PLAN = SearchPlan()
