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

from tests.system import shape

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
    | {"knncache._write", "knncache._housekeeping", "knncache._storedir", "knncache._usage"}
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
        ("from knncache._engines import compute_knn", "pure"),
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


# --- The module map's shape: circles, private names, lazy imports, adapters, size ---------

MODULES = shape.load()
#: A module over this many lines has more than one job (docs/architecture.md).
MAX_MODULE_LINES = 800


def test_no_import_circle() -> None:
    assert shape.circles(shape.graph(MODULES)) == []


def test_no_private_name_crosses_a_module() -> None:
    crossing = [
        f"{i.importer}:{i.line} {i.target}.{i.name}" for i in shape.private_imports(MODULES)
    ]
    assert crossing == []


def test_imports_inside_functions_are_optional_dependencies_with_a_reason() -> None:
    bad = [f"{i.importer}:{i.line} {i.target}" for i in shape.bad_function_imports(MODULES)]
    assert bad == []


def test_the_design_never_imports_the_adapters() -> None:
    assert shape.stub_modules(MODULES), "ssddbc.compat.STUB_MODULES lists the original paths"
    found = [f"{i.importer}:{i.line} {i.target}" for i in shape.design_importing_adapters(MODULES)]
    assert found == []


def test_no_module_is_too_large() -> None:
    large = {m.name: m.lines for m in MODULES.values() if m.lines > MAX_MODULE_LINES}
    assert large == {}


def _planted(files: dict[str, str]) -> dict[str, shape.Module]:
    known = set(files)
    modules = {}
    for name, text in files.items():
        is_package = name.endswith(".__init__")
        real = name.removesuffix(".__init__")
        mod = shape.Module(real, Path(name), is_package, len(text.splitlines()), text)
        mod.imports = shape.parse_module(real, is_package, text, known | {real})
        modules[real] = mod
    return modules


def test_a_planted_circle_through_a_function_level_import_is_found() -> None:
    modules = _planted(
        {
            "knncache.a": "from knncache.b import g\n",
            "knncache.b": "def g():\n    from knncache.a import f\n",
        }
    )
    assert shape.circles(shape.graph(modules)) == [["knncache.a", "knncache.b"]]


def test_a_planted_relative_circle_is_found() -> None:
    modules = _planted(
        {
            "ssddbc.x.__init__": "from .y import f\n",
            "ssddbc.x.y": "from ssddbc.x import z\n",
            "ssddbc.x.z": "import ssddbc.x.y\n",
        }
    )
    assert shape.circles(shape.graph(modules)) == [["ssddbc.x.y", "ssddbc.x.z"]]


def test_a_planted_private_import_is_found() -> None:
    modules = _planted({"knncache.a": "_x = 1\n", "knncache.b": "from knncache.a import _x\n"})
    assert [i.name for i in shape.private_imports(modules)] == ["_x"]
    same = _planted({"knncache.a": "from knncache.a import _x\n"})
    assert shape.private_imports(same) == []


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("def f():\n    import scipy.sparse  # optional: knncache runs without scipy\n", False),
        ("def f():\n    # optional: only for plots\n    import matplotlib\n", False),
        ("def f():\n    import scipy.sparse\n", True),  # no reason given
        ("def f():\n    import json  # cheap\n", True),  # stdlib: import it at the top
        ("def f():\n    from knncache.a import g  # avoids a circle\n", True),  # own module
        ("def f():\n    import faiss  # heavy\n", True),  # a core dependency
        ("def f():\n    from ssddbc.grid_search._dask import g  # distributed\n", False),
        ("def f():\n    from ssddbc.grid_search._dask import g\n", True),
    ],
)
def test_function_level_imports_are_judged(source: str, bad: bool) -> None:
    modules = _planted({"knncache.a": "def g():\n    pass\n", "knncache.b": source})
    assert bool(shape.bad_function_imports(modules)) is bad


def test_a_planted_design_import_of_an_adapter_is_found() -> None:
    modules = _planted(
        {
            "ssddbc.compat.__init__": 'STUB_MODULES = ("ssddbc.old",)\n',
            "ssddbc.compat.research": "from ssddbc.design import f\n",
            "ssddbc.old": "from ssddbc.compat.research import g\n",
            "ssddbc.design": "def f():\n    pass\n",
            "ssddbc.sneaky": "from ssddbc.old import g\n",
            "ssddbc.direct": "import ssddbc.compat.research\n",
        }
    )
    found = sorted(i.importer for i in shape.design_importing_adapters(modules))
    assert found == ["ssddbc.direct", "ssddbc.sneaky"]
