"""Shared fixtures: real image files of given sizes, captions, configs on disk, tiny safetensors
checkpoints, a temporary workspace, the reference vectors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# copies of the sd-scripts reference vectors live in the repo (tests/reference/README.md says where from)
REFERENCE = Path(os.environ.get("WORKBENCH_REFERENCE", ROOT / "tests" / "reference"))


def make_image(path: Path, size: tuple[int, int], color=(200, 120, 40)) -> Path:
    """A real PNG (or JPEG/WEBP/BMP by suffix) of the given (width, height)."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    # by suffix in any letter case (PIL itself only knows lower-case suffixes)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(path.suffix.lower())
    Image.new("RGB", tuple(size), color).save(path, format=fmt)
    return path


def write_caption(image: Path, text: str, extension: str = ".txt") -> Path:
    path = image.with_suffix(extension)
    path.write_text(text, encoding="utf-8")
    return path


def write_config(path: Path, **values) -> Path:
    """A config TOML with these keys (tomli_w: the same writer the workbench uses)."""
    import tomli_w
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def write_checkpoint(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    """A real .safetensors file with zero tensors of the given names and shapes (numpy, no torch)."""
    import numpy as np
    from safetensors.numpy import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: np.zeros(shape, dtype=np.float16) for name, shape in tensors.items()}, str(path))
    return path


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m workbench ARGS` in a fresh process: exit code, stdout, stderr."""
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def load_reference(name: str) -> list:
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"reference vectors missing: {path} (tests/reference/ in the repo, or WORKBENCH_REFERENCE)")
    return json.loads(path.read_text())


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one global AcceleratorState per process (a trainer process makes one);
    tests that build Accelerators in this process must not leave theirs to the next test."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """Every test gets its own WORKBENCH_HOME."""
    home = tmp_path / "workbench-home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


def diffusers_stub(folder: Path) -> Path:
    """An SD1 diffusers folder as far as preflight can tell without loading it (configs and weight
    files in place, the weights empty): for app tests whose trainer never loads the model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    for part, weights in (("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
                          ("text_encoder", "model.safetensors")):
        (folder / part).mkdir(exist_ok=True)
        (folder / part / "config.json").write_text("{}")
        (folder / part / weights).write_bytes(b"")
    (folder / "tokenizer").mkdir(exist_ok=True)
    return folder
