"""Kohya's LoRA module names: what A1111, ComfyUI and diffusers look for in a LoRA file.

A name is a prefix plus the module's path inside its model with every "." turned into "_":
`lora_unet_down_blocks_0_attentions_0_proj_in`, `lora_te_text_model_encoder_layers_0_mlp_fc1`.
Tensors then hang off it: `<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha`.

Pure string rules (no torch), so tools that only read file headers can use them too.
"""
from __future__ import annotations

UNET_PREFIX = "lora_unet"
TEXT_MODEL = "text_model"


def lora_name(prefix: str, module_path: str) -> str:
    """`lora_name("lora_unet", "mid_block.attentions.0.proj_in")` -> `lora_unet_mid_block_attentions_0_proj_in`."""
    return f"{prefix}.{module_path}".replace(".", "_")


def text_encoder_prefixes(count: int) -> list[str]:
    """One text encoder (SD1/SD2): `lora_te`; SDXL's two: `lora_te1`, `lora_te2`."""
    if count == 1:
        return ["lora_te"]
    return [f"lora_te{i + 1}" for i in range(count)]


def text_encoder_module_path(has_text_model_level: bool, module_path: str) -> str:
    """The path a CLIP text encoder's module had before transformers 5.

    transformers 5 flattened CLIPTextModel (`encoder.layers.0...` instead of
    `text_model.encoder.layers.0...`); A1111 and ComfyUI only know the old paths, so the
    `text_model` level is put back for models that no longer have it.
    """
    if has_text_model_level:
        return module_path
    return f"{TEXT_MODEL}.{module_path}"


def canonical_lora_name(name: str) -> str:
    """A name as this project writes it, from a file written by any tool.

    Tools that walked a transformers-5 CLIPTextModel wrote `lora_te_encoder_layers_0_...`;
    those names get their `text_model_` part back. UNet names and correct names pass unchanged.
    """
    for prefix in ("lora_te_", "lora_te1_", "lora_te2_"):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if not rest.startswith(f"{TEXT_MODEL}_"):
                return f"{prefix}{TEXT_MODEL}_{rest}"
            return name
    return name


def is_text_encoder_name(name: str) -> bool:
    return name.startswith("lora_te")
