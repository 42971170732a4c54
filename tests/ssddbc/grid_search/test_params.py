"""AlgorithmParams is the one table: defaults, validation and both CLIs' flags."""

from __future__ import annotations

import argparse
import inspect
import math
import warnings

import pytest

from ssddbc import InvalidInputError, SearchConfigError, SsddbcWarning
from ssddbc.grid_search._parser import build_parser
from ssddbc.grid_search._summary import select_best
from ssddbc.grid_search._tasks import ConfigResult
from ssddbc.grid_search._validate import validate_grid
from ssddbc.grid_search._workers import resolve_n_jobs, usable_cores
from ssddbc.ssddbc._params import PARAMETERS, AlgorithmParams, add_algorithm_arguments
from ssddbc.ssddbc.adaptive_clustering import adaptive_density_clustering


def test_the_algorithm_defaults_are_the_tables() -> None:
    from ssddbc.testing import test_superclass

    defaults = AlgorithmParams()
    for function in (
        adaptive_density_clustering,
        test_superclass.run_on_data,
        test_superclass.run_test_superclass,
    ):
        sig = inspect.signature(function).parameters
        for spec in PARAMETERS:
            assert sig[spec.name].default == spec.default == getattr(defaults, spec.name)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"voting_k": 0}, "voting_k"),
        ({"voting_k": 2.5}, "voting_k"),
        ({"co_manual": -1.0}, "co_manual"),
        ({"co_manual": math.nan}, "co_manual"),
        ({"co_mode": 1}, "co_manual"),
        ({"dense_method": 7}, "dense_method"),
        ({"assign_model": True}, "assign_model"),
    ],
)
def test_bad_options_are_refused_on_creation(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidInputError, match=name):
        AlgorithmParams(**kwargs)  # type: ignore[arg-type]


def test_both_clis_take_their_algorithm_flags_from_the_table() -> None:
    from ssddbc.testing import test_superclass

    search = {a.dest for a in build_parser()._actions}
    source = inspect.getsource(test_superclass.main)
    assert "add_algorithm_arguments(parser)" in source
    for spec in PARAMETERS:
        assert spec.name in search
    parser = argparse.ArgumentParser()
    add_algorithm_arguments(parser)
    args = parser.parse_args(["--co_mode", "1", "--co_manual", "0.5", "--voting_k", "3"])
    assert AlgorithmParams.from_namespace(args) == AlgorithmParams(
        co_mode=1, co_manual=0.5, voting_k=3
    )
    assert AlgorithmParams.from_namespace(parser.parse_args([])) == AlgorithmParams()


def _r(k: int, dp: int, score: float, ok: bool = True) -> ConfigResult:
    return ConfigResult(group="g", k=k, density_percentile=dp, ok=ok, score=score)


def test_select_best_ties_go_to_the_first_cell_in_grid_order() -> None:
    order = [(k, dp) for k in (3, 4, 5) for dp in (40, 60)]
    results = [_r(5, 40, 0.9), _r(4, 60, 0.9), _r(3, 60, 0.5), _r(4, 40, 0.9, ok=False)]
    assert (select_best(results, order).k, select_best(results, order).density_percentile) == (
        4,
        60,
    )
    assert select_best(list(reversed(results)), order).k == 4
    with pytest.raises(ValueError):
        select_best([_r(3, 40, math.nan), _r(3, 60, 1.0, ok=False)], order)


def test_n_jobs_has_joblibs_meaning() -> None:
    cores = usable_cores()
    assert resolve_n_jobs(None) == resolve_n_jobs(-1) == cores
    assert resolve_n_jobs(1) == 1
    if cores > 1:
        assert resolve_n_jobs(-2) == cores - 1
    for bad in (0, -cores - 1, 2.0, True):
        with pytest.raises(SearchConfigError):
            resolve_n_jobs(bad)  # type: ignore[arg-type]
    with pytest.warns(SsddbcWarning, match="usable core"):
        assert resolve_n_jobs(cores + 3) == cores
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_n_jobs(cores)


@pytest.mark.parametrize(("ks", "dps"), [([3, 4.5], [40]), ([3], [42.5]), ([3], [math.nan])])
def test_float_grid_values_are_refused_not_truncated(ks: list[float], dps: list[float]) -> None:
    with pytest.raises(SearchConfigError, match=r"not truncated|integers"):
        validate_grid(ks, dps, n_samples=100)  # type: ignore[arg-type]
    assert validate_grid([3, 4.0], [40.0], n_samples=100) == ([3, 4], [40])  # type: ignore[list-item]


def test_a_wide_out_of_range_grid_is_one_short_message() -> None:
    with pytest.raises(SearchConfigError) as info:
        validate_grid(range(3, 100_000), [40], n_samples=100)
    text = str(info.value)
    assert len(text) < 200 and "N = 100" in text and "99900 values from 100 to 99999" in text
