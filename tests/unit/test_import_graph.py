"""No import cycle among Baton's modules, counting imports inside function bodies.

A cycle between services is how a stage change, a re-score and a handoff's close came
to call back and forth through imports hidden in function bodies (which Python accepts
as long as nobody imports the modules in the wrong order). So the graph is read from
the source with :mod:`ast`, at every depth: an ``import`` inside a function is an edge
like any other. Only ``if TYPE_CHECKING:`` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import baton

PACKAGE = Path(baton.__file__).parent


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` of ``path``."""

    source: str
    target: str
    path: Path
    line: int


def _module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth, except in ``if TYPE_CHECKING:`` bodies
    (their ``else:`` branch does run, so it is kept)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def import_graph(root: Path) -> tuple[set[str], list[Edge]]:
    """The modules of the package at ``root`` and the imports between them."""
    files = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    packages = {_module_name(root, p) for p in root.rglob("__init__.py")}
    edges: list[Edge] = []
    for name, path in files.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name if name in packages else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                # ``from pkg import mod`` imports the module; ``from mod import name``
                # imports the module that defines the name.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in files:  # ``import a.b.c`` of a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.append(Edge(name, target, path, node.lineno))
    return set(files), edges


@dataclass(frozen=True)
class Cycle:
    """A group of modules that all reach each other by imports, and one cycle in it."""

    modules: list[str]
    edges: list[Edge]


def find_cycles(nodes: set[str], edges: list[Edge]) -> list[Cycle]:
    """One cycle per strongly connected group of modules (Tarjan's algorithm, then a
    walk inside the group), so every tangle is named once, with all its members."""
    out: dict[str, list[Edge]] = {n: [] for n in nodes}
    for edge in edges:
        out[edge.source].append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in out[node]:
            if edge.target not in index:
                connect(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(nodes):
        if node not in index:
            connect(node)
    return [Cycle(sorted(group), _cycle_in(group, out)) for group in groups]


def _cycle_in(group: set[str], out: dict[str, list[Edge]]) -> list[Edge]:
    """The edges of one cycle through the group's first module (every module of a
    strongly connected group lies on one), found by a depth-first walk inside it."""
    start = min(group)
    path: list[Edge] = []
    seen: set[str] = set()

    def walk(node: str) -> bool:
        seen.add(node)
        for edge in out[node]:
            if edge.target not in group:
                continue
            path.append(edge)
            if edge.target == start or (edge.target not in seen and walk(edge.target)):
                return True
            path.pop()
        return False

    walk(start)
    return path


def describe(cycle: Cycle) -> str:
    """The tangled modules, one cycle among them, and each import that makes it."""
    edges = cycle.edges
    steps = [f"{e.source} imports {e.target} ({e.path.name}:{e.line})" for e in edges]
    return (
        f"{', '.join(cycle.modules)} import each other, e.g. "
        + " -> ".join([edges[0].source, *(e.target for e in edges)])
        + "".join(f"\n    {step}" for step in steps)
    )


def _check(nodes: set[str], edges: list[Edge]) -> None:
    cycles = find_cycles(nodes, edges)
    if cycles:
        pytest.fail("import cycle(s):\n  " + "\n  ".join(describe(c) for c in cycles), False)


@functools.cache
def _baton_graph() -> tuple[frozenset[str], tuple[Edge, ...]]:
    """Baton's own graph, read once for the two tests below: parsing every module is
    the cost (a second parse in a worker whose heap earlier modules filled took 24 s)."""
    nodes, edges = import_graph(PACKAGE)
    return frozenset(nodes), tuple(edges)


def test_services_import_each_other_without_a_cycle() -> None:
    nodes, edges = _baton_graph()
    services = {n for n in nodes if n.startswith("baton.services.")}
    _check(services, [e for e in edges if e.source in services and e.target in services])


def test_the_whole_package_has_no_import_cycle() -> None:
    nodes, edges = _baton_graph()
    _check(set(nodes), list(edges))


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, body in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    return root


def test_an_import_inside_a_function_closes_a_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from pkg.b import g\n\ndef f():\n    return g()\n",
            "b.py": "def g():\n    from pkg import a\n    return a\n",
            "c.py": "from .a import f\n",
        },
    )
    cycles = find_cycles(*import_graph(root))
    assert [[(e.source, e.target, e.line) for e in c.edges] for c in cycles] == [
        [("pkg.a", "pkg.b", 1), ("pkg.b", "pkg.a", 2)]
    ]
    assert cycles[0].modules == ["pkg.a", "pkg.b"]
    assert "pkg.b imports pkg.a (b.py:2)" in describe(cycles[0])


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from pkg import b\n",
            "b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.a import X\n"
                "else:\n    import json\n"
            ),
            "sub/__init__.py": "from ..a import b\n",
        },
    )
    nodes, edges = import_graph(root)
    assert find_cycles(nodes, edges) == []
    assert {(e.source, e.target) for e in edges} == {("pkg.a", "pkg.b"), ("pkg.sub", "pkg.a")}
