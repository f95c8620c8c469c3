"""Base models to pick from without typing a path: the Hugging Face cache's diffusers repos, the
checkpoints of A1111 (models/Stable-diffusion) and ComfyUI (models/checkpoints) folders the user
pointed at once, and the models recent runs used — each with its family, read from headers and
JSON configs only (nothing is loaded). The folders and the recent models are remembered under
WORKBENCH_HOME (model_folders.json, recent_models.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench import workspace
from workbench.errors import UserError
from workbench.fileio import write_json_atomic
from workbench.models.hub import cached_snapshot, complete, is_repo_id, model_info_of, resolve
from workbench.models.modelinfo import model_info

# where each UI keeps its checkpoints, below the folder the user points at
UI_SUBFOLDERS = ("models/Stable-diffusion", "models/checkpoints", "Stable-diffusion", "checkpoints")
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
RECENT_KEPT = 10


@dataclass(frozen=True)
class ModelChoice:
    value: str           # what goes into pretrained_model_name_or_path
    family: str          # "SD 1.x", "SD 2.x v-pred", "SDXL", or why it is unknown
    source: str          # "recent", "Hugging Face cache", or the folder it was found in

    @property
    def label(self) -> str:
        return f"{self.value} — {self.family} ({self.source})"


def family_label(name: str) -> str:
    """The family as the pick list says it; the reason when it can't be read."""
    try:
        info = model_info_of(resolve(name, online=False)) if is_repo_id(name) else model_info(name)
    except UserError as exc:
        if Path(name).suffix.lower() == ".ckpt":
            return "family read when loaded"
        if is_repo_id(name):
            return "not in the Hugging Face cache: downloaded when a run starts"
        return "unusable: " + str(exc).removeprefix(f"{Path(name).expanduser()}: ").removeprefix(f"{name}: ")
    return info.family_name + (" v-pred" if info.v_prediction else "")


# ---------------------------------------------------------------- remembered lists

def _read_list(name: str) -> list[str]:
    try:
        values = json.loads((workspace.home() / name).read_text())
    except (OSError, ValueError):
        return []
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def model_folders() -> list[str]:
    return _read_list("model_folders.json")


def add_model_folder(folder: str) -> Path:
    """Remember a folder to look for checkpoints in (an A1111 or ComfyUI install, or any folder)."""
    path = Path(folder).expanduser().absolute()
    if not path.is_dir():
        raise UserError(f"{folder}: not a folder; give an A1111 or ComfyUI install, or a folder of checkpoints")
    folders = [f for f in model_folders() if f != str(path)] + [str(path)]
    write_json_atomic(workspace.home() / "model_folders.json", folders)
    return path


def recent_models() -> list[str]:
    return _read_list("recent_models.json")


def remember_recent(name: str) -> None:
    """Put a model a run is started with first in the recent list."""
    if not name:
        return
    recent = [name] + [m for m in recent_models() if m != name]
    write_json_atomic(workspace.home() / "recent_models.json", recent[:RECENT_KEPT])


# ---------------------------------------------------------------- finding models

def checkpoints_in(folder: Path) -> list[Path]:
    """Checkpoints and diffusers folders in the UI's model folder under `folder` (or in `folder`)."""
    roots = [folder / sub for sub in UI_SUBFOLDERS if (folder / sub).is_dir()] or [folder]
    found = []
    for root in roots:
        found += [p for p in sorted(root.rglob("*")) if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file()]
        found += [p.parent for p in sorted(root.glob("*/model_index.json"))]
    return found


def cached_repos() -> list[str]:
    """Repo ids of the Hugging Face cache whose snapshot holds a whole diffusers model."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        repos = scan_cache_dir().repos
    except (CacheNotFound, OSError):
        return []
    ids = sorted(r.repo_id for r in repos if r.repo_type == "model")
    return [i for i in ids if (folder := cached_snapshot(i)) is not None and complete(folder)]


def quick_pick() -> list[ModelChoice]:
    """Recent models first, then the Hugging Face cache, then each remembered folder; each once."""
    seen: dict[str, ModelChoice] = {}
    candidates = [(m, "recent") for m in recent_models()]
    candidates += [(repo, "Hugging Face cache") for repo in cached_repos()]
    for folder in model_folders():
        candidates += [(str(p), folder) for p in checkpoints_in(Path(folder))]
    for value, source in candidates:
        if value not in seen:
            seen[value] = ModelChoice(value, family_label(value), source)
    return list(seen.values())
