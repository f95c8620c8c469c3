"""Writing what a run produces: LoRA files (safetensors with metadata and sd-scripts' hashes, or
a ckpt), and the state folders that let a run resume. Nothing is ever overwritten: the files a
run will write are checked before it starts; a stop save that would collide gets a new name.
"""
from __future__ import annotations

import io
import json
import os
import random
import shutil
from pathlib import Path

import torch

from workbench.errors import UserError
from workbench.fileio import write_bytes_atomic
from workbench.lora.hashes import hashes_of_bytes, legacy_hash_stream

# ---------------------------------------------------------------- LoRA files

def lora_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with sshs_model_hash / sshs_legacy_hash added, sd-scripts' way: the
    hashes are of the file serialized with only the ss_* keys. The tensor bytes after the header
    do not depend on the metadata, so the stored sshs_model_hash is sha256(file[8 + N:])."""
    from safetensors.torch import save
    training_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    model_hash, legacy_hash = hashes_of_bytes(save(tensors, training_only))
    return save(tensors, {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy_hash})


def save_lora(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write atomically; a .ckpt holds the tensors only (the format has no metadata)."""
    if path.suffix == ".ckpt":
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        data = buffer.getvalue()
    else:
        data = lora_bytes(tensors, metadata)
    write_bytes_atomic(path, data)
    return path


# ---------------------------------------------------------------- training state

def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(folder: Path, network, optimizer, scheduler, scaler, progress: dict) -> Path:
    """Everything a resume needs, written into a temporary sibling and renamed into place."""
    from safetensors.torch import save_file
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(weights, str(tmp / "network.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state()},
               tmp / "training.pt")
    (tmp / "train_state.json").write_text(json.dumps(progress, indent=2))
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():            # a folder is replaced by rename only when empty: move the last one aside
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def remove_output(path: Path) -> bool:
    """Delete an earlier LoRA file or state folder of the run (save_last_n_*); False if absent."""
    if path.is_dir():
        shutil.rmtree(path)
        return True
    if path.is_file():
        path.unlink()
        return True
    return False


def load_state(folder: Path) -> dict:
    """{"network": tensors, "optimizer", "scheduler", "scaler", "rng", "progress"}; UserError naming
    the folder when it is not a state this trainer saved."""
    from safetensors.torch import load_file
    folder = Path(folder).expanduser()
    files = [folder / "network.safetensors", folder / "training.pt", folder / "train_state.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise UserError(f"resume: {folder} is not a saved training state (missing {', '.join(missing)}); "
                        "choose a <output_name>-…-state folder written with save_state")
    training = torch.load(files[1], map_location="cpu", weights_only=True)
    return {"network": load_file(str(files[0])), **training, "progress": json.loads(files[2].read_text())}


# What sd-scripts records as the base model's hashes when the model is a folder (a diffusers
# model): its hash functions answer the IsADirectoryError with this text.
FOLDER_HASH = "IsADirectory"


def base_model_hashes(path: Path) -> tuple[str, str]:
    """(legacy 8-hex, sha256) of a single-file base model, as sd-scripts records them
    (ss_sd_model_hash, ss_new_sd_model_hash); FOLDER_HASH twice for a diffusers folder."""
    import hashlib

    if Path(path).is_dir():
        return FOLDER_HASH, FOLDER_HASH
    with open(path, "rb") as f:
        legacy = legacy_hash_stream(f)
        f.seek(0)
        return legacy, hashlib.file_digest(f, "sha256").hexdigest()
