"""Shared fixtures: real image files of given sizes, a temporary workspace, the reference vectors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("WORKBENCH_REFERENCE", ROOT.parent / "shared" / "reference"))


def make_image(path: Path, size: tuple[int, int], color=(200, 120, 40)) -> Path:
    """A real PNG (or JPEG/WEBP/BMP by suffix) of the given (width, height)."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", tuple(size), color).save(path)
    return path


def load_reference(name: str) -> list:
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"reference vectors missing: {path} (../shared/reference beside the checkout)")
    return json.loads(path.read_text())


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """Every test gets its own WORKBENCH_HOME."""
    home = tmp_path / "workbench-home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home
