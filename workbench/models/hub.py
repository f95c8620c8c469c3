"""A Hugging Face repo id as the base model (`stabilityai/stable-diffusion-xl-base-1.0`), as
sd-scripts accepts it: resolved through huggingface_hub to a snapshot folder of its cache
(HF_HUB_CACHE / HF_HOME), which the trainer loads like any diffusers folder.

From the cache when the files training needs are there (works offline); else only those files
are downloaded (one set of weights per part, not the .bin beside the .safetensors, no fp16/EMA
variants, no single-file checkpoint at the top), once: the cache keeps them. huggingface_hub is
imported inside the functions (it is light, but this module is imported by the pages)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from workbench.models.modelinfo import (
    FAMILY_NAMES,
    ModelError,
    ModelInfo,
    family_of_diffusers_folder,
    missing_components,
)

# owner/name as the Hub spells them: letters, digits, - _ . ; no leading dot or dash
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")
CONFIG_FILES = ("model_index.json", "scheduler/scheduler_config.json", *(f"{p}/config.json" for p in PARTS))
# what a listing is asked for: the folders training reads; choose_files() then picks from it
CANDIDATE_PATTERNS = ["model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*", *(f"{p}/*" for p in PARTS)]
WEIGHT_STEMS = ("diffusion_pytorch_model", "model")
SHARD = re.compile(r"^(?P<stem>[\w]+)-\d{5}-of-\d{5}\.(?P<ext>safetensors|bin)$")

Progress = Callable[[int, int], None]     # (bytes done, bytes in all)


def is_repo_id(name: str) -> bool:
    """owner/name that is not a path on this machine (a local folder of that name wins)."""
    name = (name or "").strip()
    return bool(REPO_ID.match(name)) and not Path(name).expanduser().exists() \
        and not name.lower().endswith((".safetensors", ".ckpt", ".pt", ".pth", ".bin"))


@dataclass
class HubModel:
    repo_id: str
    folder: Path | None                      # the cached snapshot, when it holds all training needs
    family: str | None = None                # "sd1" | "sd2" | "sdxl" (None: unknown until downloaded)
    v_prediction: bool | None = None
    to_download: dict[str, int] = field(default_factory=dict)   # file -> bytes still to fetch

    @property
    def cached(self) -> bool:
        return self.folder is not None and not self.to_download

    @property
    def download_bytes(self) -> int:
        return sum(self.to_download.values())

    def sentence(self) -> str:
        family = FAMILY_NAMES.get(self.family, "family unknown until downloaded")
        if self.cached:
            return f"{self.repo_id}: {family}, in the Hugging Face cache ({self.folder})"
        return (f"{self.repo_id}: {family}, will download {len(self.to_download)} file(s), about "
                f"{human_bytes(self.download_bytes)}, into the Hugging Face cache ({cache_dir()}) once")


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def cache_dir() -> str:
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


# ---------------------------------------------------------------- which files training needs

def choose_files(names: list[str]) -> list[str]:
    """From a repo's file list: the configs, scheduler and tokenizers, and per model part one set of
    full-precision weights — .safetensors before .bin, one file before shards — which is what
    diffusers' from_pretrained(folder, subfolder=part) loads without a variant."""
    chosen = [n for n in names if n in CONFIG_FILES or n.split("/")[0] in ("scheduler", "tokenizer", "tokenizer_2")]
    for part in PARTS:
        chosen += part_weights([n for n in names if n.startswith(f"{part}/") and n.count("/") == 1])
    return chosen


def part_weights(names: list[str]) -> list[str]:
    by_name = {PurePosixPath(n).name: n for n in names}
    for ext in ("safetensors", "bin"):
        for stem in WEIGHT_STEMS:
            if f"{stem}.{ext}" in by_name:
                return [by_name[f"{stem}.{ext}"]]
            index = f"{stem}.{ext}.index.json"
            shards = [n for b, n in by_name.items() if (m := SHARD.match(b)) and m["stem"] == stem and m["ext"] == ext]
            if index in by_name and shards:
                return [by_name[index], *sorted(shards)]
    return []


# ---------------------------------------------------------------- resolve

