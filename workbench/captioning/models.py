"""Which model a `--model` value names, and what kind it is.

A folder is used as it is. Anything else is taken as a Hugging Face repo id and looked up in the
Hugging Face cache (HF_HUB_CACHE / HF_HOME, as huggingface_hub finds it); a repo that is not there
is downloaded unless HF_HUB_OFFLINE is set. The kind comes from the files the folder holds:

    model.onnx + selected_tags.csv   a WD14-style tagger (SmilingWolf's wd-*-tagger repos)
    config.json with architectures   a transformers image-to-text captioner (BLIP, GIT, Florence-2 …)

The tagger is checked first: SmilingWolf's v3 repos also carry a timm config.json.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError

TAGGER, SENTENCES = "wd14 tagger", "transformers captioner"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TAGGER_FILES = ("model.onnx", "selected_tags.csv")


@dataclass(frozen=True)
class ModelSource:
    folder: Path
    kind: str            # TAGGER or SENTENCES
    name: str            # what the user gave (shown in summaries and the recent list)


def resolve_model(name: str) -> ModelSource:
    """The model's folder and kind; a UserError says what is missing and what to do."""
    given = name.strip()
    path = Path(given).expanduser()
    if path.is_dir():
        return ModelSource(path.absolute(), model_kind(path), given)
    if path.exists():
        raise UserError(f"--model {given}: a file; give the folder that holds model.onnx and "
                        "selected_tags.csv (a WD14 tagger) or config.json (a transformers captioner)")
    if not REPO_ID.match(given):
        raise UserError(f"--model {given}: no such folder, and not a Hugging Face repo id (owner/name)")
    folder = hub_snapshot(given)
    return ModelSource(folder, model_kind(folder, given), given)


def model_kind(folder: Path, shown: str | None = None) -> str:
    if all((folder / f).is_file() for f in TAGGER_FILES):
        return TAGGER
    config = folder / "config.json"
    if config.is_file() and _architectures(config):
        return SENTENCES
    raise UserError(f"--model {shown or folder}: holds neither model.onnx + selected_tags.csv (a WD14 tagger) nor "
                    "a transformers config.json with architectures (an image-to-text captioner)")


def _architectures(config: Path) -> list[str]:
    try:
        return list(json.loads(config.read_text(encoding="utf-8")).get("architectures") or [])
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{config}: not a readable transformers config") from None


def hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot of a repo (complete enough to tell its kind); downloads it when it is
    not cached and the hub is not set offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if _offline():
        raise UserError(f"--model {repo_id}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                        f"download it first (hf download {repo_id}) or give its folder")
    return _download(repo_id)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download(repo_id: str) -> Path:
    """A tagger repo needs only its two files (its timm weights would double the download);
    anything else is fetched whole."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    print(f"downloading {repo_id} from the Hugging Face Hub …", flush=True)
    try:
        try:
            for name in TAGGER_FILES:
                folder = Path(hf_hub_download(repo_id, name)).parent
            return folder
        except EntryNotFoundError:
            return Path(snapshot_download(repo_id))
    except RepositoryNotFoundError:
        raise UserError(f"--model {repo_id}: no such repo on the Hugging Face Hub (or it needs a login)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"--model {repo_id}: download failed ({exc.__class__.__name__}: {exc}); "
                        "check the connection or give a folder") from None
