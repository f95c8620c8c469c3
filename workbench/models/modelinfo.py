"""What a base model is (sd1, sd2 or sdxl, v-prediction or not), read without loading it:
tensor names from a single file's header, or the JSON configs of a diffusers folder.

Used by preflight (a contradiction with the v2/sdxl flags is refused before a run) and by the
trainer (the same rule, so both say the same)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError
from workbench.lora.header import read_header, tensor_entries

FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


class ModelError(UserError):
    pass


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    family: str                   # "sd1" | "sd2" | "sdxl"
    v_prediction: bool | None     # None: the file doesn't say
    layout: str                   # "diffusers" | "single_file"

    @property
    def family_name(self) -> str:
        return FAMILY_NAMES[self.family]


def family_from_tensor_names(names) -> str | None:
    """SDXL has a second (OpenCLIP bigG) embedder; SD2 an OpenCLIP text model; SD1 CLIP-L."""
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    if has("conditioner.embedders.1.") or has("text_encoder_2.") or has("add_embedding.linear_1"):
        return "sdxl"
    if has("cond_stage_model.model.transformer.") or has("cond_stage_model.model.token_embedding"):
        return "sd2"
    if has("cond_stage_model.transformer.") or has("model.diffusion_model.") or has("first_stage_model."):
        return "sd1"
    return None


# width of the UNet's cross-attention keys: the text encoder each family was trained with
CROSS_ATTENTION_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


def family_from_header(entries: dict[str, dict]) -> str | None:
    """Tensor names first; a UNet-only LDM checkpoint (no text encoder inside) is told apart by
    the width of its cross-attention keys, which names alone can't (SD1 and SD2 share them)."""
    family = family_from_tensor_names(entries)
    if family == "sd1" and not any(n.startswith("cond_stage_model.") for n in entries):
        width = next((e.get("shape", [0, 0])[-1] for n, e in entries.items()
                      if n.startswith("model.diffusion_model.") and n.endswith("attn2.to_k.weight")), None)
        family = CROSS_ATTENTION_FAMILY.get(width, family)
    return family


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def family_of_diffusers_folder(folder: Path) -> tuple[str, bool | None]:
    index = _read_json(folder / "model_index.json")
    if not index and not (folder / "unet" / "config.json").is_file():
        raise ModelError(f"{folder}: not a diffusers model folder (no model_index.json or unet/config.json)")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    v_pred = {"v_prediction": True, "epsilon": False}.get(scheduler.get("prediction_type"))
    unet = _read_json(folder / "unet" / "config.json")
    if "XL" in str(index.get("_class_name", "")) or (folder / "text_encoder_2").is_dir() \
            or unet.get("addition_embed_type") == "text_time":
        return "sdxl", v_pred
    te = _read_json(folder / "text_encoder" / "config.json")
    # SD2's OpenCLIP ViT-H uses gelu and 1024-wide cross-attention; SD1's CLIP-L uses quick_gelu, 768
    if te.get("hidden_act") == "gelu" or unet.get("cross_attention_dim") == 1024:
        return "sd2", v_pred
    return "sd1", v_pred


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.index.json")


def missing_components(folder: Path, family: str) -> list[str]:
    """What a diffusers folder of this family lacks to be trained on: each model part needs its
    config.json and weights (any variant, or a sharded index), each tokenizer its folder."""
    encoders = ("text_encoder", "text_encoder_2") if family == "sdxl" else ("text_encoder",)
    missing = []
    for part in ("unet", "vae", *encoders):
        sub = folder / part
        if not (sub / "config.json").is_file():
            missing.append(f"{part}/config.json")
        if not _has_weights(sub):
            missing.append(f"{part}/ weights")
    missing += [f"{t}/" for t in (e.replace("text_encoder", "tokenizer") for e in encoders) if not (folder / t).is_dir()]
    return missing


def _has_weights(sub: Path) -> bool:
    return sub.is_dir() and any(next(sub.glob(pattern), None) is not None for pattern in WEIGHT_PATTERNS)


def model_info(path: str | Path) -> ModelInfo:
    """Family of a diffusers folder or a .safetensors checkpoint; ModelError when it can't tell."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: model not found; give a diffusers folder or a .safetensors checkpoint")
    if path.is_dir():
        family, v_pred = family_of_diffusers_folder(path)
        return ModelInfo(path, family, v_pred, "diffusers")
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        # the family of a pickle checkpoint is read at load time (torch.load with weights_only=True)
        raise ModelError(f"{path}: a .ckpt checkpoint; its family is only known once loaded — "
                         "prefer a .safetensors file")
    _, header = read_header(path)
    family = family_from_header(tensor_entries(header))
    if family is None:
        raise ModelError(f"{path}: not a Stable Diffusion checkpoint (no UNet / text-encoder tensors found)")
    return ModelInfo(path, family, None, "single_file")


def contradiction(info: ModelInfo, cfg) -> str | None:
    """A sentence when the v2/sdxl flags disagree with the checkpoint, else None."""
    flagged = cfg.model_family()
    if flagged == info.family:
        return None
    flag = {"sd1": "v2 = false and sdxl = false", "sd2": "v2 = true", "sdxl": "sdxl = true"}[info.family]
    return (f"{info.path} is an {info.family_name} model but the config says {FAMILY_NAMES[flagged]}; "
            f"set {flag}")


def prediction_mismatch(info: ModelInfo, cfg) -> tuple[str, str] | None:
    """(level, sentence) when the model's scheduler config and v_parameterization disagree, else None.
    A v-prediction model trained as epsilon learns noise, so that is an error; an epsilon config
    with v_parameterization on is only a warning: fine-tuned 768-v models often ship a wrong one."""
    if info.v_prediction is None or info.v_prediction == cfg.v_parameterization:
        return None
    if info.v_prediction:
        return "error", (f"{info.path}: the model predicts v (v_prediction in its scheduler config) but "
                         "v_parameterization = false; set v_parameterization = true")
    return "warning", (f"{info.path}: the model's scheduler says epsilon-prediction but v_parameterization = true; "
                       "set it to false unless you know the scheduler config is wrong")
