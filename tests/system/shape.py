"""The source's shape, read from its AST: the module import graph and what crosses it.

Used by ``test_layering.py``; run as ``python -m tests.system.shape`` for the figures the
architecture page quotes (modules, lines, circles, private cross-module imports, imports
inside functions, the largest modules).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PROJECT = ("knncache", "ssddbc")

#: Distributions a module may import inside a function: the optional ones (extras), never
#: this project's own modules nor a core dependency (numpy, faiss, xxhash) nor the stdlib.
OPTIONAL_IMPORTS = frozenset(
    {"scipy", "sklearn", "matplotlib", "tqdm", "threadpoolctl", "dask", "distributed"}
    | {"umap", "pynndescent", "pytest"}
)
#: Project modules that may be imported inside a function, and why: each one's import is the
#: import of an optional dependency, so the importer loads it only when it is asked for.
OPTIONAL_BRIDGES = {
    "ssddbc.grid_search._dask": "imports distributed (the dask extra)",
}
#: (importer, module): the console script checks that the [ssddbc] extra is installed, and
#: says how to install it, before it imports the command that needs it.
ENTRY_GUARDS = {("ssddbc._entry", "ssddbc.grid_search.batch_runner")}


@dataclass(frozen=True)
class Import:
    """One import statement's target as the graph sees it."""

    importer: str
    line: int
    target: str  # the module imported (a project module when resolvable)
    name: str | None  # the name taken from it (``from target import name``), if not a module
    in_function: bool
    commented: bool  # a ``#`` comment on its line or the line above


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    lines: int
    source: str = ""
    imports: list[Import] = field(default_factory=list)


def module_name(path: Path, src: Path = SRC) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _function_imports(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    inside.add(id(child))
    return inside


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A ``#`` comment on the import's line, or above the block of imports it belongs to."""
    if "#" in lines[lineno - 1]:
        return True
    row = lineno - 2
    while row >= 0:
        text = lines[row].strip()
        if text.startswith("#"):
            return True
        if not text.startswith(("import ", "from ")):
            return False
        row -= 1
    return False


def parse_module(name: str, is_package: bool, source: str, known: set[str]) -> list[Import]:
    """Every import in ``source`` (module ``name``), function-level ones included."""
    tree = ast.parse(source)
    lines = source.splitlines()
    inside = _function_imports(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, is_package, node)
            targets = []
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append((full, None) if full in known else (base, alias.name))
        else:
            continue
        commented = _has_reason(lines, node.lineno)
        for target, imported in targets:
            found.append(Import(name, node.lineno, target, imported, id(node) in inside, commented))
    return found


def load(src: Path = SRC) -> dict[str, Module]:
    """Every module under ``src`` with its imports."""
    modules: dict[str, Module] = {}
    sources: dict[str, tuple[Path, bool, str]] = {}
    for path in sorted(src.rglob("*.py")):
        name, is_package = module_name(path, src)
        sources[name] = (path, is_package, path.read_text(encoding="utf-8"))
    known = set(sources)
    for name, (path, is_package, text) in sources.items():
        mod = Module(name, path, is_package, len(text.splitlines()), text)
        mod.imports = parse_module(name, is_package, text, known)
        modules[name] = mod
    return modules


def project_module(target: str, known: dict[str, Module]) -> str | None:
    """The project module ``target`` names (its longest known prefix), if any."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Importer -> imported project modules, top-level and function-level imports alike."""
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for mod in modules.values():
        for imp in mod.imports:
            target = project_module(imp.target, modules)
            if target is not None and target != mod.name:
                edges[mod.name].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def private_imports(modules: dict[str, Module]) -> list[Import]:
    """``from other_module import _name``: a private name crossing a module boundary."""
    return [
        imp
        for mod in modules.values()
        for imp in mod.imports
        if imp.name is not None
        and imp.name.startswith("_")
        and not imp.name.startswith("__")
        and project_module(imp.target, modules) not in (None, mod.name)
    ]


def function_imports(modules: dict[str, Module]) -> list[Import]:
    """Imports inside functions (one entry per name imported)."""
    return [imp for mod in modules.values() for imp in mod.imports if imp.in_function]


def bad_function_imports(modules: dict[str, Module]) -> list[Import]:
    """Function-level imports of anything but an optional dependency, or without a reason."""
    return [
        imp
        for imp in function_imports(modules)
        if not imp.commented
        or not (
            imp.target.split(".")[0] in OPTIONAL_IMPORTS
            or imp.target in OPTIONAL_BRIDGES
            or (imp.importer, imp.target) in ENTRY_GUARDS
        )
    ]


def stub_modules(modules: dict[str, Module]) -> frozenset[str]:
    """``STUB_MODULES`` of ``ssddbc.compat`` (read from its source, never imported)."""
    compat = modules.get("ssddbc.compat")
    if compat is None:
        return frozenset()
    for node in ast.walk(ast.parse(compat.source)):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target]
            value = node.value  # type: ignore[assignment]
        if any(t.id == "STUB_MODULES" for t in targets) and value is not None:
            return frozenset(ast.literal_eval(value))
    return frozenset()


def is_adapter(name: str, stubs: frozenset[str]) -> bool:
    """Compatibility code: the ``ssddbc.compat`` package and the original-path stubs."""
    return name == "ssddbc.compat" or name.startswith("ssddbc.compat.") or name in stubs


def design_importing_adapters(modules: dict[str, Module]) -> list[Import]:
    """Imports from design modules (everything else) into the adapters."""
    stubs = stub_modules(modules)
    found = []
    for mod in modules.values():
        if is_adapter(mod.name, stubs):
            continue
        for imp in mod.imports:
            target = project_module(imp.target, modules)
            if target is not None and is_adapter(target, stubs):
                found.append(imp)
    return found


def report(modules: dict[str, Module]) -> str:
    edges = graph(modules)
    found = circles(edges)
    statements = {(i.importer, i.line) for i in function_imports(modules)}
    largest = sorted(modules.values(), key=lambda m: -m.lines)[:6]
    out = [
        f"modules: {len(modules)}",
        f"source lines: {sum(m.lines for m in modules.values())}",
        f"import circles: {len(found)}",
        *(f"  {' <-> '.join(c)}" for c in found),
        f"private names imported across modules: {len(private_imports(modules))}",
        *(f"  {i.importer}:{i.line} {i.target}.{i.name}" for i in private_imports(modules)),
        f"import statements inside functions: {len(statements)}",
        f"  of which not an optional dependency with a reason: "
        f"{len({(i.importer, i.line) for i in bad_function_imports(modules)})}",
        *(f"  {i.importer}:{i.line} {i.target}" for i in bad_function_imports(modules)),
        f"design modules importing the adapters: {len(design_importing_adapters(modules))}",
        "largest modules: " + ", ".join(f"{m.name} {m.lines}" for m in largest),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(report(load(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)))
