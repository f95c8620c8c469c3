"""The project's import arrows, read from the source: no circle among workbench/, trainer/ and ui/
modules, and no first-party import hidden inside a function (local imports are for heavy third-party
libraries only, so the module's first lines show everything it depends on)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "trainer", "ui")
# why each of these stays local: the trainer installs its signal handlers before the slow torch
# import that trainer.recipe starts, so a Stop during start-up is still heard
LOCAL_ALLOWED = {"trainer/__main__.py"}


def module_files() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def first_party(node: ast.AST) -> list[str]:
    """The project modules an import statement names (`from a import b` may name module a.b)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        return []
    return [name for name in names if name in MODULES]


def function_local_imports(tree: ast.Module) -> list[ast.AST]:
    inside = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside += [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return inside


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {t for node in ast.walk(tree) for t in first_party(node)}
        graph[name] = targets - {name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path a → … → a, or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (circle := visit(start)):
            return circle
    return None


def test_the_circle_finder_finds_a_circle():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_among_the_projects_modules():
    assert len(MODULES) > 100          # the walk found the tree
    assert find_circle(import_graph()) is None


def test_no_first_party_import_is_hidden_in_a_function():
    hidden = []
    for name, path in MODULES.items():
        rel = path.relative_to(ROOT).as_posix()
        if rel in LOCAL_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hidden += [f"{rel}:{node.lineno}" for node in function_local_imports(tree) if first_party(node)]
    assert hidden == []
