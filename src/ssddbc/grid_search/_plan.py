"""The search plan: how a feature matrix of N samples is searched, decided once.

The main process builds one :class:`SearchPlan` per run and asks it for a :class:`Route` per
feature matrix; :func:`ssddbc.grid_search._inputs.prepare_inputs` records the route in the
:class:`~ssddbc.grid_search._inputs.SharedInputs` every task carries, so workers (fresh
interpreters, other hosts) follow the decision and never re-derive it. The thresholds are
arguments of the plan, never module globals: a test that wants the large-N route on a small
problem builds ``SearchPlan(pairwise_max_n=500)``.

Every route ensures the neighbour graph at ``min(N - 1, max(k_max, candidate_width))``
columns and hands it whole to the clustering as exact candidates (one task per ``k`` runs
its percentiles on it through :func:`ssddbc.ssddbc._per_k.cluster_percentiles`): the graph
decides most distance questions, which is cheaper than reading an (N, N) matrix per
configuration, with identical labels. What differs by N:

* ``pairwise`` (N <= ``pairwise_max_n``): the full ``(N, N)`` distance matrix is shared as
  well; it answers only the rows the graph leaves undecided, and the exact silhouette.
  Above ``pairwise_max_n`` there is no N×N array anywhere: undecided rows are computed as
  distance blocks.
* the silhouette (N <= ``exact_silhouette_max_n``): exact over all unlabelled points (from
  the matrix, or from distance blocks without one); above, the exact silhouette of a seeded
  sample of ``silhouette_sample_size`` unlabelled points, reported with its standard error.
  Labels never depend on the route; only a sampled silhouette (hence the score) is an
  estimate.

``pairwise_max_n`` defaults to 5,000, the size up to which the silhouette is exact: the
matrix earns its cost only there. With a sampled silhouette the graph answers all but a few
rows (at N = 13,800 and 64 columns, 0.16 % of the within-H rows and none of the merge or
assignment rows), and building the matrix (6.0 s at N = 13,800, d = 768) cost more than the
distance blocks of those rows for the whole 216-configuration search; the matrix also made
every worker page 760 MB in.

``exact_silhouette_max_n`` defaults to 5,000. The exact silhouette reads all N² distances
per configuration: on the quiet-machine profile of issue 13 it took 54.6 s of the 66 s of a
serial 216-configuration search at N = 13,800, so the switch must sit well below that size.
The sample costs ``s / N_unlabelled`` of the exact computation, so below about
``2.5 * silhouette_sample_size`` points it saves too little to be worth the estimate's
noise; 5,000 keeps every size up to there (the golden data, N = 901, included) exact.
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
        shared (5,000² × 4 bytes = 100 MB on disk, paged in on demand). It serves the exact
        silhouette, so it should not be below ``exact_silhouette_max_n`` (an exact silhouette
        without the matrix recomputes all N² distances per configuration); see the module
        docstring for the default.
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
