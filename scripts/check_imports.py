"""Find import cycles inside the llm_energy_measure package.

The graph has one node per module of ``src/llm_energy_measure`` (a package is its
``__init__``) and an edge for every ``import`` / ``from ... import`` of another module of the
package, wherever it appears (module level, functions, classes, ``try`` blocks), except inside
``if TYPE_CHECKING:`` blocks, which never run. ``from pkg import name`` points at the
submodule ``pkg.name`` when one exists, else at ``pkg``. Importing ``a.b.c`` is an edge to
``a.b.c`` alone, not to the parent packages that Python also initialises on the way.

A cycle is a strongly connected component of more than one module; a module importing itself
is ignored. Usage (exit code 1 when there is a cycle)::

    python scripts/check_imports.py [--src src] [--package llm_energy_measure]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "llm_energy_measure"
DEFAULT_SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Edge:
    """One import of ``target`` by ``source``, at ``line`` of the source's file."""

    source: str
    target: str
    line: int


def module_names(src: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``src``."""
    names: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_nodes(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``body``, at any depth, outside ``if TYPE_CHECKING:``."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
            continue
        if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _import_nodes(stmt.orelse)
            continue
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.stmt):
                yield from _import_nodes([child])
            elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                yield from _import_nodes(child.body)


def _resolve_base(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    """The absolute module that ``from <node.module> import ...`` reads from."""
    if node.level == 0:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    up = node.level - 1
    if up > len(parts):
        return None
    parts = parts[: len(parts) - up] if up else parts
    if node.module:
        parts = [*parts, *node.module.split(".")]
    return ".".join(parts)


def import_edges(src: Path, package: str = PACKAGE) -> list[Edge]:
    """Every import of one module of ``package`` by another (or by itself), in file order."""
    modules = module_names(src, package)
    edges: list[Edge] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _import_nodes(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve_base(name, is_package, node)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target in modules:
                    edges.append(Edge(name, target, node.lineno))
    return edges


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each sorted, in no particular order."""
    graph: dict[str, set[str]] = {node: set() for node in nodes}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        # Iterative DFS: (node, iterator over its successors).
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph[root]))))
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def import_cycles(src: Path = DEFAULT_SRC, package: str = PACKAGE) -> list[list[str]]:
    """Every group of modules that import each other (components of more than one module)."""
    edges = import_edges(src, package)
    components = strongly_connected(module_names(src, package), edges)
    return sorted(c for c in components if len(c) > 1)


def describe_cycles(src: Path = DEFAULT_SRC, package: str = PACKAGE) -> str:
    """A readable listing of each cycle and the imports inside it ("" when there is none)."""
    edges = import_edges(src, package)
    modules = module_names(src, package)
    lines: list[str] = []
    for component in import_cycles(src, package):
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        inside = {e for e in edges if e.source in members and e.target in members}
        for edge in sorted(inside, key=lambda e: (e.source, e.line, e.target)):
            if edge.source != edge.target:
                where = modules[edge.source].relative_to(src)
                lines.append(f"  {edge.source} -> {edge.target}  ({where}:{edge.line})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="the src/ folder")
    parser.add_argument("--package", default=PACKAGE, help="the package folder under --src")
    args = parser.parse_args(argv)
    report = describe_cycles(args.src, args.package)
    if report:
        print(report)
        return 1
    print(f"no import cycles in {args.package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
