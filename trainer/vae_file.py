"""sd-scripts' --vae: a separate VAE instead of the model's own, from a diffusers folder (with its
config.json, or a model folder with vae/), or one .safetensors / .ckpt file in the original
(LDM) layout or diffusers' own, a whole checkpoint's first_stage_model.* keys too. A single file
is read into the base model's VAE architecture, so nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import torch

from workbench.errors import UserError

LDM_PREFIX = "first_stage_model."


def load_vae(path: str, base_vae) -> torch.nn.Module:
    from diffusers import AutoencoderKL
    where = Path(path).expanduser()
    if where.is_dir():
        for folder, sub in ((where, None), (where / "vae", "vae")):
            if (folder / "config.json").is_file():
                return AutoencoderKL.from_pretrained(where, subfolder=sub) if sub else AutoencoderKL.from_pretrained(where)
        raise UserError(f"vae: {where} is a folder without a VAE config.json (nor vae/config.json); give a "
                        "diffusers VAE folder or a .safetensors / .ckpt file")
    if not where.is_file():
        raise UserError(f"vae: {where} not found; give a VAE file or folder, or leave vae empty for the model's own")
    vae = AutoencoderKL.from_config(base_vae.config)
    try:
        vae.load_state_dict(diffusers_layout(read_tensors(where), base_vae.config))
    except RuntimeError as exc:
        raise UserError(f"vae: {where} does not fit this model's VAE ({str(exc).splitlines()[0][:160]}); "
                        "choose a VAE of the same model family") from None
    return vae


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:        # a broken or foreign file: the user's, said in one line
        raise UserError(f"vae: {path} cannot be read as a VAE ({type(exc).__name__}); give a .safetensors or "
                        ".ckpt VAE") from None
    state = state.get("state_dict", state)
    if any(k.startswith(LDM_PREFIX) for k in state):          # a whole checkpoint: its VAE part
        state = {k[len(LDM_PREFIX):]: v for k, v in state.items() if k.startswith(LDM_PREFIX)}
    return state


def diffusers_layout(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """diffusers' keys as they are; the original layout (encoder.down.0.block…) converted."""
    if any(".down_blocks." in k or ".up_blocks." in k for k in state):
        return state
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    return convert_ldm_vae_checkpoint(state, dict(config))
