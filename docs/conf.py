"""Sphinx configuration: the documentation site built from this repository.

Build (from the repository root, after the Quick start):
    .venv/bin/pip install -e '.[docs]'
    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import knncache

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

project = "knncache + ssddbc"
author = "knncache developers"
copyright = "knncache developers"
release = knncache.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "auto_examples/*.ipynb", "auto_examples/*.py"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# API reference: autosummary writes one page per public name (docs/api/generated/, not
# tracked). Names are documented under their public import path (knncache.PersistentStore,
# not knncache._persistent.PersistentStore), so moving code between private modules does not
# change a page.
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_default_options = {
    "members": True,
    # scikit-learn adds set_fit_request to every estimator; its docstring is scikit-learn's
    # and links into scikit-learn's own site.
    "exclude-members": "set_fit_request",
}
# Members are listed by autodoc (above); numpydoc's own member tables would list them twice
# and warn on every attribute documented only in the class's Attributes section.
numpydoc_show_class_members = False
templates_path = ["_templates"]
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
}
# The build must work without network (CI from a fresh clone reaches only PyPI): intersphinx
# inventories are fetched only when asked for.
if not os.environ.get("DOCS_INTERSPHINX"):
    intersphinx_mapping = {}

sphinx_gallery_conf = {
    "examples_dirs": str(REPO / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # Each example must stay small: the whole build runs in CI on two cores.
    "abort_on_example_error": True,
}

html_theme = "pydata_sphinx_theme"
html_title = "knncache + ssddbc"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False


def _own_members_only(
    app: object, what: str, name: str, obj: object, skip: bool, options: object
) -> bool | None:
    """Document inherited members only when this project defined them (a store's ``ensure``
    comes from ``KnnStore``), never those of ``Exception`` or scikit-learn's base classes."""
    target = obj.fget if isinstance(obj, property) else obj
    module = getattr(target, "__module__", None) or ""
    if what == "class" and not module.startswith(("knncache", "ssddbc")):
        return True
    return None


def setup(app: object) -> None:
    app.connect("autodoc-skip-member", _own_members_only)  # type: ignore[attr-defined]


def _write_help() -> None:
    """Write the --help of every command into docs/_generated/ (included by the reference)."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "COLUMNS": "88",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p
        ),
    }
    commands = {
        "ssddbc-search": ["ssddbc.grid_search.batch_runner", "--help"],
        "knncache": ["knncache", "--help"],
        "knncache-ls": ["knncache", "ls", "--help"],
        "knncache-info": ["knncache", "info", "--help"],
        "knncache-verify": ["knncache", "verify", "--help"],
        "knncache-clear": ["knncache", "clear", "--help"],
        "knncache-gc": ["knncache", "gc", "--help"],
        "make_cache": ["ssddbc.data.make_cache", "--help"],
    }
    for name, argv in commands.items():
        done = subprocess.run(
            [sys.executable, "-m", *argv], env=env, capture_output=True, text=True, check=True
        )
        text = done.stdout.replace("usage: batch_runner.py", "usage: ssddbc-search")
        (out / f"{name}.txt").write_text(text, encoding="utf-8")


_write_help()
