"""The layering of docs/architecture.md, enforced on the source: its never-arrows.

* ``knncache`` never imports ``ssddbc``.
* The density and clustering layers (``ssddbc.density``, ``ssddbc.ssddbc``) never see a file
  or a store: no file-system or serialisation module, no ``open``, no numpy file reading or
  writing, and from ``knncache`` only the exact search itself (``compute_knn``, ``KnnGraph``).
* Only the grid search (``ssddbc.grid_search``) touches a store.

Imports inside functions count as much as top-level ones (the AST is walked in full).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: Modules through which code reaches files (or the process environment's file system).
FILE_IO_MODULES = frozenset(
    {"os", "pathlib", "shutil", "tempfile", "io", "glob", "mmap", "pickle", "json", "csv"}
    | {"gzip", "bz2", "lzma", "zipfile", "tarfile", "sqlite3", "h5py", "joblib", "fcntl"}
)
#: numpy functions and methods that read or write files.
NUMPY_FILE_CALLS = frozenset(
    {"load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt"}
    | {"fromfile", "tofile", "memmap", "open_memmap"}
)
#: The only knncache names the density and clustering layers may use: the search itself.
PURE_KNNCACHE_NAMES = frozenset({"compute_knn", "KnnGraph"})
#: knncache names that are (or reach) a store.
STORE_NAMES = frozenset({"KnnStore", "PersistentStore", "EphemeralStore", "KnnRef"})
STORE_MODULES = frozenset(
    {"knncache._store", "knncache._ref", "knncache._persistent", "knncache._ephemeral"}
)


def _top(module: str) -> str:
    return module.split(".")[0]


def violations(source: str, layer: str) -> list[str]:
    """The never-arrows that ``source`` crosses, for a module of ``layer``.

    ``layer`` is ``"knncache"``, ``"pure"`` (density, clustering), ``"ssddbc"`` (any other
    ssddbc module outside the grid search) or ``"grid_search"``.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [(base, alias.name) for alias in node.names] if node.level == 0 else []
        else:
            modules = []
            if layer == "pure" and isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "open":
                    found.append(f"line {node.lineno}: calls open()")
                if isinstance(func, ast.Attribute) and func.attr in NUMPY_FILE_CALLS:
                    found.append(f"line {node.lineno}: calls .{func.attr}() (file I/O)")
        for module, name in modules:
            where = f"line {node.lineno}: imports {module}" + (f".{name}" if name else "")
            if layer == "knncache" and _top(module) == "ssddbc":
                found.append(where)
            if layer == "pure":
                if _top(module) in FILE_IO_MODULES:
                    found.append(where + " (file I/O)")
                if _top(module) == "knncache" and (
                    module != "knncache" or name not in PURE_KNNCACHE_NAMES
                ):
                    found.append(where + " (only compute_knn/KnnGraph allowed)")
            if (
                layer in ("pure", "ssddbc")
                and _top(module) == "knncache"
                and (name in STORE_NAMES or module in STORE_MODULES)
            ):
                found.append(where + " (a store outside the grid search)")
    return found


def _layer(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    if parts[0] == "knncache":
        return "knncache"
    if parts[1] in ("density", "ssddbc"):
        return "pure"
    if parts[1] == "grid_search":
        return "grid_search"
    return "ssddbc"


SOURCES = sorted(SRC.rglob("*.py"))


def test_the_scan_sees_both_packages() -> None:
    layers = {_layer(p) for p in SOURCES}
    assert layers == {"knncache", "pure", "ssddbc", "grid_search"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_never_arrow_is_crossed(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), _layer(path)) == []


@pytest.mark.parametrize(
    ("source", "layer"),
    [
        ("from ssddbc.evaluation import cluster_acc", "knncache"),
        ("def f():\n    import ssddbc.grid_search.api\n", "knncache"),
        ("from pathlib import Path", "pure"),
        ("import os.path", "pure"),
        ("def f(p):\n    return open(p).read()\n", "pure"),
        ("import numpy as np\nx = np.load('a.npy')\n", "pure"),
        ("from knncache import PersistentStore", "pure"),
        ("from knncache import fingerprint", "pure"),
        ("from knncache._knn import compute_knn", "pure"),
        ("import knncache", "pure"),
        ("from knncache import EphemeralStore", "ssddbc"),
        ("from knncache._store import KnnStore", "ssddbc"),
    ],
)
def test_the_scan_catches_a_planted_arrow(source: str, layer: str) -> None:
    assert violations(source, layer)


@pytest.mark.parametrize(
    ("source", "layer"),
    [
        ("def f(X):\n    from knncache import compute_knn\n    return compute_knn(X, 3)\n", "pure"),
        ("import numpy as np\nfrom ssddbc._distances import euclidean_block", "pure"),
        ("from knncache import PersistentStore", "grid_search"),
        ("from pathlib import Path", "ssddbc"),
    ],
)
def test_allowed_arrows_pass(source: str, layer: str) -> None:
    assert violations(source, layer) == []
