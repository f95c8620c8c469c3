"""The shape of the code: no import circle among the project's own modules (imports inside functions
count too, since they only hide the arrow), and the registries that the config's choices name are the
ones the trainer has."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workbench", "trainer", "ui")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    return {module_name(p): p for p in files}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """First-party modules `path` imports anywhere in it (`from a import b` counts a.b when b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules and name != module_name(path)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_the_projects_modules():
    modules = project_modules()
    # a package's __init__ is imported by its modules' imports: leave that arrow out
    graph = {name: {m for m in imports_of(path, modules) if not name.startswith(m + ".")}
             for name, path in modules.items()}
    assert cycles(graph) == []


def test_the_circle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_network_module_the_config_offers_has_a_builder():
    from trainer.network_registry import BUILDERS
    from workbench.config.schema import NETWORK_MODULES
    assert set(BUILDERS) == set(NETWORK_MODULES)


def test_the_optimizers_and_samplers_the_config_offers_are_the_trainers():
    from trainer.optim import OPTIMIZERS as BUILT
    from trainer.sampling import SAMPLERS as BUILT_SAMPLERS
    from workbench.config.schema import OPTIMIZERS, SAMPLERS
    assert set(BUILT) == set(OPTIMIZERS) and set(BUILT_SAMPLERS) == set(SAMPLERS)
