"""Run scikit-learn's own tests of ``KNeighborsTransformer`` and ``kneighbors_graph`` on knncache.

Loaded with ``-p tests.knncache.sklearn_suite.plugin`` on a run of the installed
scikit-learn's test modules (``--pyargs``). Before they are imported, the two names are
replaced in ``sklearn.neighbors`` by ``knncache.sklearn``'s, so ``from sklearn.neighbors import
...`` and ``neighbors.kneighbors_graph`` in the test modules get knncache's (scikit-learn's
own estimators, imported first, keep theirs). Only the tests whose source calls one of the two
are kept; :data:`OUT_OF_SCOPE` lists the ones knncache refuses by design, each with its
reason: they are marked as expected to fail, strictly and only with knncache's
``InvalidParameterError``, so a test that starts passing or fails otherwise is reported.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import pytest

#: The modules searched (all of scikit-learn's test modules that call the two).
MODULES: tuple[str, ...] = (
    "sklearn.neighbors.tests.test_neighbors",
    "sklearn.neighbors.tests.test_graph",
    "sklearn.neighbors.tests.test_neighbors_pipeline",
    "sklearn.manifold.tests.test_isomap",
    "sklearn.manifold.tests.test_t_sne",
    "sklearn.manifold.tests.test_spectral_embedding",
    "sklearn.cluster.tests.test_dbscan",
    "sklearn.cluster.tests.test_hierarchical",
    "sklearn.cluster.tests.test_optics",
    "sklearn.cluster.tests.test_spectral",
    "sklearn.utils.tests.test_graph",
    "sklearn.utils.tests.test_sparse",
)

#: Test-name prefix (``module::test[params]``, module without its package) -> why it is out of
#: scope.
OUT_OF_SCOPE: dict[str, str] = {
    "test_neighbors::test_non_euclidean_kneighbors": "manhattan and chebyshev metrics, and "
    "a fitted NearestNeighbors as X: knncache computes euclidean and cosine distances only and "
    "does not reuse a fitted scikit-learn index",
    "test_neighbors::test_nan_euclidean_support[KNeighborsTransformer": "the nan_euclidean "
    "metric (missing values): knncache searches finite data only",
}

_USES = re.compile(r"(?<![\w.])(neighbors\.)?(KNeighborsTransformer|kneighbors_graph)\b")

_SUBSTITUTED = ("KNeighborsTransformer", "kneighbors_graph")
_KEPT = pytest.StashKey[int]()


def _substitute() -> None:
    # scikit-learn's estimators bind their own imports first; only the tests see ours.
    for name in ("sklearn.cluster", "sklearn.manifold", "sklearn.semi_supervised"):
        importlib.import_module(name)
    import sklearn.neighbors

    import knncache.sklearn

    for name in _SUBSTITUTED:
        setattr(sklearn.neighbors, name, getattr(knncache.sklearn, name))


def pytest_configure(config: pytest.Config) -> None:
    _substitute()


def _uses_ours(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    if function is None:
        return False
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    # Calls of the function or the class, not of a fitted estimator's ``.kneighbors_graph``.
    return any(_USES.search(line.split("#", 1)[0]) for line in source.splitlines())


def out_of_scope_reason(item: pytest.Item) -> str | None:
    """The reason a test is out of scope, or None."""
    module = getattr(getattr(item, "module", None), "__name__", "")
    name = f"{module.rsplit('.', 1)[-1]}::{item.name}"
    for prefix, reason in OUT_OF_SCOPE.items():
        if name.startswith(prefix):
            return reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import knncache
    import knncache.sklearn

    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (keep if _uses_ours(item) else dropped).append(item)
    for item in keep:
        reason = out_of_scope_reason(item)
        if reason is not None:
            item.add_marker(
                pytest.mark.xfail(raises=knncache.InvalidParameterError, strict=True, reason=reason)
            )
        module: Any = item.module  # type: ignore[attr-defined]
        for name in _SUBSTITUTED:
            value = getattr(module, name, None)
            if value is not None and getattr(value, "__module__", "") != "knncache.sklearn":
                # A test module bound scikit-learn's name before the substitution.
                setattr(module, name, getattr(knncache.sklearn, name))
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep
    config.stash[_KEPT] = len(keep)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    import sklearn.neighbors

    where = sklearn.neighbors.kneighbors_graph.__module__
    terminalreporter.write_line(
        f"knncache-substituted: {config.stash.get(_KEPT, 0)} tests, kneighbors_graph from {where}"
    )