def cached_snapshot(repo_id: str) -> Path | None:
    """The cache's snapshot folder of the repo's main revision, without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        # one small file: huggingface_hub would call a snapshot with any other listed file absent
        # incomplete; complete() judges what training needs
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=["model_index.json"]))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def complete(folder: Path) -> tuple[str, bool | None] | None:
    """(family, v_prediction) when the folder holds everything training reads, else None."""
    try:
        family, v_pred = family_of_diffusers_folder(folder)
    except ModelError:
        return None
    return None if missing_components(folder, family) else (family, v_pred)


def resolve(repo_id: str, online: bool = True) -> HubModel:
    """Cached (no network), else what a download would fetch (listing the repo on the Hub; the
    small JSON configs are fetched to tell the family). ModelError, one line naming the id,
    when the Hub does not know it or cannot be reached and the cache lacks it."""
    folder = cached_snapshot(repo_id)
    found = complete(folder) if folder else None
    if found:
        return HubModel(repo_id, folder, *found)
    if not online:
        raise ModelError(f"{repo_id}: not in the Hugging Face cache ({cache_dir()}); it will be downloaded "
                         "when training starts")
    listing = _listing(repo_id)
    files = choose_files([f.filename for f in listing])
    _refuse_unusable(repo_id, files)
    model = HubModel(repo_id, None, to_download={f.filename: f.file_size or 0 for f in listing
                                                 if f.filename in files and f.will_download})
    model.family, model.v_prediction = _family_from_configs(repo_id)
    return model


def _listing(repo_id: str):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import DryRunError, GatedRepoError, RepositoryNotFoundError
    try:
        return snapshot_download(repo_id, allow_patterns=CANDIDATE_PATTERNS, dry_run=True, tqdm_class=_quiet())
    except (DryRunError, OSError) as exc:
        # a dry run raises DryRunError from the Hub's answer: the answer says whether the id exists
        cause = exc.__cause__ if isinstance(exc, DryRunError) else exc
        if isinstance(cause, GatedRepoError):
            raise ModelError(f"{repo_id}: a gated model on the Hugging Face Hub; accept its terms on the model's "
                             "page and log in (hf auth login)") from None
        if isinstance(cause, RepositoryNotFoundError):
            raise ModelError(f"{repo_id}: no such model on the Hugging Face Hub (nor a local path); check the id, "
                             "or log in (hf auth login) if it is private") from None
        raise ModelError(f"{repo_id}: not in the Hugging Face cache ({cache_dir()}) and the Hub cannot be reached "
                         f"({cause.__class__.__name__}); connect once, or give a local folder") from None


def _refuse_unusable(repo_id: str, files: list[str]) -> None:
    names = {f.split("/")[0] for f in files}
    if "model_index.json" not in names or not {"unet", "vae", "text_encoder"} <= names:
        raise ModelError(f"{repo_id}: not a diffusers Stable Diffusion repo (no model_index.json with unet, vae and "
                         "text_encoder weights); give its single .safetensors file as a local path instead")


def _family_from_configs(repo_id: str) -> tuple[str | None, bool | None]:
    """The family from the repo's JSON configs (a few KB, kept in the cache for the download)."""
    from huggingface_hub import snapshot_download
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=list(CONFIG_FILES), tqdm_class=_quiet()))
        return family_of_diffusers_folder(folder)
    except (ModelError, OSError):
        return None, None


def ensure_local(repo_id: str, progress: Progress | None = None) -> Path:
    """The snapshot folder holding what training needs: the cache's, or downloaded now with
    progress(bytes done, bytes in all) as the bytes arrive."""
    model = resolve(repo_id)
    if model.cached:
        return model.folder
    from huggingface_hub import snapshot_download
    folder = Path(snapshot_download(repo_id, allow_patterns=list(model.to_download) + list(CONFIG_FILES),
                                    tqdm_class=_progress_class(progress, model.download_bytes)))
    if progress is not None:
        progress(model.download_bytes, model.download_bytes)       # the end, whatever the bars counted
    if complete(folder) is None:
        raise ModelError(f"{repo_id}: downloaded into {folder}, but it still lacks what training needs")
    return folder


def _quiet():
    return _progress_class(None, 0)


def _progress_class(progress: Progress | None, total: int):
    """A tqdm class whose byte bars report to `progress` (huggingface_hub aggregates every file's
    bytes into one bar of unit "B"; the file-count bar is left alone)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Reporter(hf_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True          # no tqdm drawing into trainer.log: progress events instead
            super().__init__(*args, **kwargs)
            self.reports = kwargs.get("name") == "huggingface_hub.snapshot_download" and progress is not None

        def update(self, n=1):
            self.n += n or 0                  # a disabled tqdm does not count
            if self.reports:
                progress(int(self.n), int(self.total or total))

    return Reporter


def model_info_of(model: HubModel):
    """The ModelInfo preflight compares with the config's flags: the snapshot's when cached, else the
    family read from the Hub's configs (None when it could not be read)."""
    if model.family is None:
        return None
    return ModelInfo(model.folder or Path(model.repo_id), model.family, model.v_prediction, "diffusers")
