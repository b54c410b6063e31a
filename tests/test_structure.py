"""The package's shape: no module over 400 lines, and no import cycle between cnnlab's
modules, counting imports inside functions (a lazy import still ties two modules
together) and the package ``__init__`` that importing a submodule runs first."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "cnnlab"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    def name(path: Path) -> str:
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    return {name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = (
                package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            )
            target = (
                ".".join(base + ([node.module] if node.module else []))
                if node.level
                else node.module or ""
            )
            found |= {
                f"{target}.{a.name}" if f"{target}.{a.name}" in known else target
                for a in node.names
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    edges = set()
    for target in found:  # importing a.b.c runs a.b's __init__ first (unless we are inside it)
        parts = target.split(".")
        for k in range(2, len(parts) + 1):
            candidate = ".".join(parts[:k])
            inside = module == candidate or module.startswith(candidate + ".")
            if candidate in known and candidate != module and (k == len(parts) or not inside):
                edges.add(candidate)
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, f"split these modules (one job each): {long}"


def test_no_import_cycles_between_cnnlab_modules():
    modules = _modules()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_lazy_cycle():
    graph = {"cnnlab.a": {"cnnlab.b"}, "cnnlab.b": {"cnnlab.a"}, "cnnlab.c": set()}
    assert _cycles(graph) == [["cnnlab.a", "cnnlab.b"]]
