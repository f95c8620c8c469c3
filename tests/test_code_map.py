"""The README's "Where the code lives" matches the tree: every folder it names exists, every
workbench sub-package is named there, and each sub-package says in its docstring what belongs in it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_map() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where the code lives", 1)[1]
    return section.split("\n## ", 1)[0]


def test_every_folder_the_map_names_exists():
    named = re.findall(r"`([\w/]+/)`", code_map())
    assert len(named) > 10
    assert [folder for folder in named if not (ROOT / folder).is_dir()] == []


def test_every_workbench_package_is_on_the_map_with_a_docstring_of_what_belongs_there():
    packages = sorted(p.parent.name for p in (ROOT / "workbench").glob("*/__init__.py"))
    assert len(packages) >= 8
    assert [p for p in packages if f"`workbench/{p}/`" not in code_map()] == []
    for package in packages:
        doc = ast.get_docstring(ast.parse((ROOT / "workbench" / package / "__init__.py").read_text()))
        assert doc and len(doc) > 60, f"workbench/{package}/__init__.py: say what belongs there"


def test_workbench_keeps_only_shared_basics_at_its_top():
    top = sorted(p.stem for p in (ROOT / "workbench").glob("*.py"))
    assert top == ["__init__", "__main__", "errors", "fileio", "quiet", "workspace"]
