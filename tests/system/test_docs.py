"""The API reference lists every public name (the site itself is built by .ci/run, with -W)."""

from __future__ import annotations

import re
from pathlib import Path

import knncache

REPO = Path(__file__).resolve().parents[2]
API = REPO / "docs" / "api" / "index.rst"


def _listed() -> set[str]:
    """Names in the autosummary tables, qualified by the currentmodule above them."""
    names: set[str] = set()
    module = ""
    in_table = False
    for line in API.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = m.group(1)
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and re.match(r"   [A-Za-z_]", line) and not line.strip().startswith(":"):
            names.add(f"{module}.{line.strip()}")
        elif line and not line.startswith(" "):
            in_table = False
    return names


def test_every_public_knncache_name_is_in_the_api_reference() -> None:
    public = {f"knncache.{n}" for n in knncache.__all__ if n != "__version__"}
    assert public - _listed() == set()


def test_the_main_ssddbc_entry_points_are_in_the_api_reference() -> None:
    wanted = {
        "ssddbc.SSDDBC",
        "ssddbc.SSDDBCSearch",
        "ssddbc.SsddbcError",
        "ssddbc.grid_search.api.run_clustering_search_on_features",
        "ssddbc.grid_search.api.SearchSession",
        "ssddbc.evaluation.selection_score",
        "knncache.sklearn.KNeighborsTransformer",
    }
    assert wanted - _listed() == set()
