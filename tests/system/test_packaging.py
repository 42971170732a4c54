"""What the distribution says about itself: one version, the licence, a README fit for an index."""

from __future__ import annotations

import re
from importlib.metadata import metadata, version
from pathlib import Path

import knncache
import ssddbc
from knncache._version import __version__

REPO = Path(__file__).resolve().parents[2]


def test_one_version_everywhere() -> None:
    assert version("knncache") == __version__
    assert knncache.__version__ == __version__
    assert ssddbc.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_pyproject_does_not_write_a_version_of_its_own() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"^version\s*=", project, re.M) is None
    assert 'dynamic = ["version"]' in project


def test_licence_is_an_spdx_expression_without_a_licence_classifier() -> None:
    meta = metadata("knncache")
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert not [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    assert "LICENSE" in (meta.get_all("License-File") or [])
    assert "BSD 3-Clause License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_readme_has_no_link_that_breaks_on_a_package_index() -> None:
    # On an index the README is shown without the repository beside it: relative links and
    # images break there.
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)", text) + re.findall(r"<img[^>]*src=\"([^\"]+)", text)
    assert [t for t in targets if not t.startswith(("https://", "http://", "#"))] == []
