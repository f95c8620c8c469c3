"""What a .safetensors file that is not a LoRA looks like, from its tensor names alone, so the
inspector can say "this is a full checkpoint" instead of describing an empty network."""
from __future__ import annotations

# (what it is, a test on the tensor names), the first that matches wins
KINDS = (
    ("a full Stable Diffusion checkpoint (UNet, VAE and text encoder in one file)",
     lambda names: _any(names, "model.diffusion_model.") and _any(names, "first_stage_model.")),
    ("an SDXL/SD UNet in the original layout (model.diffusion_model.…)",
     lambda names: _any(names, "model.diffusion_model.")),
    ("a diffusers UNet (diffusion_pytorch_model)",
     lambda names: _any(names, "down_blocks.") and _any(names, "time_embedding.")),
    ("a VAE", lambda names: _any(names, "encoder.down.", "first_stage_model.", "decoder.up_blocks.")),
    ("a text encoder", lambda names: _any(names, "text_model.", "conditioner.embedders.", "transformer.")),
    ("a textual-inversion embedding", lambda names: bool(names) and len(names) <= 4 and _any(
        names, "emb_params", "string_to_param", "clip_l", "clip_g", "<")),
)


def _any(names: list[str], *prefixes: str) -> bool:
    return any(name.startswith(prefixes) or name in prefixes for name in names)


def what_it_is(names: list[str]) -> str:
    """A few words: "holds no tensors", "a VAE", "…" or "N tensors, none of them LoRA modules"."""
    if not names:
        return "it holds no tensors"
    for kind, matches in KINDS:
        if matches(names):
            return f"it looks like {kind}"
    return f"it holds {len(names)} tensor(s), none of them a LoRA module (e.g. {sorted(names)[0]})"
